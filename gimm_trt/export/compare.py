"""An export run in ONNX Runtime against the PyTorch model it came from, stage by stage.

Each stage gets the *same* inputs in both (the torch stage's outputs feed the next stage of both), so the
numbers measure one graph at a time; ``frames`` also reports the PSNR of the ONNX Runtime frames against
the torch (fp32) frames.
"""

from __future__ import annotations

import torch

from ..core.metrics import psnr
from ..core.stages import IO, STAGES
from ..model.synthetic import synthetic_pair
from .manifest import ExportInfo
from .ort import ort_session, run_on_cpu

__all__ = ["compare_export", "diff_stats"]


def diff_stats(a: torch.Tensor, b: torch.Tensor) -> dict:
    d = (a.double() - b.double()).abs()
    return {"max_abs": d.max().item(), "mean_abs": d.mean().item(), "ref_max_abs": b.abs().max().item()}


def compare_export(export_dir, model, *, img0=None, img1=None, timesteps=(0.25, 0.5, 0.75)) -> dict:
    """Per stage and output: max/mean |ONNX Runtime - torch| on the CPU; plus the frames' PSNR.

    Args:
        model: the fp32 ``GIMMVFI`` the export was made from.
        img0, img1: [1,3,Hp,Wp] in [0,1] at the export's padded size (default: ``synthetic_pair``).
    """
    info = ExportInfo.read(export_dir)
    sessions = {s: ort_session(info.onnx_path(s), providers=["CPUExecutionProvider"]) for s in STAGES}
    if img0 is None:
        img0, img1 = synthetic_pair(*info.padded_size)
    ds = info.ds_scale
    t = torch.tensor(list(timesteps), dtype=torch.float32)
    model = model.cpu().eval()
    with torch.inference_mode():
        feats = dict(zip(IO["flow"][1], model.flow(img0, img1, ds)))
        flowt = model.motion(feats["flow01"], feats["flow10"], t)
        frames = model.synthesis(img0, img1, *(feats[k] for k in IO["synthesis"][0][2:8]), flowt, t, ds)
    feed = {"img0": img0, "img1": img1, "t": t, "flowt": flowt, **feats}
    report = {
        "flow": {k: diff_stats(v, feats[k]) for k, v in run_on_cpu(sessions["flow"], "flow", feed).items()},
        "motion": {"flowt": diff_stats(run_on_cpu(sessions["motion"], "motion", feed)["flowt"], flowt)},
    }
    out = run_on_cpu(sessions["synthesis"], "synthesis", feed)["frames"]
    report["synthesis"] = {"frames": {**diff_stats(out, frames), "psnr_db": psnr(out, frames)}}
    return report
