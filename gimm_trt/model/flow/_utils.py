"""What RAFT and FlowFormer share: the bidirectional estimate, the input normalisation, pixel grids, window
lookups, correlation and convex upsampling."""

import abc
from typing import NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from .._utils import fp32

# a materialised correlation pyramid larger than this is computed on the fly instead (1080p ds 1 would need
# 2 x 5.3 GiB); below it the volume is faster to look up
VOLUME_BYTES = 512 * 2**20
# memory for the sampled features of one on-the-fly lookup chunk
CHUNK_BYTES = 256 * 2**20


def normalize(img: torch.Tensor) -> torch.Tensor:
    """[0,1] -> [-1,1], the estimators' input range.

    The official model feeds 255*img and computes 2*(v/255)-1; the same operations keep the floats identical.
    """
    return 2 * ((255 * img) / 255.0) - 1.0


class Encoding(NamedTuple):
    """An estimator's per-frame work for a batch of N frames (h, w = H/8, W/8)."""

    fmap: torch.Tensor  # [N,256,h,w] correlation features
    context: torch.Tensor  # [N,256,h,w] what the recurrent refinement starts from
    feat4: torch.Tensor  # [N,C4,2h,2w] 1/4-scale map handed to synthesis
    feat8: torch.Tensor  # [N,C8,h,w] 1/8-scale map handed to synthesis


class BidirectionalEstimator(nn.Module, abc.ABC):
    """Flow in both directions between two frames, plus the features GIMM-VFI reuses.

    Each frame is encoded once (``encode``: per frame, reusable by the next pair of a video), and the 0->1 and
    1->0 problems run as one batch of two (``estimate``). Subclasses provide ``frame_features`` and
    ``pair_flow``.
    """

    @abc.abstractmethod
    def frame_features(self, x: torch.Tensor) -> Encoding:
        """[N,3,H,W] in [-1,1] -> ``Encoding``."""

    @abc.abstractmethod
    def pair_flow(self, fsrc: torch.Tensor, ftgt: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """[B,256,h,w] source and target features, source context [B,256,h,w] -> flow [B,2,8h,8w] in pixels."""

    def encode(self, img: torch.Tensor) -> Encoding:
        """Per-frame work for [N,3,H,W] float32 ``img`` in [0,1]; H and W multiples of 8 and >= 128."""
        return self.frame_features(normalize(img))

    def estimate(self, enc0: Encoding, enc1: Encoding) -> tuple[torch.Tensor, ...]:
        """Flows both ways from two frames' ``encode`` outputs; returns what ``forward`` returns."""
        n = enc0.fmap.shape[0]
        # batch item k < n solves 0->1 (frame 0 is the source), k >= n solves 1->0
        fsrc = torch.cat([enc0.fmap, enc1.fmap], dim=0)
        ftgt = torch.cat([enc1.fmap, enc0.fmap], dim=0)
        flow = self.pair_flow(fsrc, ftgt, torch.cat([enc0.context, enc1.context], dim=0))
        return flow[:n], flow[n:], enc0.fmap, enc1.fmap, enc0.feat4, enc1.feat4, enc0.feat8, enc1.feat8

    def forward(self, img0: torch.Tensor, img1: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Flow in both directions between two frames, plus the features GIMM-VFI reuses.

        Args:
            img0, img1: [N,3,H,W] float32 in [0,1]; H and W multiples of 8 and >= 128.

        Returns:
            flow01, flow10: [N,2,H,W] pixels (x then y).
            fmap0, fmap1: [N,256,H/8,W/8] correlation features of each frame.
            feat4_0, feat4_1: [N,C4,H/4,W/4] 1/4-scale context maps of each frame.
            feat8_0, feat8_1: [N,C8,H/8,W/8] 1/8-scale context maps of each frame.
        """
        n = img0.shape[0]
        enc = self.encode(torch.cat([img0, img1], dim=0))  # both frames in one batch
        return self.estimate(Encoding(*(e[:n] for e in enc)), Encoding(*(e[n:] for e in enc)))


def coords_grid(n: int, h: int, w: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """[N,2,H,W] integer pixel coordinates, x then y."""
    ys, xs = torch.meshgrid(
        torch.arange(h, device=device, dtype=dtype), torch.arange(w, device=device, dtype=dtype), indexing="ij"
    )
    return torch.stack([xs, ys]).unsqueeze(0).expand(n, 2, h, w)


def window_grid(centers: torch.Tensor, radius: int, h: int, w: int) -> torch.Tensor:
    """``grid_sample`` coordinates of a (2r+1)^2 window around each centre.

    Args:
        centers: [M,Q,2] window centres in pixels (x, y) of an h x w map.

    Returns:
        [M,Q,2r+1,2r+1,2], normalised for align_corners=True; entry [.., i, j] is (x + i - r, y + j - r): the x
        offset is the slow index, the convention the released weights were trained with.
    """
    m, q, _ = centers.shape
    k = 2 * radius + 1
    d = torch.arange(-radius, radius + 1, device=centers.device, dtype=centers.dtype)
    gx = (centers[..., 0].view(m, q, 1, 1) + d.view(1, 1, k, 1)).expand(m, q, k, k)
    gy = (centers[..., 1].view(m, q, 1, 1) + d.view(1, 1, 1, k)).expand(m, q, k, k)
    return torch.stack([2 * gx / (w - 1) - 1, 2 * gy / (h - 1) - 1], dim=-1)


@fp32
def lookup_window(volume: torch.Tensor, centers: torch.Tensor, radius: int) -> torch.Tensor:
    """Bilinearly sample a (2r+1)^2 window around each center of one map per row.

    Args:
        volume: [M,1,h,w] one correlation map per row (a pyramid level).
        centers: [M,Q,2] window centres in pixels of this level (x, y); Q windows per map.
        radius: r.

    Returns:
        [M,Q,(2r+1)^2]; channel k = (2r+1)*i + j samples (x + i - r, y + j - r) (see ``window_grid``). Zero
        padding, align_corners=True.
    """
    m, q, _ = centers.shape
    k = 2 * radius + 1
    grid = window_grid(centers, radius, *volume.shape[-2:]).reshape(m, q * k, k, 2)
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
    out = torch.cat(
        tuple(lookup_window(level, centers / 2**i, radius) for i, level in enumerate(pyramid)), dim=-1
    )  # [rows, queries, L*k*k]
    if shared:
        return out.view(h, w, t, -1).permute(2, 3, 0, 1)
    return out.view(t, h, w, -1).permute(0, 3, 1, 2)


@fp32
def correlation_pyramid(f0: torch.Tensor, f1: torch.Tensor, levels: int, scale: float):
    """All-pairs correlation <f0(p), f1(q)> * scale as [B*h*w,1,h,w], avg-pooled into ``levels`` levels."""
    b, c, h, w = f0.shape
    corr = torch.matmul(f0.view(b, c, h * w).transpose(1, 2), f1.view(b, c, h * w)) * scale
    return _pooled(corr.view(b * h * w, 1, h, w), levels)


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

    def __init__(
        self,
        f0: torch.Tensor,
        f1: torch.Tensor,
        *,
        levels: int = 4,
        radius: int = 4,
        scale: float = 1.0,
        mode: str = "auto",
    ):
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
    """``f`` and ``levels - 1`` successive 2x2 average poolings of it, finest first."""
    out = (f,)
    for _ in range(levels - 1):
        f = F.avg_pool2d(f, 2, stride=2)
        out = out + (f,)
    return out


@fp32
def _lookup_features(f0: torch.Tensor, pyramid, coords: torch.Tensor, radius: int, shared: bool) -> torch.Tensor:
    # f0 [B,C,P] (P = h*w, already scaled); pyramid levels [B,C,h_l,w_l]; coords [Q,2,h,w]
    q, _, h, w = coords.shape
    _, c, p = f0.shape
    k = 2 * radius + 1
    centers = coords.permute(0, 2, 3, 1).reshape(q, p, 2)
    step = max(1, CHUNK_BYTES // (4 * c * k * k * (q if shared else 1)))
    levels = tuple(
        _window_dots(
            f0, feat, window_grid(centers / 2**i, radius, *feat.shape[-2:]).reshape(q, p, k * k, 2), step, shared
        )
        for i, feat in enumerate(pyramid)
    )
    return torch.cat(levels, dim=-1).view(q, h, w, -1).permute(0, 3, 1, 2)


def _window_dots(f0: torch.Tensor, feat: torch.Tensor, grid: torch.Tensor, step: int, shared: bool) -> torch.Tensor:
    # f0 [B,C,P], feat [B,C,h_l,w_l], grid [Q,P,kk,2] -> <f0(p), feat(window sample)> [Q,P,kk], ``step`` pixels
    # at a time: memory for C * (2r+1)^2 sampled values per (pixel, query) stays bounded
    return torch.cat(
        tuple(
            _chunk_dots(f0[:, :, s : s + step], feat, grid[:, s : s + step], shared)
            for s in range(0, grid.shape[1], step)
        ),
        dim=1,
    )


def _chunk_dots(f0: torch.Tensor, feat: torch.Tensor, grid: torch.Tensor, shared: bool) -> torch.Tensor:
    if shared:  # one map, Q queries per pixel: fold the queries into the grid's rows
        q, p, kk, _ = grid.shape
        sampled = F.grid_sample(feat, grid.reshape(1, -1, kk, 2), align_corners=True)
        return torch.einsum("cqpk,cp->qpk", sampled.view(feat.shape[1], q, p, kk), f0[0])
    sampled = F.grid_sample(feat, grid, align_corners=True)  # [B,C,chunk,kk]
    return torch.einsum("bcpk,bcp->bpk", sampled, f0)


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
