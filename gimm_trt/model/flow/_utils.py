"""Pure helpers of the flow estimators: pixel grids, window lookups, correlation, convex upsampling."""
import torch
import torch.nn.functional as F

from .._utils import fp32

# a materialised correlation pyramid larger than this is computed on the fly instead (1080p ds 1 would need
# 2 x 5.3 GiB); below it the volume is faster to look up
VOLUME_BYTES = 512 * 2**20
# memory for the sampled features of one on-the-fly lookup chunk
CHUNK_BYTES = 256 * 2**20


def coords_grid(n: int, h: int, w: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """[N,2,H,W] integer pixel coordinates, x then y."""
    ys, xs = torch.meshgrid(
        torch.arange(h, device=device, dtype=dtype), torch.arange(w, device=device, dtype=dtype), indexing="ij"
    )
    return torch.stack([xs, ys]).unsqueeze(0).expand(n, 2, h, w)


@fp32
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


@fp32
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


class Correlation:
    """All-pairs correlation ``<f0(p), f1(q)> * scale``, avg-pooled over q into ``levels`` levels and read in
    (2r+1)^2 windows around given centres (RAFT's lookup; fp32 always).

    Two ways to the same numbers (up to float rounding): ``"volume"`` materialises the pyramid, (h*w)^2 values at
    level 0, fast to read; ``"features"`` pools f1 instead and, at each lookup, dots f0 with bilinearly sampled
    pooled f1 features: pooling and bilinear sampling are linear in f1, so no volume is needed and memory stays
    proportional to h*w. ``"auto"`` picks the volume while it stays under ``VOLUME_BYTES``.

    Args:
        f0, f1: [B,C,h,w] feature maps; rows of the volume are f0's pixels.
    """

    def __init__(self, f0: torch.Tensor, f1: torch.Tensor, *, levels: int = 4, radius: int = 4, scale: float = 1.0,
                 mode: str = "auto"):
        b, c, h, w = f0.shape
        if mode == "auto":
            mode = "volume" if b * (h * w) ** 2 * 4 * 4 // 3 <= VOLUME_BYTES else "features"
        if mode not in ("volume", "features"):
            raise ValueError(f"correlation mode must be 'auto', 'volume' or 'features', got {mode!r}")
        self.mode = mode
        self.radius = radius
        if mode == "volume":
            self.pyramid = correlation_pyramid(f0, f1, levels, scale)
        else:
            self.f0 = (f0.float() * scale).reshape(b, c, h * w)
            self.pyramid = _pooled(f1.float(), levels)

    def __call__(self, coords: torch.Tensor, shared: bool = False) -> torch.Tensor:
        """Windows at ``coords``: [B,2,h,w] (one centre per pixel), or with ``shared`` [T,2,h,w] (B == 1: T
        centres per pixel). Returns [B or T, levels*(2r+1)^2, h, w], level 0 first."""
        if self.mode == "volume":
            return lookup_pyramid(self.pyramid, coords, self.radius, shared)
        return _lookup_features(self.f0, self.pyramid, coords, self.radius, shared)


@fp32
def _pooled(f: torch.Tensor, levels: int):
    out = [f]
    for _ in range(levels - 1):
        f = F.avg_pool2d(f, 2, stride=2)
        out.append(f)
    return tuple(out)


@fp32
def _lookup_features(f0: torch.Tensor, pyramid, coords: torch.Tensor, radius: int, shared: bool) -> torch.Tensor:
    # f0 [B,C,P] (P = h*w, already scaled); pyramid levels [B,C,h_l,w_l]; coords [Q,2,h,w]
    q, _, h, w = coords.shape
    b, c, p = f0.shape
    k = 2 * radius + 1
    d = torch.arange(-radius, radius + 1, device=coords.device, dtype=torch.float32)
    centers = coords.permute(0, 2, 3, 1).reshape(q, p, 2)
    step = max(1, CHUNK_BYTES // (4 * c * k * k * (q if shared else 1)))
    levels = []
    for i, feat in enumerate(pyramid):
        hl, wl = feat.shape[-2:]
        ctr = centers / 2**i
        gx = (ctr[..., 0].view(q, p, 1, 1) + d.view(1, 1, k, 1)).expand(q, p, k, k)
        gy = (ctr[..., 1].view(q, p, 1, 1) + d.view(1, 1, 1, k)).expand(q, p, k, k)
        grid = torch.stack([2 * gx / (wl - 1) - 1, 2 * gy / (hl - 1) - 1], dim=-1).reshape(q, p, k * k, 2)
        chunks = []
        for s in range(0, p, step):  # bounded memory: C * (2r+1)^2 sampled values per (pixel, query)
            g = grid[:, s:s + step]
            if shared:  # one map, Q queries per pixel: fold the queries into the grid's rows
                sampled = F.grid_sample(feat, g.reshape(1, -1, k * k, 2), align_corners=True)
                sampled = sampled.view(c, q, g.shape[1], k * k)
                chunks.append(torch.einsum("cqpk,cp->qpk", sampled, f0[0, :, s:s + step]))
            else:
                sampled = F.grid_sample(feat, g, align_corners=True)  # [B,C,chunk,kk]
                chunks.append(torch.einsum("bcpk,bcp->bpk", sampled, f0[:, :, s:s + step]))
        levels.append(torch.cat(chunks, dim=1))
    return torch.cat(levels, dim=-1).view(q, h, w, -1).permute(0, 3, 1, 2)


class ConvexUpsample(torch.nn.Module):
    """x8 convex upsampling of a 1/8 flow with a learned 3x3 neighbourhood softmax (RAFT)."""

    def __init__(self, factor: int = 8):
        super().__init__()
        self.factor = factor
        # a fixed one-hot conv extracts the 3x3 neighbourhood (F.unfold has no single ONNX op)
        taps = torch.eye(9).view(9, 1, 3, 3)
        self.register_buffer("taps", taps, persistent=False)

    @fp32
    def forward(self, flow: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        # flow [N,2,h,w]; mask [N,9*f*f,h,w] -> [N,2,f*h,f*w]
        n, _, h, w = flow.shape
        f = self.factor
        mask = torch.softmax(mask.view(n, 1, 9, f, f, h, w), dim=2)
        nb = F.conv2d((f * flow).reshape(n * 2, 1, h, w), self.taps, padding=1).view(n, 2, 9, 1, 1, h, w)
        up = torch.sum(mask * nb, dim=2)  # [N,2,f,f,h,w]
        return up.permute(0, 1, 4, 2, 5, 3).reshape(n, 2, f * h, f * w)
