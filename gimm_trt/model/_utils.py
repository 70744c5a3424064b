"""Small pure helpers shared by the stages."""

import functools

import torch
import torch.nn as nn
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


@fp32
def warp_region(x: torch.Tensor, flow: torch.Tensor, top: int, left: int, height: int, width: int) -> torch.Tensor:
    """``warp(x, full_flow)`` restricted to the window of ``flow`` at (``top``, ``left``) of a ``height`` x
    ``width`` flow: the grid is sliced from the full-size one, so every sample equals the full warp's.

    Args:
        x: [N,C,H,W] the whole image (samples may land anywhere in it).
        flow: [N,2,h,w] the flow of the window.
    """
    n, _, h, w = flow.shape
    gx = torch.linspace(-1.0, 1.0, width, device=flow.device, dtype=flow.dtype)[left : left + w]
    gy = torch.linspace(-1.0, 1.0, height, device=flow.device, dtype=flow.dtype)[top : top + h]
    gx, gy = gx.view(1, 1, w).expand(n, h, w), gy.view(1, h, 1).expand(n, h, w)
    grid = torch.stack(
        [gx + flow[:, 0] / ((x.shape[3] - 1.0) / 2.0), gy + flow[:, 1] / ((x.shape[2] - 1.0) / 2.0)], dim=3
    )
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=True)


def resize_region(x: torch.Tensor, scale: int, box: tuple) -> torch.Tensor:
    """``resize(x, scale)[..., y0:y1, x0:x1]`` for an integer ``scale``, from a crop of ``x`` one pixel wider
    than the window reads: bilinear upsampling by an integer maps crop pixels to the same source offsets."""
    y0, y1, x0, x1 = box
    h, w = x.shape[-2:]
    a, b = max(y0 // scale - 1, 0), min(-(-y1 // scale) + 1, h)
    c, d = max(x0 // scale - 1, 0), min(-(-x1 // scale) + 1, w)
    out = resize(x[..., a:b, c:d], float(scale))
    return out[..., y0 - scale * a : y1 - scale * a, x0 - scale * c : x1 - scale * c]


def halo(module: nn.Module) -> int:
    """Pixels a stack of convolutions reads beyond each side of its output: dilation * (k - 1) / 2 per
    convolution, times the strides before it. Every convolution of ``module`` counts, as if chained: a bound
    for blocks whose branches run some of them side by side."""
    total, stride = 0, 1
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            k, d = max(m.kernel_size), max(m.dilation)
            total += stride * d * (k - 1) // 2
            stride *= max(m.stride)
    return total


def tiles(height: int, width: int, tile: int, margin: int, distinct: bool = False):
    """(y0, y1, x0, x1) output windows of at most ``tile`` pixels a side covering the frame, each with its
    region read (the window grown by ``margin``, clipped to the frame).

    ``distinct``: only the first window of each kind (its size, its region's size, which frame sides the region
    touches): every window of a kind runs the same operators on the same shapes, so these few give the tiled
    run's peak memory (``model.memory``), not its frames.
    """
    seen = set()
    for y0 in range(0, height, tile):
        for x0 in range(0, width, tile):
            y1, x1 = min(y0 + tile, height), min(x0 + tile, width)
            region = (max(y0 - margin, 0), min(y1 + margin, height), max(x0 - margin, 0), min(x1 + margin, width))
            if distinct:
                ry0, ry1, rx0, rx1 = region
                kind = (y1 - y0, x1 - x0, ry1 - ry0, rx1 - rx0, ry0 == 0, ry1 == height, rx0 == 0, rx1 == width)
                if kind in seen:
                    continue
                seen.add(kind)
            yield (y0, y1, x0, x1), region
