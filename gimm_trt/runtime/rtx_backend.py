"""The ``tensorrt-rtx`` backend: an export's TensorRT-RTX engines, for GeForce and RTX PRO GPUs.

TensorRT-RTX builds ahead of time on any machine (``gimm-export --build-engines --engine tensorrt-rtx``) and
specialises the plans for the GPU at their first run. It has no plugin layers, so the motion stage runs as the
engines of its standard-op parts with our own splat kernel between them (``export.partition``): Triton on the
current CUDA stream, which the engines' streams are ordered with.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ..core.stages import IO
from ..export.exporter import PRECISIONS as EXPORT_PRECISIONS
from .trt_backend import TrtBackend

__all__ = ["RtxBackend", "RtxOptions"]

FAMILY = "tensorrt-rtx"


@dataclass(frozen=True, kw_only=True)
class RtxOptions:
    """Options of the tensorrt-rtx backend.

    Args:
        cuda_graph: TensorRT-RTX's own whole-graph CUDA capture and replay for repeated shapes.
        build: build missing engines (False: a missing engine is an error that says what differs).
        compute_capabilities: what the engines are built for, such as ``"86,89"`` (default: TensorRT-RTX's set).
        runtime_cache: keep the kernels compiled for this GPU in ``<export>/engines`` for the next process.
    """

    cuda_graph: bool = False
    build: bool = True
    compute_capabilities: Optional[str] = None
    runtime_cache: bool = True


class RtxBackend(TrtBackend):
    """Runs an export's TensorRT-RTX engines (built on first use when missing); CUDA tensors in and out."""

    name = FAMILY
    precisions = {"cuda": EXPORT_PRECISIONS}
    options_type = RtxOptions
    needs = ("tensorrt_rtx", "polygraphy")
    runs_exports = True
    splat = "plugin"  # the splat nodes are where the motion graph is cut into engines
    batch_bound = True

    def __init__(self, export_dir, *, device="cuda", options: RtxOptions = None):
        from ..export.partition import load_plan

        self.runtime_cache = None
        self._cached_shapes = set()  # timestep counts whose kernels the runtime cache file holds
        super().__init__(export_dir, device=device, options=options)
        # TensorRT-RTX's own graph capture hands out fresh output tensors: nothing to clone (see TrtBackend._run)
        self.cuda_graph = False
        self.motion_plan = load_plan(self.export_dir) if "motion" not in self.stages else None

    def _load_stages(self, options) -> dict:
        from ..engines import compat, load_stages
        from ..engines.runtime_cache import RuntimeCacheFile, runtime_cache_path

        if options.runtime_cache:
            path = runtime_cache_path(
                self.export_dir / "engines",
                version=compat.trt_version(compat.import_trt(FAMILY), FAMILY),
                gpu=compat.gpu_name(self.device),
            )
            self.runtime_cache = RuntimeCacheFile(path)
        return load_stages(
            self.export_dir,
            device=self.device,
            cuda_graph=options.cuda_graph,
            build=options.build,
            family=FAMILY,
            compute_capabilities=options.compute_capabilities,
            runtime_cache=self.runtime_cache,
        )

    def _run(self, stage: str, feed: dict) -> dict:
        if stage == "motion" and self.motion_plan is not None:
            from ..export.partition import run_partitioned

            inputs = {k: feed[k] for k in IO[stage][0]}
            return run_partitioned(self.motion_plan, self._run_part, None, inputs)
        out = super()._run(stage, feed)
        if stage == "synthesis" and self.runtime_cache is not None:  # flow has no timesteps
            steps = int(feed["t"].shape[0])
            if steps not in self._cached_shapes:
                # after the first pair of each batch size: what the JIT compiled for these shapes is kept
                self._cached_shapes.add(steps)
                self.runtime_cache.save()
        return out

    def _run_part(self, step, feeds: dict) -> dict:
        return self.stages[f"motion.{step.index}"](feeds)
