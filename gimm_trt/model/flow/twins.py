"""Twins-SVT building blocks (the timm 0.4.12 layout the FlowFormer checkpoints use) and shared attention helpers.

Only what GIMM-VFI-F runs is here: the first two stages of ``twins_svt_large`` (locally grouped and global
sub-sampled attention, position convs) and the window / head reshapes that FlowFormer's cost encoder reuses.
Attention is plain ``matmul -> softmax -> matmul`` so that every block exports to ONNX as is.
"""

from collections import OrderedDict

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = [
    "attend",
    "split_heads",
    "merge_heads",
    "pad_to_multiple",
    "to_windows",
    "from_windows",
    "ffn",
    "Mlp",
    "Block",
    "LocallyGroupedAttn",
    "GlobalSubSampleAttn",
    "PosConv",
    "PatchEmbed",
    "TwinsSVT",
    "TwinsEncoder",
    "UnusedWeights",
]


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float) -> torch.Tensor:
    """softmax(q k^T * scale) v over the last two axes: q [..., Lq, d], k [..., Lk, d], v [..., Lk, dv].

    ``scaled_dot_product_attention`` keeps eager PyTorch from materialising the weights (the cost encoder's
    global attention alone would be 8*(h*w)^2 floats per direction); the ONNX exporters (opset 17-19) write it
    as MatMul -> Softmax -> MatMul with the scale applied to q and k. Inputs are made 4-D: the dynamo exporter
    only lowers 4-D attention, and PyTorch's CPU kernels are much slower on 5-D inputs. Leading axes may
    broadcast for 4-D inputs; otherwise q, k and v share them.
    """
    if q.dim() == 4:
        return F.scaled_dot_product_attention(q, k, v, scale=scale)
    lead = q.shape[:-2]
    q, k, v = (t.reshape(-1, *t.shape[-3:]) if t.dim() > 4 else t.reshape(-1, 1, *t.shape[-2:]) for t in (q, k, v))
    return F.scaled_dot_product_attention(q, k, v, scale=scale).reshape(*lead, q.shape[-2], v.shape[-1])


def split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """[..., L, heads*d] -> [..., heads, L, d]."""
    *lead, length, c = x.shape
    return x.reshape(*lead, length, heads, c // heads).transpose(-3, -2)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """[..., heads, L, d] -> [..., L, heads*d]."""
    *lead, heads, length, d = x.shape
    return x.transpose(-3, -2).reshape(*lead, length, heads * d)


def pad_to_multiple(x: torch.Tensor, m: int) -> torch.Tensor:
    """Zero-pad a [B,H,W,C] token map on the right and bottom so that H and W are multiples of ``m``."""
    h, w = x.shape[1:3]
    pad_b, pad_r = (m - h % m) % m, (m - w % m) % m
    if pad_b == 0 and pad_r == 0:  # static shapes: decided once per size
        return x
    return F.pad(x, (0, 0, 0, pad_r, 0, pad_b))


def to_windows(x: torch.Tensor, ws: int) -> torch.Tensor:
    """[B,H,W,C] (H, W multiples of ws) -> [B, (H/ws)*(W/ws), ws*ws, C], windows row-major."""
    b, h, w, c = x.shape
    x = x.reshape(b, h // ws, ws, w // ws, ws, c).transpose(2, 3)
    return x.reshape(b, (h // ws) * (w // ws), ws * ws, c)


def from_windows(x: torch.Tensor, h: int, w: int, ws: int) -> torch.Tensor:
    """Inverse of ``to_windows``: [B, nW, ws*ws, C] -> [B,H,W,C]."""
    b, c = x.shape[0], x.shape[-1]
    x = x.reshape(b, h // ws, w // ws, ws, ws, c).transpose(2, 3)
    return x.reshape(b, h, w, c)


def ffn(dim: int) -> nn.Sequential:
    """Linear -> GELU -> Linear; the children are named 0, 1, 3 as in the checkpoints (their dropouts removed)."""
    return nn.Sequential(OrderedDict([("0", nn.Linear(dim, dim)), ("1", nn.GELU()), ("3", nn.Linear(dim, dim))]))


class UnusedWeights(nn.Module):
    """Checkpoint entries the official model stores but never reads, registered under their official names.

    They exist only so that the official state_dicts load with ``strict=True``; no forward uses them, so they
    never reach an exported graph. ``parameters`` maps name -> shape (float32), ``buffers`` name -> tensor.
    """

    def __init__(self, *, parameters=None, buffers=None):
        super().__init__()
        for name, shape in (parameters or {}).items():
            self.register_parameter(name, nn.Parameter(torch.zeros(shape), requires_grad=False))
        for name, value in (buffers or {}).items():
            self.register_buffer(name, value)


class Mlp(nn.Module):
    """fc1 -> GELU (erf) -> fc2."""

    def __init__(self, *, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm transformer block around any token attention: x + attn(norm1(x)), then x + mlp(norm2(x)).

    ``attn(x, size, *extra)`` gets the normalised tokens [B,H*W,C], the token map size (H, W) and whatever
    extra inputs the block is called with (the cost encoder passes the context map).
    """

    def __init__(self, *, dim: int, attn: nn.Module, mlp_ratio: int = 4, eps: float = 1e-5):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attn = attn
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = Mlp(dim=dim, hidden=dim * mlp_ratio)

    def forward(self, x: torch.Tensor, size: tuple[int, int], *extra) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), size, *extra)
        return x + self.mlp(self.norm2(x))


class LocallyGroupedAttn(nn.Module):
    """Self-attention inside ws x ws windows; the map is zero-padded right/bottom to whole windows."""

    def __init__(self, *, dim: int, heads: int, ws: int):
        super().__init__()
        self.heads = heads
        self.ws = ws
        self.scale = (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x, size):
        # x [B,H*W,C] -> [B,H*W,C]
        b, n, c = x.shape
        h, w = size
        x = pad_to_multiple(x.reshape(b, h, w, c), self.ws)
        hp, wp = x.shape[1:3]
        q, k, v = split_heads(self.qkv(to_windows(x, self.ws)), 3 * self.heads).chunk(3, dim=2)  # [B,nW,heads,ws*ws,d]
        x = from_windows(merge_heads(attend(q, k, v, self.scale)), hp, wp, self.ws)
        return self.proj(x[:, :h, :w].reshape(b, n, c))


class GlobalSubSampleAttn(nn.Module):
    """Every token attends to a sr x sr strided-conv summary of the map (LayerNorm eps 1e-5)."""

    def __init__(self, *, dim: int, heads: int, sr_ratio: int):
        super().__init__()
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)
        self.sr = nn.Conv2d(dim, dim, sr_ratio, stride=sr_ratio)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x, size):
        # x [B,H*W,C] -> [B,H*W,C]; the summary has floor(H/sr)*floor(W/sr) tokens
        b, _, c = x.shape
        q = split_heads(self.q(x), self.heads)
        s = self.sr(x.transpose(1, 2).reshape(b, c, *size)).flatten(2).transpose(1, 2)
        k, v = split_heads(self.kv(self.norm(s)), 2 * self.heads).chunk(2, dim=1)
        return self.proj(merge_heads(attend(q, k, v, self.scale)))


class PosConv(nn.Module):
    """Position encoding generator: x + depthwise conv3x3(x) on the token map."""

    def __init__(self, *, dim: int):
        super().__init__()
        self.proj = nn.Sequential(nn.Conv2d(dim, dim, 3, padding=1, groups=dim))

    def forward(self, x, size):
        # x [B,H*W,C] -> [B,H*W,C]
        b, _, c = x.shape
        m = x.transpose(1, 2).reshape(b, c, *size)
        return (self.proj(m) + m).flatten(2).transpose(1, 2)


class PatchEmbed(nn.Module):
    """p x p stride-p conv + LayerNorm (eps 1e-5): [B,Cin,H,W] -> tokens [B,(H/p)*(W/p),C]."""

    def __init__(self, *, in_channels: int, dim: int, patch: int):
        super().__init__()
        self.proj = nn.Conv2d(in_channels, dim, patch, stride=patch)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x):
        x = self.proj(x)
        return self.norm(x.flatten(2).transpose(1, 2)), x.shape[2:]


class TwinsSVT(nn.Module):
    """The first stages of Twins-SVT: per stage a patch embedding, then [local, global] attention blocks with a
    position conv after the first. Block LayerNorms use eps 1e-6 (the timm default for Twins).

    ``norm`` is the final LayerNorm of the full 4-stage network; the truncated network never reaches it
    (``UnusedWeights``).
    """

    def __init__(
        self,
        *,
        dims=(128, 256),
        heads=(4, 8),
        sr_ratios=(8, 4),
        ws: int = 7,
        mlp_ratio: int = 4,
        unused_norm_dim: int = 1024,
    ):
        super().__init__()
        ins = (3,) + tuple(dims[:-1])
        patches = (4,) + (2,) * (len(dims) - 1)
        self.patch_embeds = nn.ModuleList(
            PatchEmbed(in_channels=i, dim=d, patch=p) for i, d, p in zip(ins, dims, patches)
        )
        self.blocks = nn.ModuleList(
            nn.ModuleList(
                [
                    Block(dim=d, attn=LocallyGroupedAttn(dim=d, heads=h, ws=ws), mlp_ratio=mlp_ratio, eps=1e-6),
                    Block(dim=d, attn=GlobalSubSampleAttn(dim=d, heads=h, sr_ratio=sr), mlp_ratio=mlp_ratio, eps=1e-6),
                ]
            )
            for d, h, sr in zip(dims, heads, sr_ratios)
        )
        self.pos_block = nn.ModuleList(PosConv(dim=d) for d in dims)
        self.norm = UnusedWeights(parameters={"weight": (unused_norm_dim,), "bias": (unused_norm_dim,)})

    def forward(self, x: torch.Tensor):
        # x [B,3,H,W] -> stage maps: [B,128,H/4,W/4], [B,256,H/8,W/8] (one per stage, as a tuple)
        outs = ()
        for embed, (local_block, global_block), pos in zip(self.patch_embeds, self.blocks, self.pos_block):
            t, size = embed(x)
            t = pos(local_block(t, size), size)
            t = global_block(t, size)
            x = t.transpose(1, 2).reshape(t.shape[0], t.shape[2], *size)
            outs = outs + (x,)
        return outs


class TwinsEncoder(nn.Module):
    """FlowFormer's image encoder: ``svt`` (the checkpoints nest the timm network under that name)."""

    def __init__(self):
        super().__init__()
        self.svt = TwinsSVT()

    def forward(self, x: torch.Tensor):
        """[B,3,H,W] in [-1,1] -> ([B,128,H/4,W/4], [B,256,H/8,W/8])."""
        return self.svt(x)
