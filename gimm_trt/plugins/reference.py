"""Pure-PyTorch summation splatting: the test oracle for every other implementation."""

import torch


def corners(flow: torch.Tensor, h: int, w: int):
    """Where each source pixel lands: its four integer neighbours, their bilinear weights and validity.

    Args:
        flow: [N,2,H,W] displacement in pixels (x then y).

    Returns:
        weights [N,4,H,W] float32 (corner order NW, NE, SW, SE, the official kernel's expressions so the
        contributions are bitwise the same), index [N,4,H,W] int64 flat target ``y * W + x`` (clamped into the
        image), inside [N,4,H,W] bool: the source position is finite and the neighbour lies in the image.
    """
    flow = flow.float()
    px = torch.arange(w, device=flow.device, dtype=torch.float32).view(1, 1, w) + flow[:, 0]  # [N,H,W]
    py = torch.arange(h, device=flow.device, dtype=torch.float32).view(1, h, 1) + flow[:, 1]
    finite = torch.isfinite(px) & torch.isfinite(py)
    px = torch.where(finite, px, torch.zeros_like(px))
    py = torch.where(finite, py, torch.zeros_like(py))
    x0 = torch.floor(px)
    y0 = torch.floor(py)
    x1 = x0 + 1.0
    y1 = y0 + 1.0
    weights = torch.stack(
        [(x1 - px) * (y1 - py), (px - x0) * (y1 - py), (x1 - px) * (py - y0), (px - x0) * (py - y0)], 1
    )
    cx = torch.stack([x0, x1, x0, x1], 1)
    cy = torch.stack([y0, y0, y1, y1], 1)
    inside = finite.unsqueeze(1) & (cx >= 0) & (cx < w) & (cy >= 0) & (cy < h)
    # clamp in float before the cast so no huge coordinate reaches the integer conversion
    index = cy.clamp(0, h - 1).long() * w + cx.clamp(0, w - 1).long()
    return weights, index, inside


def splat_sum(x: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Forward-warp ``x`` by ``flow``, summing bilinear contributions.

    Args:
        x: [N,C,H,W] float, the values to splat.
        flow: [N,2,H,W] float, displacement in pixels (x then y).

    Returns:
        [N,C,H,W] float32. Each source pixel (i, j) adds ``x * w`` to the four integer neighbours of
        (j + flow_x, i + flow_y) with the bilinear weights of the official kernel; sources with a
        non-finite position are skipped and neighbours outside the image are dropped.
    """
    n, c, h, w = x.shape
    weights, index, inside = corners(flow, h, w)
    values = x.float().permute(0, 2, 3, 1).reshape(n * h * w, c)  # channels last: one index_add moves C values
    base = (torch.arange(n, device=x.device) * (h * w)).view(n, 1, 1)
    dump = n * h * w  # dropped contributions go to one extra row that is cut off at the end
    out = torch.zeros(n * h * w + 1, c, device=x.device, dtype=torch.float32)
    for k in range(4):
        target = torch.where(inside[:, k], base + index[:, k], torch.full_like(index[:, k], dump))
        out.index_add_(0, target.reshape(-1), values * weights[:, k].reshape(-1, 1))
    return out[:dump].view(n, h, w, c).permute(0, 3, 1, 2).contiguous()
