"""Small pure helpers shared by the stages."""
import functools

import torch
import torch.nn.functional as F


def fp32(fn):
    """Run ``fn`` in float32 with autocast off (an "fp32 island" of the fp16 path).

    Coordinates, resampling, correlation and normalisers stay float32 under ``precision="fp16"``: fp16
    coordinates above ~2048 px and fp16 warps cause visible artefacts. Outside autocast this is a plain call.
    """

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        if not (torch.is_autocast_enabled("cuda") or torch.is_autocast_enabled("cpu")):
            return fn(*args, **kwargs)
        args = [a.float() if isinstance(a, torch.Tensor) and a.is_floating_point() else a for a in args]
        with torch.autocast("cuda", enabled=False), torch.autocast("cpu", enabled=False):
            return fn(*args, **kwargs)

    return wrapper


@fp32
def resize(x: torch.Tensor, scale: float) -> torch.Tensor:
    """Bilinear resize by a factor, as the official model does (align_corners=False, floor sizes).

    The factor (not the output size) is passed on purpose: PyTorch then maps output to input pixels with
    exactly this factor, which is what the checkpoints were trained with.
    """
    return F.interpolate(x, scale_factor=scale, mode="bilinear", align_corners=False)


@fp32
def warp(x: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Backward warp: sample ``x`` at (pixel + flow), bilinear, border padding.

    Args:
        x: [N,C,H,W].
        flow: [N,2,H,W] float32, pixels (x then y).
    """
    n, _, h, w = flow.shape
    # the official normalisation: a [-1, 1] linspace grid plus flow / ((size - 1) / 2)
    gx = torch.linspace(-1.0, 1.0, w, device=flow.device, dtype=flow.dtype).view(1, 1, w).expand(n, h, w)
    gy = torch.linspace(-1.0, 1.0, h, device=flow.device, dtype=flow.dtype).view(1, h, 1).expand(n, h, w)
    grid = torch.stack(
        [gx + flow[:, 0] / ((x.shape[3] - 1.0) / 2.0), gy + flow[:, 1] / ((x.shape[2] - 1.0) / 2.0)], dim=3
    )
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=True)
