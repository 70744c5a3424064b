"""The ``tensorrt`` backend: the engines of a ``gimm-export`` directory (``gimm_trt.engines.load_stages``)."""

from __future__ import annotations

from dataclasses import dataclass

from ..core.stages import IO
from ..export.exporter import PRECISIONS as EXPORT_PRECISIONS
from .exported_backend import ExportedBackend

__all__ = ["TrtBackend", "TrtOptions"]


@dataclass(frozen=True, kw_only=True)
class TrtOptions:
    """Options of the tensorrt backend.

    Args:
        cuda_graph: capture and replay CUDA graphs for repeated shapes.
        build: build missing engines (False: a missing engine is an error that says what differs).
    """

    cuda_graph: bool = False
    build: bool = True


class TrtBackend(ExportedBackend):
    """Runs an export's TensorRT engines (built on first use when missing); CUDA tensors in and out.

    Tensors go to the stages as they come (a timestep slice ``t[i:j]`` included): a stage copies what TensorRT
    cannot read in place.

    ``TrtOptions(cuda_graph=True)`` replays captured CUDA graphs for repeated shapes; their outputs are the
    graphs' own buffers, so the frames are cloned before they are handed out.
    """

    name = "tensorrt"
    precisions = {"cuda": EXPORT_PRECISIONS}
    options_type = TrtOptions
    needs = ("tensorrt", "polygraphy")
    runs_exports = True
    splat = "plugin"  # one engine per stage: the splat runs as a TensorRT plugin layer
    batch_bound = True

    def __init__(self, export_dir, *, device="cuda", options: TrtOptions = None):
        super().__init__(export_dir, device=device)
        options = self.make_options(options)
        self.cuda_graph = options.cuda_graph
        self.stages = self._load_stages(options)

    def _load_stages(self, options) -> dict:
        """The runner of each plan, built first where missing (``engines.load_stages``)."""
        from ..engines import load_stages

        return load_stages(self.export_dir, device=self.device, cuda_graph=options.cuda_graph, build=options.build)

    def _run(self, stage: str, feed: dict) -> dict:
        out = self.stages[stage]({k: feed[k] for k in IO[stage][0]})
        if self.cuda_graph and stage == "synthesis":
            out = {k: v.clone() for k, v in out.items()}
        return out
