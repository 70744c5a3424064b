"""Run a TensorRT or TensorRT-RTX plan with torch CUDA tensors in and out, by tensor name.

Written against the TensorRT 10.9+/11 Python API, which TensorRT-RTX shares (``Runtime.deserialize_cuda_engine``,
``ICudaEngine.num_io_tensors/get_tensor_name/get_tensor_mode/get_tensor_dtype/get_tensor_profile_shape/
device_memory_size_v2/create_execution_context``, ``IExecutionContext.set_device_memory/set_input_shape/
get_tensor_shape/set_tensor_address/execute_async_v3``), the names used by Polygraphy's ``TrtRunner`` and
NVIDIA's samples.

The stages of an export enqueue on one stream of their own (a ``Workspace``), ordered with torch's current stream
both ways: torch's current stream is the legacy default stream unless the caller chose another, and TensorRT adds
device-wide synchronisation when it is handed that one. All their execution contexts (per stage one for eager
calls and one per captured CUDA graph) share one block of activation memory, sized for the largest engine, which is
safe because they only ever run one after another on that stream.
"""

from __future__ import annotations

import importlib
import os
from collections import OrderedDict, namedtuple
from collections.abc import Mapping
from pathlib import Path

import torch

from ..core.errors import DeviceError, EngineError, InputError
from . import compat

__all__ = [
    "ALIGNMENT",
    "EngineRunner",
    "Plan",
    "TorchCuda",
    "TrtStage",
    "Workspace",
    "deserialize",
    "load_stages",
    "torch_dtype",
]

_TORCH_DTYPES = {
    "FLOAT": torch.float32,
    "HALF": torch.float16,
    "BF16": torch.bfloat16,
    "INT64": torch.int64,
    "INT32": torch.int32,
    "INT8": torch.int8,
    "UINT8": torch.uint8,
    "BOOL": torch.bool,
}
ALIGNMENT = 256  # bytes: IExecutionContext::setTensorAddress wants every tensor address aligned to it
_MAX_GRAPHS = 4  # captured shape sets kept; each holds its own context, input and output buffers

_Captured = namedtuple("_Captured", "context graph inputs outputs")
Plan = namedtuple("Plan", "runtime engine family")  # a deserialized plan; the runtime must outlive the engine


def torch_dtype(trt_dtype) -> torch.dtype:
    """``trt.DataType.HALF`` -> ``torch.float16`` (by member name, so no TensorRT import is needed)."""
    name = _member_name(trt_dtype)
    if name not in _TORCH_DTYPES:
        raise TypeError(f"TensorRT dtype {name} has no torch counterpart here")
    return _TORCH_DTYPES[name]


def _member_name(member) -> str:
    return getattr(member, "name", str(member)).rsplit(".", 1)[-1]


class TorchCuda:
    """The CUDA pieces a stage uses on one device: streams, allocation, graph capture and replay.

    Every call is plain ``torch.cuda``. They sit in one small class so that a test can stand in for them: a
    CPU-only torch build constructs no stream, event or graph.
    """

    def __init__(self, device: torch.device):
        self.device = device

    @classmethod
    def on(cls, device=None) -> TorchCuda:
        """The runner's one check that CUDA is there (``None``: the current CUDA device)."""
        return cls(compat.cuda_device(device))

    def guard(self):
        return torch.cuda.device(self.device)

    def current_stream(self):
        return torch.cuda.current_stream(self.device)

    def new_stream(self):
        return torch.cuda.Stream(self.device)

    def stream(self, stream):
        """Make ``stream`` torch's current stream inside the block."""
        return torch.cuda.stream(stream)

    def empty(self, shape, dtype: torch.dtype) -> torch.Tensor:
        return torch.empty(shape, dtype=dtype, device=self.device)  # caching allocator blocks: 512-byte aligned

    def record(self, tensor: torch.Tensor, stream) -> None:
        """Tell the caching allocator that ``stream`` uses ``tensor``, so its memory outlives that use."""
        tensor.record_stream(stream)

    def new_graph(self):
        return torch.cuda.CUDAGraph()

    def capture(self, graph, stream):
        # thread-local mode, as TensorRT's own samples capture (cudaStreamCaptureModeThreadLocal)
        return torch.cuda.graph(graph, stream=stream, capture_error_mode="thread_local")


def _set_input_shapes(context, engine, shapes: Mapping[str, tuple]) -> None:
    for name, shape in shapes.items():
        if not context.set_input_shape(name, shape):
            lo, _, hi = (tuple(s) for s in engine.get_tensor_profile_shape(name, 0))
            raise InputError(
                f"input {name!r} of shape {tuple(shape)} is outside the engine's profile "
                f"(min {lo}, max {hi}); rebuild the engines with a larger max_timesteps"
            )


def _empty_outputs(context, dtypes: Mapping[str, torch.dtype], empty) -> dict:
    outputs = {}
    for name, dtype in dtypes.items():
        shape = tuple(context.get_tensor_shape(name))
        if any(d < 0 for d in shape):  # data-dependent shapes would need an IOutputAllocator
            raise RuntimeError(
                f"output {name!r} has shape {shape} after setting the input shapes; "
                "gimm_trt engines have no data-dependent output shapes"
            )
        outputs[name] = empty(shape, dtype)
    return outputs


def _bindable(tensor: torch.Tensor, empty) -> torch.Tensor:
    """``tensor`` itself when TensorRT can read it in place (packed and ALIGNMENT-aligned), else a packed copy in
    a fresh allocation. A slice ``t[i:j]`` is packed but starts ``i`` elements into its storage, and
    ``.contiguous()`` returns it as it is."""
    if tensor.is_contiguous() and tensor.data_ptr() % ALIGNMENT == 0:
        return tensor
    copy = empty(tensor.shape, tensor.dtype)
    copy.copy_(tensor)
    return copy


def _bind(context, tensors: Mapping[str, torch.Tensor]) -> None:
    for name, tensor in tensors.items():
        if not context.set_tensor_address(name, tensor.data_ptr()):
            raise RuntimeError(
                f"TensorRT refused the address {tensor.data_ptr():#x} of tensor {name!r} "
                f"(it must be {ALIGNMENT}-byte aligned)"
            )


def _enqueue(context, stream) -> None:
    if not context.execute_async_v3(stream.cuda_stream):
        raise RuntimeError("TensorRT execute_async_v3 failed; see TensorRT's log above")


def _copy_into(buffers: Mapping[str, torch.Tensor], feed: Mapping[str, torch.Tensor]) -> None:
    """Each tensor of ``feed`` into its buffer (same shape and dtype). A graph's input buffers are its own, made at
    capture: no caller holds them, so every input is copied (the outputs of the stage before included: binding a
    graph to another graph's output buffers would tie their lifetimes and let one stage overwrite what the other
    handed out)."""
    for name, tensor in feed.items():
        buffers[name].copy_(tensor)


def _import_plugin(module: str):
    """Import the splat plugin so engines with its JIT implementation deserialize; AOT engines carry their
    kernel and need no Python, so a failure only matters if deserialization then fails."""
    try:
        importlib.import_module(module)
    except ImportError as err:
        return err
    return None


def _deserialize_causes(family: str, plugin_module: str, named: bool) -> str:
    """The likely causes of a plan that does not deserialize. Another TensorRT or GPU only for a plan given
    directly: the plans ``load_stages`` picks are named for both, and only one matching this machine is picked."""
    causes = ["a truncated or damaged file"]
    if not named:
        causes.insert(0, "a plan built by another TensorRT release or for another GPU")
    if compat.family(family).plugins:
        causes = [
            f"a JIT splat plugin not registered in this process (import {plugin_module})",
            "an AOT splat kernel whose PTX is newer than the CUDA driver (update the driver, or rebuild the plan here)",
        ] + causes
    return "likelier " + ", or ".join(causes)


class Workspace:
    """The stream and the block of activation memory shared by engines that run one after another.

    TensorRT lets execution contexts share device memory as long as they never run at the same time; work on one
    stream never does. So the stages of an export, which always run in turn, need one block sized for the largest
    engine (``for_engines``), not one each.
    """

    def __init__(self, cuda, size: int):
        self.size = size
        with cuda.guard():
            self.stream = cuda.new_stream()
            self.memory = cuda.empty((size,), torch.uint8)
            cuda.record(self.memory, self.stream)  # freed with its last runner, whatever stream is current then

    @classmethod
    def for_engines(cls, cuda, engines) -> Workspace:
        """One workspace for ``engines`` (``ICudaEngine``s): the largest ``device_memory_size_v2`` of them."""
        return cls(cuda, max(engine.device_memory_size_v2 for engine in engines))


class EngineRunner:
    """One deserialized engine: ``runner({name: tensor}) -> {name: tensor}``, on a CUDA stream of its own.

    Inputs are tensors on ``runner.device`` of the engine's dtypes (``runner.dtypes``), in any layout: one that
    TensorRT cannot read in place is copied first. Outputs are allocated with torch, shaped by the execution
    context once the input shapes are set. Work is ordered after what the caller's current stream has queued, and
    the caller's stream waits for it, so results are used like those of any torch op.

    With ``cuda_graph=True`` the second call with a set of input shapes captures the enqueue in a CUDA graph, with
    an execution context of its own that keeps those shapes, and later calls with those shapes replay it (inputs
    are copied into the graph's buffers). The outputs of a graphed call are the graph's own buffers: the next call
    with the same shapes overwrites them, so clone what you keep.

    Args:
        engine: an ``ICudaEngine``.
        cuda (TorchCuda): the device and its streams, allocation and graphs.
        workspace (Workspace): the stream and activation memory to use, shared with the runners of engines that run
            before and after this one; None: a workspace of its own.
        strategy: ``trt.ExecutionContextAllocationStrategy.USER_MANAGED``; contexts get the runner's memory.
        cuda_graph (bool): capture and replay CUDA graphs for repeated input shapes.
        runtime_config: a callable returning a new ``IRuntimeConfig`` for each context (TensorRT-RTX: its runtime
            cache and CUDA-graph strategy); the runner sets ``strategy`` on it. None: contexts are made from
            ``strategy`` alone.
    """

    def __init__(self, engine, cuda, *, strategy, cuda_graph: bool = False, runtime_config=None, workspace=None):
        # set first so that it is released first: a context must go before its config's runtime cache and engine
        self.context = None
        self.engine = engine
        self.device = cuda.device
        self.cuda_graph = cuda_graph
        self._cuda = cuda
        self._strategy = strategy
        self._runtime_config = runtime_config
        self._configs = []  # each context's runtime config lives as long as the runner
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        is_input = {n: _member_name(engine.get_tensor_mode(n)) == "INPUT" for n in names}
        self.input_names = tuple(n for n in names if is_input[n])
        self.output_names = tuple(n for n in names if not is_input[n])
        self.dtypes = {n: torch_dtype(engine.get_tensor_dtype(n)) for n in names}
        workspace = workspace or Workspace(cuda, engine.device_memory_size_v2)
        if workspace.size < engine.device_memory_size_v2:
            raise ValueError(
                f"a workspace of {workspace.size} bytes is too small for an engine that needs "
                f"{engine.device_memory_size_v2}: make it with Workspace.for_engines"
            )
        self._stream = workspace.stream
        self._memory = workspace.memory
        with cuda.guard():
            self.context = self._new_context()  # the eager one, reshaped as calls come
        self._shapes = None  # the input shapes self.context holds now
        self._seen = set()
        self._graphs = OrderedDict()  # input shapes -> _Captured
        self._uncapturable = set()

    @property
    def captured(self) -> int:
        """How many CUDA graphs (input shape sets) the runner holds now."""
        return len(self._graphs)

    def profile(self, name: str) -> tuple:
        """(min, opt, max) shapes of an input in the engine's optimisation profile."""
        return tuple(tuple(s) for s in self.engine.get_tensor_profile_shape(name, 0))

    def __call__(self, feed: Mapping[str, torch.Tensor]) -> dict:
        feed = self._checked(feed)
        shapes = tuple(tuple(feed[n].shape) for n in self.input_names)
        with self._cuda.guard():
            caller = self._cuda.current_stream()
            if self.cuda_graph and shapes not in self._uncapturable:
                return self._graphed(shapes, feed, caller)
            return self._run(shapes, feed, caller)

    def reset_graphs(self) -> None:
        """Drop captured graphs with their contexts and buffers."""
        self._stream.synchronize()  # no replay may still run on a context about to be destroyed
        self._graphs.clear()
        self._seen.clear()
        self._uncapturable.clear()

    def _new_context(self):
        if self._runtime_config is None:
            context = self.engine.create_execution_context(self._strategy)
        else:
            config = self._runtime_config()
            config.set_execution_context_allocation_strategy(self._strategy)
            self._configs.append(config)
            context = self.engine.create_execution_context(config)
        if context is None:
            raise EngineError("TensorRT could not create an execution context (out of GPU memory?)")
        context.set_device_memory(self._memory.data_ptr(), self._memory.numel())  # the workspace's, whole
        return context

    def _checked(self, feed) -> dict:
        missing = [n for n in self.input_names if n not in feed]
        extra = [n for n in feed if n not in self.input_names]
        if missing or extra:
            raise InputError(f"engine inputs are {list(self.input_names)}; missing {missing}, unexpected {extra}")
        for name in self.input_names:
            tensor = feed[name]
            if tensor.device != self.device:
                raise DeviceError(f"input {name!r} is on {tensor.device}, the engine runs on {self.device}")
            if tensor.dtype != self.dtypes[name]:
                raise TypeError(f"input {name!r} is {tensor.dtype}, the engine takes {self.dtypes[name]}")
        return {name: feed[name] for name in self.input_names}

    def _ordered(self, caller, work) -> None:
        """``work()`` on self._stream, after what ``caller`` has queued and before anything it queues next.

        The wait back is also what keeps the caching allocator safe for the tensors of a call (the caller's, the
        outputs, copies): their memory belongs to the caller's stream, which has waited for this work before any
        later allocation there can reuse it. That reuse stays deterministic, unlike ``record_stream``'s.
        """
        self._stream.wait_stream(caller)
        try:
            work()
        finally:
            caller.wait_stream(self._stream)

    def _set_shapes(self, shapes: tuple) -> None:
        if shapes != self._shapes:
            self._shapes = None  # a failure half-way leaves the context in no known state
            _set_input_shapes(self.context, self.engine, dict(zip(self.input_names, shapes)))
            self._shapes = shapes

    def _output_dtypes(self) -> dict:
        return {n: self.dtypes[n] for n in self.output_names}

    def _run(self, shapes: tuple, feed: dict, caller) -> dict:
        self._set_shapes(shapes)
        outputs = _empty_outputs(self.context, self._output_dtypes(), self._cuda.empty)
        inputs = {name: _bindable(tensor, self._cuda.empty) for name, tensor in feed.items()}
        _bind(self.context, {**inputs, **outputs})
        self._ordered(caller, lambda: _enqueue(self.context, self._stream))
        return outputs

    def _graphed(self, shapes: tuple, feed: dict, caller) -> dict:
        entry = self._graphs.get(shapes)
        if entry is not None:
            self._graphs.move_to_end(shapes)
            self._ordered(caller, lambda: self._replay(entry, feed))
            return entry.outputs
        if shapes not in self._seen:  # capture only shapes that repeat
            self._seen.add(shapes)
            return self._run(shapes, feed, caller)
        return self._capture(shapes, feed, caller)

    def _replay(self, entry: _Captured, feed: dict) -> None:
        with self._cuda.stream(self._stream):  # copies and graph launches go on torch's current stream
            _copy_into(entry.inputs, feed)
            entry.graph.replay()

    def _first_run(self, context, inputs: dict, feed: dict) -> None:
        with self._cuda.stream(self._stream):
            _copy_into(inputs, feed)
        _enqueue(context, self._stream)

    def _capture(self, shapes: tuple, feed: dict, caller) -> dict:
        """Run once with a new context and buffers, then capture that context's enqueue; a graph never sees its
        context reshaped, since TensorRT keeps shape-dependent state in the context and the graph replays it."""
        context = self._new_context()
        _set_input_shapes(context, self.engine, dict(zip(self.input_names, shapes)))
        inputs = {name: self._cuda.empty(tensor.shape, tensor.dtype) for name, tensor in feed.items()}
        outputs = _empty_outputs(context, self._output_dtypes(), self._cuda.empty)
        _bind(context, {**inputs, **outputs})
        for tensor in (*inputs.values(), *outputs.values()):  # freed whenever the graph goes, maybe mid-replay
            self._cuda.record(tensor, self._stream)
        graph = self._cuda.new_graph()
        # the first enqueue after setting shapes initialises the context: TensorRT's samples run it uncaptured
        self._ordered(caller, lambda: self._first_run(context, inputs, feed))
        try:
            with self._cuda.capture(graph, self._stream):
                _enqueue(context, self._stream)
        except RuntimeError:  # an engine with work that cannot be captured: run it eagerly from now on
            self._uncapturable.add(shapes)
            self._stream.synchronize()  # the context is about to be destroyed: its run must be over
            return outputs
        self._graphs[shapes] = _Captured(context, graph, inputs, outputs)
        if len(self._graphs) > _MAX_GRAPHS:
            self._stream.synchronize()  # no replay may still run on the context about to be destroyed
            self._graphs.popitem(last=False)
        return outputs


def deserialize(
    plan,
    *,
    device=None,
    plugin_module: str = compat.PLUGIN_MODULE,
    family: str = compat.DEFAULT_FAMILY,
    named: bool = False,
):
    """A ``Plan``: a plan file (or its bytes) deserialized on ``device`` by ``family``'s runtime, for ``TrtStage``.

    ``plugin_module`` is imported first if importable (JIT splat plugins need it registered); not for a family
    without plugins. ``named``: the plan was picked by its name, which carries the TensorRT release and GPU.
    """
    trt = compat.import_trt(family)
    cuda = TorchCuda.on(device)
    data = Path(plan).read_bytes() if isinstance(plan, (str, os.PathLike)) else plan
    plugin_error = _import_plugin(plugin_module) if compat.family(family).plugins else None
    logger = compat.trt_logger(family)
    with cuda.guard():
        trt.init_libnvinfer_plugins(logger, "")
        runtime = trt.Runtime(logger)
        engine = runtime.deserialize_cuda_engine(data)
    if engine is None:
        hint = f"; the splat plugin could not be imported: {plugin_error}" if plugin_error else ""
        raise EngineError(
            f"TensorRT could not deserialize the plan: {_deserialize_causes(family, plugin_module, named)}"
            f"{hint}; see TensorRT's log above"
        )
    return Plan(runtime, engine, family)


class TrtStage(EngineRunner):
    """One plan, deserialized on ``device``: see ``EngineRunner``."""

    def __init__(
        self,
        plan,
        *,
        device=None,
        cuda_graph: bool = False,
        plugin_module: str = compat.PLUGIN_MODULE,
        family: str = compat.DEFAULT_FAMILY,
        runtime_cache=None,
        workspace=None,
    ):
        """
        Args:
            plan (Union[path, bytes-like, Plan]): a plan file written by ``build_engines``, its bytes, or either
                already deserialized (``deserialize``; then ``plugin_module`` and ``family`` are its own).
            device: CUDA device the plan runs on (default: the current one).
            cuda_graph (bool): capture and replay CUDA graphs for repeated input shapes.
            plugin_module (str): see ``deserialize``.
            family (str): the engine family that built the plan: its module deserializes and runs it.
            runtime_cache (RuntimeCacheFile): tensorrt-rtx: where its JIT keeps the kernels compiled for this GPU;
                with it, and with ``cuda_graph``, contexts are made from a runtime config that attaches the cache
                and asks for TensorRT-RTX's own whole-graph capture, which then replaces ours.
            workspace (Workspace): shared with the stages that run before and after this one (``load_stages``);
                None: one of its own.
        """
        self.context = None  # released before the runtime below (attributes go in the order they were first set)
        if not isinstance(plan, Plan):
            plan = deserialize(plan, device=device, plugin_module=plugin_module, family=family)
        self._runtime, engine, family = plan  # the runtime must outlive the engine
        trt = compat.import_trt(family)
        runtime_config = None
        if compat.family(family).aot and (runtime_cache is not None or cuda_graph):  # JIT-specialised at run time
            runtime_config = _rtx_config(trt, engine, runtime_cache, cuda_graph)
            cuda_graph = False  # TensorRT-RTX captures and replays inside execute_async_v3
        super().__init__(
            engine,
            TorchCuda.on(device),
            strategy=trt.ExecutionContextAllocationStrategy.USER_MANAGED,
            cuda_graph=cuda_graph,
            runtime_config=runtime_config,
            workspace=workspace,
        )


def _rtx_config(trt, engine, runtime_cache, cuda_graph: bool):
    """A factory of TensorRT-RTX runtime configs: the shared runtime cache attached, and its whole-graph CUDA
    capture asked for with ``cuda_graph``."""

    def make():
        config = engine.create_runtime_config()
        if runtime_cache is not None:
            runtime_cache.attach(config)
            # compile the shape-specialised kernels at the first run instead of in the background, so that the
            # cache saved after a pair holds them all (a lazy compile could finish after the last save)
            config.dynamic_shapes_kernel_specialization_strategy = trt.DynamicShapesKernelSpecializationStrategy.EAGER
        if cuda_graph:
            config.cuda_graph_strategy = trt.CudaGraphStrategy.WHOLE_GRAPH_CAPTURE
        return config

    return make


def load_stages(
    export_dir,
    *,
    device=None,
    cuda_graph: bool = False,
    build: bool = True,
    family: str = compat.DEFAULT_FAMILY,
    compute_capabilities=None,
    runtime_cache=None,
) -> dict:
    """``TrtStage`` per plan of an export directory (a stage, or a part such as ``motion.0`` where the family
    builds the stage as parts), in run order, building missing plans first (``build_engines``); they share one
    ``Workspace``."""
    from .build import build_engines

    paths = build_engines(
        export_dir, build=build, device=device, family=family, compute_capabilities=compute_capabilities
    )
    plans = {name: deserialize(path, device=device, family=family, named=True) for name, path in paths.items()}
    # the stages always run in turn: one stream and one activation block, the size of the largest, serve them all
    workspace = Workspace.for_engines(TorchCuda.on(device), [plan.engine for plan in plans.values()])
    return {
        name: TrtStage(
            plan, device=device, cuda_graph=cuda_graph, family=family, runtime_cache=runtime_cache, workspace=workspace
        )
        for name, plan in plans.items()
    }
