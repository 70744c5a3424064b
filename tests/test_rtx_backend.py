"""The tensorrt-rtx backend's pieces that run without a GPU: its runtime-cache file against a stand-in that
behaves as TensorRT-RTX documents ``IRuntimeCache``, and its motion stage (the parts' engines with our splat kernel
between them) with ONNX Runtime sessions standing in for the parts' engines."""

import numpy as np
import pytest
import torch

from gimm_trt.engines.runtime_cache import RuntimeCacheFile, runtime_cache_path


class FakeRuntimeCache:
    """``IRuntimeCache`` as documented: ``deserialize`` validates a blob against the environment and returns False,
    loading nothing, on a mismatch; ``serialize`` returns host memory (a buffer) of what it holds."""

    def __init__(self, environment: bytes):
        self.environment = environment
        self.kernels = []

    def deserialize(self, blob) -> bool:
        env, _, kernels = bytes(blob).partition(b"|")
        if env != self.environment:
            return False
        self.kernels = [k for k in kernels.split(b",") if k]
        return True

    def serialize(self):
        return memoryview(self.environment + b"|" + b",".join(self.kernels))


class FakeRuntimeConfig:
    def __init__(self, environment: bytes):
        self.environment = environment
        self.cache = None

    def create_runtime_cache(self):
        return FakeRuntimeCache(self.environment)

    def set_runtime_cache(self, cache) -> bool:
        self.cache = cache
        return True


def test_runtime_cache_persists_what_the_jit_compiled(tmp_path):
    path = runtime_cache_path(tmp_path, version="1.7.1.116", gpu="rtx-4090")
    assert path.name == "runtime-cache.rtx-4090.rtx1.7.1.116.bin"
    first = RuntimeCacheFile(path)
    configs = [FakeRuntimeConfig(b"sm89"), FakeRuntimeConfig(b"sm89")]
    for config in configs:
        first.attach(config)
    assert first.loaded is False and configs[0].cache is configs[1].cache  # one cache for every context
    assert not first.save() or path.read_bytes() == b"sm89|"
    configs[0].cache.kernels.append(b"conv_t1")  # the JIT compiled a kernel for a new shape
    assert first.save() and path.read_bytes() == b"sm89|conv_t1"
    assert not first.save()  # nothing new: nothing written

    second = RuntimeCacheFile(path)  # the next process
    config = FakeRuntimeConfig(b"sm89")
    second.attach(config)
    assert second.loaded is True and config.cache.kernels == [b"conv_t1"]
    assert not second.save()

    other_gpu = RuntimeCacheFile(path)  # a blob TensorRT-RTX refuses: an empty cache, the file replaced on save
    config = FakeRuntimeConfig(b"sm120")
    other_gpu.attach(config)
    assert other_gpu.loaded is False and config.cache.kernels == []
    config.cache.kernels.append(b"conv_t8")
    assert other_gpu.save() and path.read_bytes() == b"sm120|conv_t8"


def test_an_unwritable_cache_file_is_logged_once_and_never_fails_a_run(tmp_path, caplog):
    (tmp_path / "engines").write_text("a file where the folder should be")
    cache = RuntimeCacheFile(tmp_path / "engines" / "runtime-cache.bin")
    config = FakeRuntimeConfig(b"sm89")
    cache.attach(config)
    config.cache.kernels.append(b"conv_t1")
    with caplog.at_level("WARNING", logger="gimm_trt.engines"):
        assert cache.save() is False
        config.cache.kernels.append(b"conv_t2")
        assert cache.save() is False  # not tried again
    warned = [r.getMessage() for r in caplog.records if "runtime cache" in r.getMessage()]
    assert len(warned) == 1 and str(cache.path) in warned[0] and warned[0].endswith("each process compiles again")


def test_refused_cache_is_an_engine_error(tmp_path):
    from gimm_trt.core.errors import EngineError

    class Refusing(FakeRuntimeConfig):
        def set_runtime_cache(self, cache) -> bool:
            return False

    with pytest.raises(EngineError, match="TensorRT-RTX refused its runtime cache"):
        RuntimeCacheFile(tmp_path / "c.bin").attach(Refusing(b"x"))


def test_motion_runs_as_the_parts_engines_around_our_splat(r_exports):
    """RtxBackend's motion stage: each part's engine (here an ONNX Runtime session of the same part, on the CPU)
    with the torch splat between them equals the whole plugin-form graph with the splat as a custom op."""
    pytest.importorskip("onnxruntime_extensions")
    from gimm_trt.export import partition
    from gimm_trt.export.ort import ort_session
    from gimm_trt.runtime.rtx_backend import RtxBackend

    export_dir = r_exports["fp32"]
    partition.write_parts(export_dir)
    plan = partition.load_plan(export_dir)

    def engine(step):
        session = ort_session(export_dir / step.file, providers=["CPUExecutionProvider"])

        def run(feed):
            values = session.run(list(step.outputs), {k: v.numpy() for k, v in feed.items()})
            return {name: torch.from_numpy(v) for name, v in zip(step.outputs, values)}

        return run

    backend = RtxBackend.__new__(RtxBackend)  # the parts' runners, not CUDA engines: nothing else is touched
    backend.stages = {f"motion.{step.index}": engine(step) for step in plan.parts}
    backend.motion_plan = plan
    backend.runtime_cache = None
    backend.cuda_graph = False
    h, w = 128, 256
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    flow01 = torch.stack([0.05 * (xs - w / 2) + 1.5, 0.04 * (ys - h / 2) - 0.7]).unsqueeze(0)
    flow10 = -flow01 + 0.3 * torch.sin(xs / 11.0)
    t = torch.tensor([0.25, 0.5, 0.75])
    got = backend.motion(flow01, flow10, t)
    whole = ort_session(export_dir / "motion.onnx", providers=["CPUExecutionProvider"])
    (want,) = whole.run(None, {"flow01": flow01.numpy(), "flow10": flow10.numpy(), "t": t.numpy()})
    assert got.shape == (3, 2, h, w) and np.abs(want).max() > 1.0
    assert np.abs(got.numpy() - want).max() <= 1e-6


def test_flow_runs_without_timesteps_and_synthesis_keeps_the_cache_once_per_batch_size():
    """The flow stage's feed has no ``t``; synthesis saves the runtime cache after the first pair of each batch
    size, not after every pair."""
    from types import SimpleNamespace

    from gimm_trt.core.stages import SYNTHESIS_INPUTS
    from gimm_trt.runtime.rtx_backend import RtxBackend

    seen = []
    backend = RtxBackend.__new__(RtxBackend)  # stage runners that record what they are fed: nothing else is touched
    backend.stages = {
        "flow": lambda feed: seen.append(("flow", sorted(feed))) or {"flow01": feed["img0"]},
        "synthesis": lambda feed: {"frames": feed["t"]},
    }
    backend.motion_plan = None
    backend.cuda_graph = False
    saves = []
    backend.runtime_cache = SimpleNamespace(save=lambda: saves.append(1))
    backend._cached_shapes = set()
    img = torch.zeros(1, 3, 8, 8)
    assert backend._run("flow", {"img0": img, "img1": img})["flow01"] is img
    assert seen == [("flow", ["img0", "img1"])] and saves == []
    for steps in (3, 3, 1, 3):
        backend._run("synthesis", {**{name: img for name in SYNTHESIS_INPUTS}, "t": torch.zeros(steps)})
    assert saves == [1, 1]  # batch sizes 3 and 1, each once
