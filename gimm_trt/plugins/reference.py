"""Pure-PyTorch summation splatting: the test oracle for every other implementation."""
import torch


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
    x = x.float()
    flow = flow.float()
    gx = torch.arange(w, device=x.device, dtype=torch.float32).view(1, 1, w)
    gy = torch.arange(h, device=x.device, dtype=torch.float32).view(1, h, 1)
    px = gx + flow[:, 0]  # [N,H,W]
    py = gy + flow[:, 1]
    finite = torch.isfinite(px) & torch.isfinite(py)
    px = torch.where(finite, px, torch.zeros_like(px))
    py = torch.where(finite, py, torch.zeros_like(py))
    x0 = torch.floor(px)
    y0 = torch.floor(py)
    x1 = x0 + 1.0
    y1 = y0 + 1.0
    # the official kernel's weight expressions, kept verbatim for float parity
    corners = (
        (x0, y0, (x1 - px) * (y1 - py)),
        (x1, y0, (px - x0) * (y1 - py)),
        (x0, y1, (x1 - px) * (py - y0)),
        (x1, y1, (px - x0) * (py - y0)),
    )
    values = x.permute(0, 2, 3, 1).reshape(n * h * w, c)  # channels last so one index_add moves C values
    base = (torch.arange(n, device=x.device) * (h * w)).view(n, 1, 1)
    dump = n * h * w  # dropped contributions go to one extra row that is cut off at the end
    out = torch.zeros(n * h * w + 1, c, device=x.device, dtype=torch.float32)
    for cx, cy, weight in corners:
        inside = finite & (cx >= 0) & (cx < w) & (cy >= 0) & (cy < h)
        index = base + cy.long().clamp(0, h - 1) * w + cx.long().clamp(0, w - 1)
        index = torch.where(inside, index, torch.full_like(index, dump))
        out.index_add_(0, index.reshape(-1), values * weight.reshape(-1, 1))
    return out[:dump].view(n, h, w, c).permute(0, 3, 1, 2).contiguous()
