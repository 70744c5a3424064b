"""An export run in ONNX Runtime against the PyTorch model it came from, stage by stage.

Each stage gets the *same* inputs in both (the torch stage's outputs feed the next stage of both), so the
numbers measure one graph at a time; ``frames`` also reports the PSNR of the ONNX Runtime frames against
the torch (fp32) frames.
"""
from __future__ import annotations

import math

import torch

__all__ = ["compare_export", "psnr", "diff_stats", "smooth_pair"]


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR in dB of images in [0,1] (inf when equal)."""
    mse = (a.double() - b.double()).pow(2).mean().item()
    return math.inf if mse == 0 else 10 * math.log10(1.0 / mse)


def diff_stats(a: torch.Tensor, b: torch.Tensor) -> dict:
    d = (a.double() - b.double()).abs()
    return {"max_abs": d.max().item(), "mean_abs": d.mean().item(), "ref_max_abs": b.abs().max().item()}


def smooth_pair(height: int, width: int, *, seed: int = 0, shift: int = 3) -> tuple:
    """A synthetic frame pair: smooth random texture, the second shifted by ``shift`` pixels (real motion)."""
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(1, 3, height // 8 + 2, width // 8 + 2, generator=g)
    img = torch.nn.functional.interpolate(base, size=(height + shift, width + shift), mode="bicubic").clamp(0, 1)
    return img[..., :height, :width].contiguous(), img[..., shift:, shift:].contiguous()


def compare_export(export_dir, model, *, img0=None, img1=None, timesteps=(0.25, 0.5, 0.75), device="cpu") -> dict:
    """Per stage and output: max/mean |ONNX Runtime - torch|; plus the frames' PSNR.

    Args:
        model: the fp32 ``GIMMVFI`` the export was made from.
        img0, img1: [1,3,Hp,Wp] in [0,1] at the export's padded size (default: ``smooth_pair``).
    """
    from ..runtime.backends import TorchBackend
    from ..runtime.ort_backend import OrtBackend

    ort = OrtBackend(export_dir, device=device)
    ref = TorchBackend(model, device=device)
    hp, wp = ort.info.padded_size
    if img0 is None:
        img0, img1 = smooth_pair(hp, wp)
    ds = ort.info.ds_scale
    t = torch.tensor(list(timesteps), dtype=torch.float32)
    feats = ref.flow(img0, img1, ds)
    flowt = ref.motion(feats["flow01"], feats["flow10"], t)
    frames = ref.synthesis(img0, img1, feats, flowt, t, ds)
    report = {"flow": {k: diff_stats(v, feats[k]) for k, v in ort.flow(img0, img1, ds).items()},
              "motion": {"flowt": diff_stats(ort.motion(feats["flow01"], feats["flow10"], t), flowt)}}
    out = ort.synthesis(img0, img1, feats, flowt, t, ds)
    report["synthesis"] = {"frames": {**diff_stats(out, frames), "psnr_db": psnr(out, frames)}}
    return report
