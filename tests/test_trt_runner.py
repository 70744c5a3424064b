"""gimm_trt.engines.runner: binding, streams and CUDA graphs against stand-ins that keep TensorRT's contracts.

No GPU or TensorRT here, so both sides are stood in for: ``FakeCuda`` replaces ``TorchCuda`` (streams, graph
capture and a device memory of aligned blocks on the host) and ``FakeEngine`` an ``ICudaEngine`` whose network
is ``y = x * t[:, None] + 1`` (``x`` [T,4], ``t`` [T], T in 1..6). Its execution contexts refuse what TensorRT
documents as refused and compute from the bound addresses, so a wrong binding or replay gives wrong numbers.
The last test runs a real engine when TensorRT and a GPU are present.
"""

import contextlib
from types import SimpleNamespace

import pytest
import torch

from gimm_trt.core.errors import InputError
from gimm_trt.engines import runner
from gimm_trt.engines.runner import ALIGNMENT, EngineRunner, Workspace

BLOCK = 512  # torch's CUDA caching allocator rounds blocks to kMinBlockSize = 512 bytes (CUDACachingAllocator)
MAX_T = 6
USER_MANAGED = SimpleNamespace(name="USER_MANAGED")  # trt.ExecutionContextAllocationStrategy.USER_MANAGED


# --------------------------------------------------------------------------------------------- stand-ins
class FakeStream:
    def __init__(self, cuda, handle):
        self.cuda, self.cuda_stream = cuda, handle

    def wait_stream(self, other):
        self.cuda.log.append(("wait", self.cuda_stream, other.cuda_stream))

    def synchronize(self):
        self.cuda.log.append(("sync", self.cuda_stream))


class FakeGraph:
    """A captured CUDA graph: the launches recorded while capturing, run again by ``replay``."""

    def __init__(self, cuda):
        self.cuda, self.launches = cuda, []

    def replay(self):
        self.cuda.log.append(("replay", self.cuda.current.cuda_stream))  # a graph launches on the current stream
        for launch in self.launches:
            launch()


class FakeCuda:
    """Stands in for ``TorchCuda``: a log of stream operations and a 'device memory' of host blocks.

    Torch's current stream starts as the legacy default stream (handle 0), as it does on a GPU. Blocks are
    BLOCK-aligned like the caching allocator's; ``view`` reads memory by address, as a kernel does, and raises
    on an address outside every block (an illegal memory access).
    """

    def __init__(self):
        self.device = torch.device("cpu")
        self.log = []
        self.current = FakeStream(self, 0)
        self.capturing = None  # (stream handle, FakeGraph) while a capture is open
        self.allocations = []  # (shape, dtype) of each block asked for
        self._blocks = []
        self._handles = 0

    def guard(self):
        return contextlib.nullcontext()

    def current_stream(self):
        return self.current

    def new_stream(self):
        self._handles += 1
        return FakeStream(self, 0x1000 + self._handles)

    @contextlib.contextmanager
    def stream(self, stream):
        saved, self.current = self.current, stream
        try:
            yield
        finally:
            self.current = saved

    def empty(self, shape, dtype):
        self.allocations.append((tuple(shape), dtype))
        nbytes = torch.Size(shape).numel() * dtype.itemsize
        raw = torch.zeros(nbytes + BLOCK, dtype=torch.uint8)
        start = (-raw.data_ptr()) % BLOCK
        self._blocks.append(raw)
        return raw[start : start + nbytes].view(dtype).view(shape)

    def tensor(self, values):
        values = torch.as_tensor(values, dtype=torch.float32)
        out = self.empty(values.shape, values.dtype)
        return out.copy_(values)

    def record(self, tensor, stream):
        self.log.append(("record", tensor.data_ptr(), stream.cuda_stream))

    def new_graph(self):
        return FakeGraph(self)

    @contextlib.contextmanager
    def capture(self, graph, stream):
        self.capturing = (stream.cuda_stream, graph)
        try:
            with self.stream(stream):
                yield
        finally:
            self.capturing = None

    def view(self, address, shape, dtype=torch.float32):
        nbytes = torch.Size(shape).numel() * dtype.itemsize
        for raw in self._blocks:
            offset = address - raw.data_ptr()
            if 0 <= offset and offset + nbytes <= raw.numel():
                return raw[offset : offset + nbytes].view(dtype).view(shape)
        raise RuntimeError(f"illegal memory access: {nbytes} bytes at {address:#x}")


class FakeContext:
    """An IExecutionContext of ``FakeEngine``, keeping the rules of NvInferRuntime.h (TensorRT 10.9 and 11.1)."""

    def __init__(self, engine, strategy):
        self.engine, self.strategy = engine, strategy
        self.shapes, self.addresses, self.memory = {}, {}, None
        self.fresh = True  # no enqueue since the input shapes last changed

    def set_device_memory(self, address, size):
        self.memory = (address, size)

    def set_input_shape(self, name, shape):
        # setInputShape: false on error; each dimension must agree with the network's unless that one is -1
        shape = tuple(shape)
        dims = self.engine.dims.get(name)
        if name not in self.engine.inputs or len(shape) != len(dims):
            return False
        if any(d != n and n != -1 for d, n in zip(shape, dims)) or not 1 <= shape[0] <= MAX_T:
            return False
        self.shapes[name] = shape
        self.fresh = True
        return True

    def get_tensor_shape(self, name):
        # getTensorShape: -1 for a runtime dimension whose input shapes are not all set yet
        if name in self.engine.inputs:
            return self.shapes.get(name, self.engine.dims[name])
        return (self.shapes["x"][0], 4) if "x" in self.shapes else (-1, 4)

    def set_tensor_address(self, name, address):
        # setTensorAddress: "The pointer must have at least 256-byte alignment." (NvInferRuntime.h, 10.9: l.4461,
        # 11.1: l.4378); setInputTensorAddress/setOutputTensorAddress return false when it is not
        if name not in self.engine.dims or address % 256:
            return False
        self.addresses[name] = address
        return True

    def execute_async_v3(self, stream_handle):
        # the test checks every enqueue of an engine's contexts goes to one stream: contexts sharing profile 0
        # must not run concurrently (NvInferRuntime.h, class IExecutionContext, 10.9: l.4017, 11.1: l.3953)
        self.engine.enqueues.append(stream_handle)
        self.engine.cuda.log.append(("enqueue", stream_handle))
        if stream_handle == 0:
            # enqueueV3 on the default stream: "additional cudaDeviceSynchronize() calls by TensorRT"
            # (NvInferRuntime.h, 10.9: l.4722, 11.1: l.4639; execute_async_v3 docstring, pyCoreDoc.h)
            self.engine.device_syncs += 1
        if not self._ready():
            return False
        capturing = self.engine.cuda.capturing
        if capturing is None or capturing[0] != stream_handle:
            self.fresh = False
            self._compute(self.addresses)
            return True
        if not self.engine.capturable:
            # "When the stream is capturing, the enqueue call may return false if the current CUDA graph capture
            # fails" (samples/common/sampleInference.cpp, 10.9: l.938, 11.1: l.1349)
            return False
        if self.fresh:
            # the first enqueue after a shape change initialises the context and cannot be captured: "Avoid
            # capturing initialization calls by executing the enqueue function at least once" (sampleInference.cpp,
            # 10.9: l.927, 11.1: l.1338); 8.6's NvInferRuntime.h l.3100 says a capture fails otherwise
            return False
        addresses, captured = dict(self.addresses), dict(self.shapes)
        capturing[1].launches.append(lambda: self._replay(addresses, captured))
        return True

    def _ready(self):
        # enqueueV3 needs every input shape and every address, and a USER_MANAGED context its memory
        memory_ok = self.memory is not None and self.memory[1] >= self.engine.device_memory_size_v2
        complete = set(self.shapes) == set(self.engine.inputs) and set(self.addresses) == set(self.engine.dims)
        return memory_ok and complete and self.shapes["x"][0] == self.shapes["t"][0]

    def _replay(self, addresses, captured):
        # a graph keeps the addresses it was captured with but reads the context's shape-dependent state as it is
        # at replay: after a shape change "you have to re-capture the graph, because some internal state is
        # changed", so the practice is one execution context per captured graph
        self.engine.replays.append((captured["x"], self.shapes["x"]))
        self._compute(addresses)

    def _compute(self, addresses):
        cuda, steps = self.engine.cuda, self.shapes["x"][0]
        x = cuda.view(addresses["x"], (steps, 4))
        t = cuda.view(addresses["t"], (steps,))
        cuda.view(addresses["y"], (steps, 4)).copy_(x * t[:, None] + 1)


class FakeEngine:
    """An ICudaEngine for ``y = x * t[:, None] + 1`` with one optimisation profile, T in 1..MAX_T."""

    num_io_tensors = 3
    device_memory_size_v2 = 3000

    def __init__(self, cuda, memory=3000):
        self.device_memory_size_v2 = memory
        self.inputs = ("x", "t")
        self.dims = {"x": (-1, 4), "t": (-1,), "y": (-1, 4)}
        self.cuda = cuda
        self.capturable = True
        self.contexts, self.enqueues, self.replays = [], [], []
        self.device_syncs = 0

    def get_tensor_name(self, index):
        return ("x", "t", "y")[index]

    def get_tensor_mode(self, name):
        return SimpleNamespace(name="INPUT" if name in self.inputs else "OUTPUT")

    def get_tensor_dtype(self, name):
        return SimpleNamespace(name="FLOAT")

    def get_tensor_profile_shape(self, name, profile):
        assert profile == 0
        return [(1, *self.dims[name][1:]), (3, *self.dims[name][1:]), (MAX_T, *self.dims[name][1:])]

    def create_execution_context(self, strategy):
        context = FakeContext(self, strategy)
        self.contexts.append(context)
        return context


def make_stage(cuda_graph=False):
    cuda = FakeCuda()
    engine = FakeEngine(cuda)
    return EngineRunner(engine, cuda, strategy=USER_MANAGED, cuda_graph=cuda_graph), engine, cuda


def expected(x, t):
    return x * t[:, None] + 1


# --------------------------------------------------------------------------------------------- helpers
def test_helpers_bind_by_name():
    assert runner.torch_dtype(SimpleNamespace(name="HALF")) is torch.float16
    assert runner.torch_dtype("DataType.FLOAT") is torch.float32
    with pytest.raises(TypeError):
        runner.torch_dtype(SimpleNamespace(name="FP8"))

    cuda = FakeCuda()
    engine = FakeEngine(cuda)
    context = engine.create_execution_context(USER_MANAGED)
    runner._set_input_shapes(context, engine, {"x": (3, 4), "t": (3,)})
    outputs = runner._empty_outputs(context, {"y": torch.float16}, cuda.empty)
    assert outputs["y"].shape == (3, 4) and outputs["y"].dtype is torch.float16
    x = cuda.empty((3, 4), torch.float32)
    runner._bind(context, {"x": x, **outputs})
    assert context.addresses == {"x": x.data_ptr(), "y": outputs["y"].data_ptr()}
    with pytest.raises(RuntimeError, match=r"refused the address .* of tensor 't' \(it must be 256-byte aligned\)"):
        runner._bind(context, {"t": cuda.empty((8,), torch.float32)[1:4]})
    with pytest.raises(ValueError, match=r"outside the engine's profile \(min \(1,\), max \(6,\)\)"):
        runner._set_input_shapes(context, engine, {"t": (7,)})


def test_stage_reads_the_engine_and_gives_every_context_the_shared_memory():
    stage, engine, cuda = make_stage()
    assert stage.input_names == ("x", "t") and stage.output_names == ("y",)
    assert stage.dtypes == {"x": torch.float32, "t": torch.float32, "y": torch.float32}
    assert stage.profile("t") == ((1,), (3,), (6,))
    (context,) = engine.contexts
    assert context.strategy is USER_MANAGED
    assert context.memory == (stage._memory.data_ptr(), FakeEngine.device_memory_size_v2)
    with pytest.raises(InputError, match=r"missing \['t'\], unexpected \['z'\]"):
        stage({"x": cuda.tensor(torch.zeros(2, 4)), "z": cuda.tensor([0.5, 0.5])})
    with pytest.raises(TypeError, match="engine takes torch.float32"):
        stage({"x": cuda.tensor(torch.zeros(2, 4)), "t": cuda.tensor([1, 2]).to(torch.float64)})


@pytest.mark.parametrize("family", ["tensorrt", "tensorrt-rtx"])
def test_a_plan_that_does_not_deserialize_names_the_likely_causes(monkeypatch, family):
    """A plan picked by its name already matches this TensorRT and GPU: the error names what is left."""
    from gimm_trt.core.errors import EngineError

    class Runtime:
        def __init__(self, logger):
            pass

        def deserialize_cuda_engine(self, data):
            return None  # what TensorRT returns for a plan it cannot load

    trt = SimpleNamespace(init_libnvinfer_plugins=lambda logger, ns: True, Runtime=Runtime)
    monkeypatch.setattr(runner.compat, "import_trt", lambda name: trt)
    monkeypatch.setattr(runner.compat, "trt_logger", lambda name: None)
    monkeypatch.setattr(runner.TorchCuda, "on", classmethod(lambda cls, device: FakeCuda()))
    monkeypatch.setattr(runner, "_import_plugin", lambda module: None)
    with pytest.raises(EngineError) as err:  # a plan given directly may come from anywhere
        runner.TrtStage(b"plan", family=family, plugin_module="some.plugin")
    assert "a plan built by another TensorRT release or for another GPU" in str(err.value)
    with pytest.raises(EngineError) as err:  # one the engine cache picked by its name
        runner.deserialize(b"plan", family=family, plugin_module="some.plugin", named=True)
    message = str(err.value)
    assert "release" not in message and "GPU" not in message
    plugin_causes = (
        "JIT splat plugin not registered in this process (import some.plugin)",
        "PTX is newer than the CUDA driver",
    )
    assert all((cause in message) == (family == "tensorrt") for cause in plugin_causes), message
    assert "truncated or damaged file" in message


# ---------------------------------------------------------------------------------------------- alignment
def test_timestep_slices_are_bound_from_aligned_copies():
    stage, engine, cuda = make_stage()
    ts = cuda.tensor(torch.linspace(0.1, 0.8, 8))
    xs = cuda.tensor(torch.arange(32, dtype=torch.float32).view(8, 4))
    # the premise: a slice of a packed tensor is packed too, so .contiguous() hands back the same address
    assert ts[3:6].contiguous().data_ptr() == ts.data_ptr() + 12 and (ts.data_ptr() + 12) % ALIGNMENT
    for i in range(0, 8, 3):  # batches of at most 3 timesteps, as Interpolator slices t[i:i + step]
        t, x = ts[i : i + 3], xs[i : i + 3]
        got = stage({"x": x, "t": t})["y"]
        torch.testing.assert_close(got, expected(x, t), rtol=0, atol=0)
        bound = engine.contexts[0].addresses
        assert all(address % ALIGNMENT == 0 for address in bound.values())
        if i == 0:  # aligned and packed: bound in place, no copy
            assert bound["t"] == ts.data_ptr() and bound["x"] == xs.data_ptr()
    torch.testing.assert_close(ts, torch.linspace(0.1, 0.8, 8), rtol=0, atol=0)  # the caller's data untouched


def test_a_transposed_input_is_packed_before_binding():
    stage, _, cuda = make_stage()
    xt = cuda.tensor(torch.arange(12, dtype=torch.float32).view(4, 3))
    t = cuda.tensor([2.0, -1.0, 0.5])
    got = stage({"x": xt.t(), "t": t})["y"]
    torch.testing.assert_close(got, expected(xt.t(), t), rtol=0, atol=0)


# ------------------------------------------------------------------------------------------------ streams
def test_enqueues_on_its_own_stream_ordered_with_the_callers():
    stage, engine, cuda = make_stage()
    own = stage._stream.cuda_stream
    x, t = cuda.tensor(torch.ones(2, 4)), cuda.tensor([0.25, 0.75])
    at_start = list(cuda.log)
    cuda.log.clear()
    out = stage({"x": x, "t": t})["y"]
    assert own != 0 and engine.enqueues == [own] and engine.device_syncs == 0
    # after the caller's work and before its next; that wait back also makes the call's memory safe to reuse on
    # the caller's stream, so no tensor of the call is recorded on the stage's stream
    assert cuda.log == [("wait", own, 0), ("enqueue", own), ("wait", 0, own)]
    torch.testing.assert_close(out, expected(x, t), rtol=0, atol=0)
    # the activation memory lives as long as the stage: kept from reuse until the stage's stream is done with it
    assert at_start == [("record", stage._memory.data_ptr(), own)]


def test_a_caller_on_another_stream_is_waited_for_too():
    stage, _, cuda = make_stage()
    theirs = cuda.new_stream()
    with cuda.stream(theirs):
        cuda.log.clear()
        stage({"x": cuda.tensor(torch.ones(1, 4)), "t": cuda.tensor([3.0])})
    own = stage._stream.cuda_stream
    assert cuda.log == [("wait", own, theirs.cuda_stream), ("enqueue", own), ("wait", theirs.cuda_stream, own)]


# -------------------------------------------------------------------------------------------- CUDA graphs
def run_sequence(stage, cuda, lengths):
    """Calls with fresh values for each T in ``lengths``; returns (got, expected) pairs (copies)."""
    results = []
    for n, steps in enumerate(lengths):
        x = cuda.tensor(torch.arange(steps * 4, dtype=torch.float32).view(steps, 4) + 10 * n)
        t = cuda.tensor(torch.linspace(0.1, 0.9, steps) + n)
        results.append((stage({"x": x, "t": t})["y"].clone(), expected(x, t)))
    return results


def test_graphs_of_two_shapes_replay_with_their_own_shapes():
    stage, engine, cuda = make_stage(cuda_graph=True)
    # eager, capture, eager, capture, then replays of both graphs in turn
    results = run_sequence(stage, cuda, [3, 3, 2, 2, 3, 2, 3])
    for got, want in results:
        torch.testing.assert_close(got, want, rtol=0, atol=0)
    assert engine.replays == [((3, 4), (3, 4)), ((2, 4), (2, 4)), ((3, 4), (3, 4))]
    assert len(engine.contexts) == 3  # the eager one and one per captured shape set
    assert stage.captured == 2
    assert set(engine.enqueues) == {stage._stream.cuda_stream} and engine.device_syncs == 0
    own = stage._stream.cuda_stream
    assert [entry for entry in cuda.log if entry[0] == "replay"] == [("replay", own)] * 3
    recorded = {entry[1] for entry in cuda.log if entry[0] == "record" and entry[2] == own}
    buffers = [b for entry in stage._graphs.values() for b in (*entry.inputs.values(), *entry.outputs.values())]
    assert len(buffers) == 6 and {b.data_ptr() for b in buffers} <= recorded  # they may go while a replay runs


def test_an_engine_that_cannot_be_captured_runs_eagerly():
    stage, engine, cuda = make_stage(cuda_graph=True)
    engine.capturable = False
    for got, want in run_sequence(stage, cuda, [2, 2, 2, 2]):
        torch.testing.assert_close(got, want, rtol=0, atol=0)
    assert engine.replays == [] and stage.captured == 0 and stage._uncapturable == {((2, 4), (2,))}
    assert len(engine.enqueues) == 5  # eager, the run before the capture, the failed capture, eager, eager


def test_the_oldest_graph_is_dropped_once_the_stream_is_done_with_it():
    stage, _, cuda = make_stage(cuda_graph=True)
    own = stage._stream.cuda_stream
    for got, want in run_sequence(stage, cuda, [1, 1, 2, 2, 3, 3, 4, 4]):
        torch.testing.assert_close(got, want, rtol=0, atol=0)
    assert len(stage._graphs) == 4 and ("sync", own) not in cuda.log
    cuda.log.clear()
    for got, want in run_sequence(stage, cuda, [5, 5, 1, 1]):  # a fifth shape set pushes out T=1, then T=2
        torch.testing.assert_close(got, want, rtol=0, atol=0)
    assert [shapes[1] for shapes in stage._graphs] == [(3,), (4,), (5,), (1,)]
    assert cuda.log.count(("sync", own)) == 2
    stage.reset_graphs()
    assert len(stage._graphs) == 0 and cuda.log[-1] == ("sync", own)


# ---------------------------------------------------------------------------------------- shared workspace
SIZES = {"flow": 3000, "motion": 7000, "synthesis": 1000}  # device_memory_size_v2 of three engines


def activation_blocks(cuda) -> list:
    return [shape for shape, dtype in cuda.allocations if dtype is torch.uint8]


def test_stages_share_one_stream_and_one_block_the_size_of_the_largest():
    cuda = FakeCuda()
    engines = {name: FakeEngine(cuda, memory) for name, memory in SIZES.items()}
    workspace = Workspace.for_engines(cuda, engines.values())
    stages = {
        name: EngineRunner(engine, cuda, strategy=USER_MANAGED, cuda_graph=True, workspace=workspace)
        for name, engine in engines.items()
    }
    assert activation_blocks(cuda) == [(7000,)]  # the largest, not the sum (11000)
    for _ in range(3):  # eager, capture, replay of each stage in turn
        for stage in stages.values():
            for got, want in run_sequence(stage, cuda, [2]):
                torch.testing.assert_close(got, want, rtol=0, atol=0)
    assert activation_blocks(cuda) == [(7000,)]
    contexts = [c for engine in engines.values() for c in engine.contexts]
    assert len(contexts) == 6 and {c.memory for c in contexts} == {(workspace.memory.data_ptr(), 7000)}
    # one stream for all: contexts sharing memory never run at the same time
    assert {h for engine in engines.values() for h in engine.enqueues} == {workspace.stream.cuda_stream}
    assert all(len(engine.replays) == 1 for engine in engines.values())


def test_a_workspace_smaller_than_the_engine_is_refused():
    cuda = FakeCuda()
    with pytest.raises(ValueError, match="workspace of 1000 bytes is too small for an engine that needs 3000"):
        EngineRunner(FakeEngine(cuda), cuda, strategy=USER_MANAGED, workspace=Workspace(cuda, 1000))


def test_load_stages_gives_the_stages_of_an_export_one_workspace(monkeypatch, tmp_path):
    """``load_stages`` over a stand-in TensorRT runtime: every plan is deserialized before one block is sized."""
    from gimm_trt.engines import build

    cuda = FakeCuda()
    engines = {name.encode(): FakeEngine(cuda, memory) for name, memory in SIZES.items()}

    class Runtime:  # trt.Runtime(logger).deserialize_cuda_engine(bytes) -> ICudaEngine
        def __init__(self, logger):
            pass

        def deserialize_cuda_engine(self, data):
            return engines[bytes(data)]

    trt = SimpleNamespace(
        Runtime=Runtime,
        init_libnvinfer_plugins=lambda logger, namespace: True,
        ExecutionContextAllocationStrategy=SimpleNamespace(USER_MANAGED=USER_MANAGED),
    )
    plans = {}
    for name in SIZES:
        plans[name] = tmp_path / f"{name}.plan"
        plans[name].write_bytes(name.encode())
    monkeypatch.setattr(runner.compat, "import_trt", lambda family="tensorrt": trt)
    monkeypatch.setattr(runner.compat, "trt_logger", lambda family="tensorrt": None)
    monkeypatch.setattr(runner.TorchCuda, "on", classmethod(lambda cls, device=None: cuda))
    monkeypatch.setattr(build, "build_engines", lambda export_dir, **kwargs: plans)
    stages = runner.load_stages(tmp_path)
    assert list(stages) == list(SIZES) and activation_blocks(cuda) == [(7000,)]
    (block,) = {stage._memory.data_ptr() for stage in stages.values()}
    (stream,) = {stage._stream.cuda_stream for stage in stages.values()}
    for stage in stages.values():
        (context,) = stage.engine.contexts
        assert context.memory == (block, 7000) and context.strategy is USER_MANAGED
        for got, want in run_sequence(stage, cuda, [3]):
            torch.testing.assert_close(got, want, rtol=0, atol=0)


# ------------------------------------------------------------------------- real TensorRT (GPU only)
@pytest.mark.gpu
@pytest.mark.tensorrt
def test_real_engine_builds_and_runs(tmp_path):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    from gimm_trt.core.stages import TimestepProfile
    from gimm_trt.engines import build_engines, compat
    from gimm_trt.engines.cache import EngineKey
    from gimm_trt.engines.runner import TrtStage

    out = tmp_path / "export"
    out.mkdir()
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 4, 4])
    t = helper.make_tensor_value_info("t", TensorProto.FLOAT, ["T"])
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "x"], ["y"]), helper.make_node("Neg", ["t"], ["z"])],
        "g",
        [x, t],
        [
            helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 4, 4]),
            helper.make_tensor_value_info("z", TensorProto.FLOAT, ["T"]),
        ],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(out / "motion.onnx"))
    path = build_engines(out, profile=TimestepProfile(opt=3, max=4), stages=("motion",))["motion"]
    assert (out / "engines" / EngineKey.of("motion", out / "motion.onnx", compat.current_target()).plan_name) == path
    stage = TrtStage(path, cuda_graph=True)
    assert stage.profile("t") == ((1,), (3,), (4,))
    xs = torch.randn(1, 2, 4, 4, device="cuda")
    base = torch.rand(16, device="cuda")
    # eager, capture, eager, capture, replays of both; slices start 4*i bytes into base (misaligned for i > 0)
    for i, n in enumerate((3, 3, 2, 2, 3, 2, 1)):
        ts = base[i : i + n]
        got = stage({"x": xs, "t": ts})
        torch.testing.assert_close(got["y"], xs * 2)
        torch.testing.assert_close(got["z"], -ts)
    with pytest.raises(ValueError, match="outside the engine's profile"):
        stage({"x": xs, "t": torch.rand(5, device="cuda")})
