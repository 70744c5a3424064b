"""Pure helpers of the flow estimators: pixel grids, window lookups, convex upsampling."""
import torch
import torch.nn.functional as F


def coords_grid(n: int, h: int, w: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """[N,2,H,W] integer pixel coordinates, x then y."""
    ys, xs = torch.meshgrid(
        torch.arange(h, device=device, dtype=dtype), torch.arange(w, device=device, dtype=dtype), indexing="ij"
    )
    return torch.stack([xs, ys]).unsqueeze(0).expand(n, 2, h, w)


def lookup_window(volume: torch.Tensor, centers: torch.Tensor, radius: int) -> torch.Tensor:
    """Bilinearly sample a (2r+1)^2 window around each center of one map per row.

    Args:
        volume: [M,1,h,w] one correlation map per row (a pyramid level).
        centers: [M,Q,2] window centres in pixels of this level (x, y); Q windows per map.
        radius: r.

    Returns:
        [M,Q,(2r+1)^2]; channel k = (2r+1)*i + j samples (x + i - r, y + j - r): the x offset is the slow
        index, the convention the released weights were trained with. Zero padding, align_corners=True.
    """
    m, q, _ = centers.shape
    k = 2 * radius + 1
    h, w = volume.shape[-2:]
    d = torch.arange(-radius, radius + 1, device=centers.device, dtype=centers.dtype)
    gx = (centers[..., 0].view(m, q, 1, 1) + d.view(1, 1, k, 1)).expand(m, q, k, k)
    gy = (centers[..., 1].view(m, q, 1, 1) + d.view(1, 1, 1, k)).expand(m, q, k, k)
    grid = torch.stack([2 * gx / (w - 1) - 1, 2 * gy / (h - 1) - 1], dim=-1).reshape(m, q * k, k, 2)
    out = F.grid_sample(volume, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
    return out.view(m, q, k * k)


def lookup_pyramid(pyramid, coords: torch.Tensor, radius: int, shared: bool = False) -> torch.Tensor:
    """Window lookups in every level of an all-pairs correlation pyramid.

    Args:
        pyramid: tuple of levels [B*h*w,1,h_l,w_l], rows indexed by source pixel (row-major).
        coords: [B,2,h,w] lookup centres in level-0 pixels, one per map; or, with ``shared=True``, [T,2,h,w]
            centres for ONE volume (B == 1) that all T sets of centres query (the T timesteps of a pair).

    Returns:
        [B or T, levels*(2r+1)^2, h, w], level 0 first.
    """
    t, _, h, w = coords.shape
    if shared:  # the maps are the rows, the timesteps the queries of each map
        centers = coords.permute(2, 3, 0, 1).reshape(h * w, t, 2)
    else:
        centers = coords.permute(0, 2, 3, 1).reshape(t * h * w, 1, 2)
    levels = [lookup_window(level, centers / 2**i, radius) for i, level in enumerate(pyramid)]
    out = torch.cat(levels, dim=-1)  # [rows, queries, L*k*k]
    if shared:
        return out.view(h, w, t, -1).permute(2, 3, 0, 1)
    return out.view(t, h, w, -1).permute(0, 3, 1, 2)


def correlation_pyramid(f0: torch.Tensor, f1: torch.Tensor, levels: int, scale: float):
    """All-pairs correlation <f0(p), f1(q)> * scale as [B*h*w,1,h,w], avg-pooled into ``levels`` levels."""
    b, c, h, w = f0.shape
    corr = torch.matmul(f0.view(b, c, h * w).transpose(1, 2), f1.view(b, c, h * w)) * scale
    corr = corr.view(b * h * w, 1, h, w)
    pyramid = [corr]
    for _ in range(levels - 1):
        corr = F.avg_pool2d(corr, 2, stride=2)
        pyramid.append(corr)
    return tuple(pyramid)


class ConvexUpsample(torch.nn.Module):
    """x8 convex upsampling of a 1/8 flow with a learned 3x3 neighbourhood softmax (RAFT)."""

    def __init__(self, factor: int = 8):
        super().__init__()
        self.factor = factor
        # a fixed one-hot conv extracts the 3x3 neighbourhood (F.unfold has no single ONNX op)
        taps = torch.eye(9).view(9, 1, 3, 3)
        self.register_buffer("taps", taps, persistent=False)

    def forward(self, flow: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        # flow [N,2,h,w]; mask [N,9*f*f,h,w] -> [N,2,f*h,f*w]
        n, _, h, w = flow.shape
        f = self.factor
        mask = torch.softmax(mask.view(n, 1, 9, f, f, h, w), dim=2)
        nb = F.conv2d((f * flow).reshape(n * 2, 1, h, w), self.taps, padding=1).view(n, 2, 9, 1, 1, h, w)
        up = torch.sum(mask * nb, dim=2)  # [N,2,f,f,h,w]
        return up.permute(0, 1, 4, 2, 5, 3).reshape(n, 2, f * h, f * w)
