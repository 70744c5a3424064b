"""Small pure helpers shared by the motion and synthesis stages."""
import torch
import torch.nn.functional as F


def resize(x: torch.Tensor, scale: float) -> torch.Tensor:
    """Bilinear resize by a factor, as the official model does (align_corners=False, floor sizes).

    The factor (not the output size) is passed on purpose: PyTorch then maps output to input pixels with
    exactly this factor, which is what the checkpoints were trained with.
    """
    return F.interpolate(x, scale_factor=scale, mode="bilinear", align_corners=False)


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
