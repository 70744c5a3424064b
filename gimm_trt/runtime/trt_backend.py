"""The ``tensorrt`` backend: the engines of a ``gimm-export`` directory (``gimm_trt.engines.load_stages``)."""

from __future__ import annotations

from ..core.stages import IO
from .backend import TrtOptions
from .exported_backend import ExportedBackend

__all__ = ["TrtBackend"]


class TrtBackend(ExportedBackend):
    """Runs an export's TensorRT engines (built on first use when missing); CUDA tensors in and out.

    Tensors go to the stages as they come (a timestep slice ``t[i:j]`` included): a stage copies what TensorRT
    cannot read in place.

    ``TrtOptions(cuda_graph=True)`` replays captured CUDA graphs for repeated shapes; their outputs are the
    graphs' own buffers, so the frames are cloned before they are handed out.
    """

    name = "tensorrt"

    def __init__(self, export_dir, *, device="cuda", options: TrtOptions = TrtOptions()):
        from ..engines import load_stages

        super().__init__(export_dir, device=device)
        self.cuda_graph = options.cuda_graph
        self.stages = load_stages(export_dir, device=self.device, cuda_graph=options.cuda_graph, build=options.build)

    def _run(self, stage: str, feed: dict) -> dict:
        out = self.stages[stage]({k: feed[k] for k in IO[stage][0]})
        if self.cuda_graph and stage == "synthesis":
            out = {k: v.clone() for k, v in out.items()}
        return out
