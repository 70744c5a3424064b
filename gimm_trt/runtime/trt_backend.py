"""The ``tensorrt`` backend: the engines of a ``gimm-export`` directory (``gimm_trt.engines.load_stages``)."""
from __future__ import annotations

from pathlib import Path

import torch

from ..model.gimm import FLOW_OUTPUTS, SYNTHESIS_INPUTS
from .backends import resolve_device

__all__ = ["TrtBackend"]


class TrtBackend:
    """Runs an export's TensorRT engines (built on first use when missing); CUDA tensors in and out.

    Tensors go to the stages as they come (a timestep slice ``t[i:j]`` included): a stage copies what TensorRT
    cannot read in place.

    ``cuda_graph=True`` replays captured CUDA graphs for repeated shapes; their outputs are the graphs' own
    buffers, so the frames are cloned before they are handed out.
    """

    name = "tensorrt"

    def __init__(self, export_dir, *, device="cuda", cuda_graph: bool = False, build: bool = True, **build_options):
        from ..engines import load_stages
        from ..export.manifest import ExportInfo

        self.info = ExportInfo.read(export_dir)
        self.device = resolve_device(device)
        if self.device.type != "cuda":
            raise ValueError(f"the tensorrt backend runs on CUDA devices, got device={str(self.device)!r}")
        self.precision = self.info.precision
        self.ds_scale = self.info.ds_scale
        self.cuda_graph = cuda_graph
        self.stages = load_stages(export_dir, device=self.device, cuda_graph=cuda_graph, build=build, **build_options)

    @property
    def export_dir(self) -> Path:
        return self.info.path

    def check_frames(self, height: int, width: int) -> None:
        self.info.check_frames(height, width)

    def flow(self, img0, img1, ds: float) -> dict:
        self.info.check_padded(img0, ds)
        out = self.stages["flow"]({"img0": img0, "img1": img1})
        return {k: out[k] for k in FLOW_OUTPUTS}

    def motion(self, flow01, flow10, t) -> torch.Tensor:
        return self.stages["motion"]({"flow01": flow01, "flow10": flow10, "t": t})["flowt"]

    def synthesis(self, img0, img1, feats: dict, flowt, t, ds: float) -> torch.Tensor:
        self.info.check_ds(ds)
        feed = {"img0": img0, "img1": img1, "flowt": flowt, "t": t, **feats}
        frames = self.stages["synthesis"]({k: feed[k] for k in SYNTHESIS_INPUTS})["frames"]
        return frames.clone() if self.cuda_graph else frames
