"""FlowFormer (the sintel "submission" configuration) as GIMM-VFI-F uses it: bidirectional flow plus features.

Pipeline per direction: Twins features of both frames -> all-pairs cost volume (plain dot products) -> every
source pixel's cost map is embedded into tokens and summarised by 8 latent tokens (the cost memory) ->
32 GMA/GRU iterations, each querying the memory with a token built from a 9x9 cost window.

Both directions run as one batch of two (``BidirectionalEstimator``): each frame goes through each Twins encoder
once. The 1->0 cost maps hold the same numbers as the 0->1 ones transposed, but FlowFormer encodes one cost map
per source pixel, so both directions are encoded together.

Memory stays proportional to h*w (the 1/8 grid) at large sizes: the cost maps are built from the features
and embedded in slices of bounded size (``CostEncoder``), and once the (h*w)^2 quantities outgrow
``VOLUME_BYTES`` the decoder's window lookups are computed from the features (``Correlation``) and the GMA
weights are applied with ``scaled_dot_product_attention`` (``MotionAttention``) instead of being stored;
small inputs store both, which is faster.

Sub-module names follow the official checkpoints (``memory_encoder``, ``memory_decoder``,
``context_encoder`` and everything below), so state_dict keys load unchanged.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F

from .._utils import fp32
from . import _utils
from ._utils import BidirectionalEstimator, Correlation, Encoding, coords_grid
from .raft import UpdateBlock
from .twins import (
    Block,
    TwinsEncoder,
    UnusedWeights,
    attend,
    ffn,
    from_windows,
    merge_heads,
    pad_to_multiple,
    split_heads,
    to_windows,
)

__all__ = ["FlowFormer", "flowformer", "CostEncoder", "MotionAttention", "sine_encoding", "cost_volume"]


def sine_encoding(points: torch.Tensor, dim: int) -> torch.Tensor:
    """FlowFormer's "linear" position encoding of pixel coordinates.

    points [..., 2] (x, y) -> [..., dim] = [sin(a x), cos(a x), sin(a y), cos(a y)], a_k = 3.14 * k / 200 for
    k = 0 .. dim/4 - 1; the products are formed in the official order so the floats match.
    """
    freq = torch.arange(dim // 4, dtype=points.dtype, device=points.device)
    ax = 3.14 * points[..., 0:1] * freq * (1 / 200)
    ay = 3.14 * points[..., 1:2] * freq * (1 / 200)
    return torch.cat([torch.sin(ax), torch.cos(ax), torch.sin(ay), torch.cos(ay)], dim=-1)


def grid_points(h: int, w: int, device=None) -> torch.Tensor:
    """[h*w, 2] integer pixel coordinates (x, y), row-major."""
    return coords_grid(1, h, w, device=device)[0].reshape(2, h * w).t()


@fp32
def cost_volume(src: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
    """All-pairs dot products (not scaled): [B,C,h,w] x2 -> [B*h*w,1,h,w], row b*h*w + p is <src_b(p), tgt_b(.)>."""
    b, c, h, w = src.shape
    corr = torch.matmul(src.reshape(b, c, h * w).transpose(1, 2), tgt.reshape(b, c, h * w))
    return corr.reshape(b * h * w, 1, h, w)


# ----------------------------------------------------------------------------------------------- cost encoder


class CostPatchEmbed(nn.Module):
    """Embeds each cost map into patch tokens: three 6x6 stride-2 convs (1 -> 16 -> 32 -> 64, ReLU between), the
    sine encoding of each token's centre appended, two 1x1 convs and a LayerNorm."""

    def __init__(self, *, dim: int = 64, patch: int = 8):
        super().__init__()
        self.patch = patch
        # in-place ReLUs: these activations are the largest of the estimator (one set per cost map)
        self.proj = nn.Sequential(
            nn.Conv2d(1, dim // 4, 6, stride=2, padding=2),
            nn.ReLU(inplace=True),
            nn.Conv2d(dim // 4, dim // 2, 6, stride=2, padding=2),
            nn.ReLU(inplace=True),
            nn.Conv2d(dim // 2, dim, 6, stride=2, padding=2),
        )
        self.ffn_with_coord = nn.Sequential(
            nn.Conv2d(2 * dim, 2 * dim, 1), nn.ReLU(inplace=True), nn.Conv2d(2 * dim, 2 * dim, 1)
        )
        self.norm = nn.LayerNorm(2 * dim)

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        # maps [M,1,h,w] -> tokens [M, ceil(h/8)*ceil(w/8), 2*dim]; maps zero-padded right/bottom to whole patches
        p = self.patch
        h, w = maps.shape[2:]
        if h % p or w % p:
            maps = F.pad(maps, (0, (p - w % p) % p, 0, (p - h % p) % p))
        x = self.proj(maps)
        m, c, h3, w3 = x.shape
        # token centres in cost-map pixels
        pe = sine_encoding(grid_points(h3, w3, device=x.device) * p + p / 2, c)
        pe = pe.t().reshape(1, c, h3, w3).expand(m, c, h3, w3)
        x = self.ffn_with_coord(torch.cat([x, pe], dim=1))
        return self.norm(x.flatten(2).transpose(1, 2))


class AttentionLayer(nn.Module):
    """Pre-norm multi-head attention of ``dim``-wide queries over ``kv_dim``-wide tokens, an output projection
    from ``proj_in`` channels, then a pre-norm feed-forward; residuals around both."""

    def __init__(self, *, dim: int, kv_dim: int, heads: int, proj_in: int):
        super().__init__()
        self.heads = heads
        self.scale = (dim / heads) ** -0.5
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(kv_dim, dim)
        self.v = nn.Linear(kv_dim, dim)
        self.proj = nn.Linear(proj_in, dim)
        self.ffn = ffn(dim)

    def keys_values(self, tokens: torch.Tensor):
        """[..., L, kv_dim] -> keys, values [..., heads, L, dim/heads]."""
        return split_heads(self.k(tokens), self.heads), split_heads(self.v(tokens), self.heads)

    def attention(self, queries: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Queries [..., Lq, dim] (before ``q``), ``keys_values`` -> the heads' results [..., Lq, dim]."""
        return merge_heads(attend(split_heads(self.q(queries), self.heads), k, v, self.scale))

    def feed_forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.ffn(self.norm2(x))


class LatentCrossAttention(AttentionLayer):
    """The learned latent tokens (shared by all pixels) attend to each pixel's cost tokens, then a feed-forward."""

    def __init__(self, *, dim: int = 128, token_dim: int = 128, heads: int = 8):
        super().__init__(dim=dim, kv_dim=token_dim, heads=heads, proj_in=dim)

    def forward(self, latents: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        # latents [1,K,D], tokens [M,T,Dt] -> [M,K,D]; the queries [1,heads,K,d] broadcast over M
        x = latents + self.proj(self.attention(self.norm1(latents), *self.keys_values(tokens)))
        return self.feed_forward(x)


class SelfAttentionLayer(AttentionLayer):
    """Self-attention among the K latent tokens of one pixel, then a feed-forward."""

    def __init__(self, *, dim: int = 128, heads: int = 8):
        super().__init__(dim=dim, kv_dim=dim, heads=heads, proj_in=dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x [M,K,D] -> [M,K,D]
        y = self.norm1(x)
        return self.feed_forward(x + self.proj(self.attention(y, *self.keys_values(y))))


class ContextAttention(nn.Module):
    """Attention among the cost tokens of many pixels (one latent index at a time) whose queries and keys also
    see the pixels' context, projected to ``vert_dim`` channels; keys are ``key_dim`` wide.

    ``padded`` appends the projected context and zero-pads the token map right/bottom to whole cells (after the
    projection, so padded positions carry zeros there too); ``cropped`` drops the padding and projects.
    """

    def __init__(self, *, dim: int, heads: int, context_dim: int, vert_dim: int, key_dim: int):
        super().__init__()
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.context_proj = nn.Linear(context_dim, vert_dim)
        self.q = nn.Linear(dim + vert_dim, dim)
        self.k = nn.Linear(key_dim, dim)
        self.v = nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)

    def padded(self, x: torch.Tensor, size, context: torch.Tensor, cell: int):
        """[B*K,h*w,C] tokens, [B,Cc,h,w] context -> [B*K,hp,wp,C+vert_dim] tokens with context, [B*K,hp,wp,C]
        tokens; hp, wp: h, w rounded up to multiples of ``cell``."""
        bk, n, c = x.shape
        b = context.shape[0]
        h, w = size
        ctx = self.context_proj(context.flatten(2).transpose(1, 2))  # [B,h*w,vert_dim]
        ctx = ctx.unsqueeze(1).expand(b, bk // b, n, ctx.shape[-1]).reshape(bk, n, ctx.shape[-1])
        xqk = torch.cat([x, ctx], dim=-1).reshape(bk, h, w, -1)
        return pad_to_multiple(xqk, cell), pad_to_multiple(x.reshape(bk, h, w, c), cell)

    def cropped(self, x: torch.Tensor, size) -> torch.Tensor:
        """[B*K,hp,wp,C] -> ``proj`` of the unpadded tokens [B*K,h*w,C]."""
        h, w = size
        return self.proj(x[:, :h, :w].reshape(x.shape[0], h * w, x.shape[-1]))


class LocalContextAttn(ContextAttention):
    """Attention among the pixels of each ws x ws window.

    Queries and keys see the tokens, the projected context and a sine encoding of the position inside the
    window; values only the tokens.
    """

    def __init__(self, *, dim: int = 128, heads: int = 8, ws: int = 7, context_dim: int = 256, vert_dim: int = 64):
        super().__init__(dim=dim, heads=heads, context_dim=context_dim, vert_dim=vert_dim, key_dim=dim + vert_dim)
        self.ws = ws

    def forward(self, x, size, context):
        # x [B*K,h*w,C], context [B,Cc,h,w] -> [B*K,h*w,C]
        ws = self.ws
        xqk, x = self.padded(x, size, context, ws)
        hp, wp = x.shape[1:3]
        xqk = to_windows(xqk, ws) + sine_encoding(grid_points(ws, ws, device=x.device), xqk.shape[-1])
        q = split_heads(self.q(xqk), self.heads)
        k = split_heads(self.k(xqk), self.heads)
        v = split_heads(self.v(to_windows(x, ws)), self.heads)
        return self.cropped(from_windows(merge_heads(attend(q, k, v, self.scale)), hp, wp, ws), size)


class GlobalContextAttn(ContextAttention):
    """Every pixel's token attends to an sr x sr strided-conv summary of all pixels.

    Queries: tokens + projected context + sine encoding of the pixel; keys: the summary of [tokens, context]
    (``sr_key``) + sine encoding of the summary cell's corner; values: the summary of the tokens
    (``sr_value``); both summaries share one LayerNorm.
    """

    def __init__(
        self, *, dim: int = 128, heads: int = 8, sr_ratio: int = 4, context_dim: int = 256, vert_dim: int = 64
    ):
        super().__init__(dim=dim, heads=heads, context_dim=context_dim, vert_dim=vert_dim, key_dim=dim)
        self.sr = sr_ratio
        self.sr_key = nn.Conv2d(dim + vert_dim, dim, sr_ratio, stride=sr_ratio)
        self.sr_value = nn.Conv2d(dim, dim, sr_ratio, stride=sr_ratio)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x, size, context):
        # x [B*K,h*w,C], context [B,Cc,h,w] -> [B*K,h*w,C]
        sr = self.sr
        xqk, x = self.padded(x, size, context, sr)
        bk, hp, wp, c = x.shape
        pe = sine_encoding(grid_points(hp, wp, device=x.device), xqk.shape[-1])
        q = split_heads(self.q(xqk.reshape(bk, hp * wp, -1) + pe), self.heads)
        key = self.norm(self.sr_key(xqk.permute(0, 3, 1, 2)).flatten(2).transpose(1, 2))
        value = self.norm(self.sr_value(x.permute(0, 3, 1, 2)).flatten(2).transpose(1, 2))
        pe = sine_encoding(grid_points(hp // sr, wp // sr, device=x.device) * sr, c)
        k = split_heads(self.k(key + pe), self.heads)
        v = split_heads(self.v(value), self.heads)
        return self.cropped(merge_heads(attend(q, k, v, self.scale)).reshape(bk, hp, wp, c), size)


class VerticalLayer(nn.Module):
    """Attention across source pixels, separately per latent index: a window block, then a global block."""

    def __init__(self, *, dim: int = 128, heads: int = 8, ws: int = 7, sr_ratio: int = 4):
        super().__init__()
        self.local_block = Block(dim=dim, attn=LocalContextAttn(dim=dim, heads=heads, ws=ws))
        self.global_block = Block(dim=dim, attn=GlobalContextAttn(dim=dim, heads=heads, sr_ratio=sr_ratio))

    def forward(self, x, size, context):
        # x [B*K,h*w,D], context [B,256,h,w] -> [B*K,h*w,D]
        return self.global_block(self.local_block(x, size, context), size, context)


class CostEncoder(nn.Module):
    """Cost maps -> cost memory: K latent tokens per source pixel (the official ``CostPerceiverEncoder``).

    Patch-embed each pixel's cost map, let the latent tokens cross-attend to it, then ``depth`` rounds of
    [self-attention among a pixel's K tokens; attention across pixels per token index], plus a residual
    around the rounds.

    Up to the cross-attention every cost map is handled on its own, so the maps are built from the features
    and embedded in slices of rows: the patch embedding's first conv alone holds 4*h*w floats per map (16 GiB
    per direction for all maps at 1920x1088). ``embed_bytes`` bounds that conv's output per slice.
    """

    def __init__(
        self,
        *,
        tokens: int = 8,
        dim: int = 128,
        input_dim: int = 64,
        depth: int = 3,
        heads: int = 8,
        patch: int = 8,
        embed_bytes: int = 2**30,
    ):
        super().__init__()
        self.embed_bytes = embed_bytes
        self.latent_tokens = nn.Parameter(torch.zeros(1, tokens, dim))
        self.patch_embed = CostPatchEmbed(dim=input_dim, patch=patch)
        self.input_layer = LatentCrossAttention(dim=dim, token_dim=2 * input_dim, heads=heads)
        self.encoder_layers = nn.ModuleList(SelfAttentionLayer(dim=dim, heads=heads) for _ in range(depth))
        self.vertical_encoder_layers = nn.ModuleList(VerticalLayer(dim=dim, heads=heads) for _ in range(depth))

    def forward(self, fsrc: torch.Tensor, ftgt: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """Cost memory of ``cost_volume(fsrc, ftgt)``.

        Args:
            fsrc, ftgt: [B,C,h,w] features of the source and target frames.
            context: [B,256,h,w] context features of the source frames.

        Returns:
            [B*h*w,K,D], row b*h*w + p for source pixel p of batch item b.
        """
        b, _, h, w = fsrc.shape
        n, k = h * w, self.latent_tokens.shape[1]
        rows = max(1, self.embed_bytes // (16 * n))  # the first conv's output is 4*h*w floats per map
        if rows >= b * n:
            x = self._embed(cost_volume(fsrc, ftgt))
        else:  # static slices (unrolled in an exported graph), never across batch items
            x = torch.cat(
                tuple(
                    self._embed(_cost_rows(fsrc[i], ftgt[i], s, s + rows)) for i in range(b) for s in range(0, n, rows)
                ),
                dim=0,
            )
        shortcut = x
        for layer, vertical in zip(self.encoder_layers, self.vertical_encoder_layers):
            x = layer(x)
            x = x.reshape(b, n, k, -1).transpose(1, 2).reshape(b * k, n, -1)
            x = vertical(x, (h, w), context)
            x = x.reshape(b, k, n, -1).transpose(1, 2).reshape(b * n, k, -1)
        return x + shortcut

    def _embed(self, cost_maps):
        # [M,1,h,w] -> latent tokens [M,K,D], independently per map
        return self.input_layer(self.latent_tokens, self.patch_embed(cost_maps))


@fp32
def _cost_rows(src: torch.Tensor, tgt: torch.Tensor, start: int, stop: int) -> torch.Tensor:
    """Rows start..stop-1 of ``cost_volume`` for one batch item: [C,h,w] x2 -> [stop-start,1,h,w]."""
    c, h, w = src.shape
    rows = src.reshape(c, h * w)[:, start:stop].t()
    return torch.matmul(rows, tgt.reshape(c, h * w)).reshape(-1, 1, h, w)


class MemoryEncoder(nn.Module):
    """Frame features (``feat_encoder``, then a 1x1 ``channel_convertor``) and the cost memory of a frame pair
    (``cost_encoder``)."""

    def __init__(self, *, feat_encoder: nn.Module, cost_encoder: CostEncoder, dim: int = 256):
        super().__init__()
        self.feat_encoder = feat_encoder
        self.channel_convertor = nn.Conv2d(dim, dim, 1, bias=False)
        self.cost_perceiver_encoder = cost_encoder

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """[N,3,H,W] in [-1,1] -> correlation features [N,256,H/8,W/8] (per frame)."""
        return self.channel_convertor(self.feat_encoder(x)[1])

    def forward(self, fsrc: torch.Tensor, ftgt: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """[B,256,h,w] source and target features, source context -> cost memory [B*h*w,8,128]."""
        return self.cost_perceiver_encoder(fsrc, ftgt, context)


# ---------------------------------------------------------------------------------------------------- decoder


class GlobalMotionAttention(nn.Module):
    """GMA: queries and keys over all positions of the context map, computed once per estimate.

    ``pos_emb`` holds the relative-position embeddings of the official module, which the released
    configuration never uses (``UnusedWeights``).
    """

    def __init__(self, *, dim: int = 128, max_pos: int = 160):
        super().__init__()
        self.scale = dim**-0.5
        self.to_qk = nn.Conv2d(dim, 2 * dim, 1, bias=False)
        self.pos_emb = UnusedWeights(buffers={"rel_ind": torch.zeros(max_pos, max_pos, dtype=torch.int64)})
        self.pos_emb.rel_height = UnusedWeights(parameters={"weight": (2 * max_pos - 1, dim)})
        self.pos_emb.rel_width = UnusedWeights(parameters={"weight": (2 * max_pos - 1, dim)})

    def forward(self, x: torch.Tensor):
        # x [B,C,h,w] -> q (already scaled), k [B,h*w,C]
        q, k = self.to_qk(x).flatten(2).transpose(1, 2).chunk(2, dim=-1)
        return self.scale * q, k


class MotionAttention:
    """The GMA weights softmax(q k^T) over all h*w positions, applied to each iteration's motion features.

    ``"volume"`` computes the [B,h*w,h*w] weights once (the official way, fastest); ``"features"`` applies them
    with ``scaled_dot_product_attention`` at every call: memory O(h*w) in eager PyTorch for one more q k^T
    product per iteration. ``"auto"`` keeps the weights while they fit in ``VOLUME_BYTES`` (as ``Correlation``).
    """

    def __init__(self, q: torch.Tensor, k: torch.Tensor, *, mode: str = "auto"):
        b, n, _ = q.shape
        if mode == "auto":
            mode = "volume" if b * n * n * 4 <= _utils.VOLUME_BYTES else "features"
        if mode not in ("volume", "features"):
            raise ValueError(f"attention mode must be 'auto', 'volume' or 'features', got {mode!r}")
        self.mode = mode
        if mode == "volume":
            self.weights = torch.softmax(torch.matmul(q, k.transpose(1, 2)), dim=-1)
        else:
            self.q, self.k = q, k

    def __call__(self, v: torch.Tensor) -> torch.Tensor:
        # v [B,h*w,C] -> [B,h*w,C]
        if self.mode == "volume":
            return torch.matmul(self.weights, v)
        return attend(self.q, self.k, v, 1.0)


class Aggregate(nn.Module):
    """x + gamma * (motion features averaged with the GMA weights)."""

    def __init__(self, *, dim: int = 128):
        super().__init__()
        self.to_v = nn.Conv2d(dim, dim, 1, bias=False)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, attn: MotionAttention, x: torch.Tensor) -> torch.Tensor:
        # x [B,C,h,w] -> [B,C,h,w]
        b, c, h, w = x.shape
        out = attn(self.to_v(x).flatten(2).transpose(1, 2))  # [B,h*w,C]
        return x + self.gamma * out.transpose(1, 2).reshape(b, c, h, w)


class GMAUpdateBlock(UpdateBlock):
    """RAFT's update step with a globally aggregated copy of the motion features as extra GRU input; every
    update takes the ``MotionAttention`` of the estimate."""

    def __init__(self, *, corr_channels: int, hidden: int = 128):
        super().__init__(corr_channels=corr_channels, hidden=hidden, gru_inputs=3 * hidden)
        self.aggregator = Aggregate(dim=hidden)

    def gru_input(self, inp: torch.Tensor, motion: torch.Tensor, attn: MotionAttention) -> torch.Tensor:
        return torch.cat([inp, motion, self.aggregator(attn, motion)], dim=1)


class FlowTokenAttention(AttentionLayer):
    """A pixel's flow token (+ sine encoding of its current target position) queries its K memory tokens."""

    def __init__(self, *, dim: int = 64, memory_dim: int = 128, heads: int = 8):
        super().__init__(dim=dim, kv_dim=memory_dim, heads=heads, proj_in=2 * dim)
        self.dim = dim

    def forward(self, query, coords, k, v):
        # query [M,1,D], coords [M,1,2] (x, y at 1/8), k and v: ``keys_values`` of the memory -> [M,1,D]
        y = self.attention(self.norm1(query) + sine_encoding(coords, self.dim), k, v)
        return self.feed_forward(query + self.proj(torch.cat([y, query], dim=-1)))


class MemoryDecoderLayer(nn.Module):
    """Maps of flow tokens and coordinates in, the attended global cost feature map out."""

    def __init__(self, *, dim: int = 64, memory_dim: int = 128, heads: int = 8):
        super().__init__()
        self.cross_attend = FlowTokenAttention(dim=dim, memory_dim=memory_dim, heads=heads)

    def forward(self, query, coords, k, v):
        # query [B,D,h,w], coords [B,2,h,w] -> [B,D,h,w]
        b, d, h, w = query.shape
        query = query.permute(0, 2, 3, 1).reshape(b * h * w, 1, d)
        coords = coords.permute(0, 2, 3, 1).reshape(b * h * w, 1, 2)
        x = self.cross_attend(query, coords, k, v)
        return x.reshape(b, h, w, d).permute(0, 3, 1, 2)


class MemoryDecoder(nn.Module):
    """``iters`` recurrent refinements from the cost memory and (2r+1)^2 windows of the cost maps, then x8
    upsampling. ``corr_mode`` ("auto", "volume", "features") picks how the window lookups (``Correlation``)
    and the GMA weights (``MotionAttention``) are computed."""

    def __init__(
        self,
        *,
        iters: int = 32,
        radius: int = 4,
        hidden: int = 128,
        query_dim: int = 64,
        context_dim: int = 256,
        corr_mode: str = "auto",
    ):
        super().__init__()
        window = (2 * radius + 1) ** 2
        self.iters = iters
        self.radius = radius
        self.corr_mode = corr_mode
        self.flow_token_encoder = nn.Sequential(
            nn.Conv2d(window, query_dim, 1), nn.GELU(), nn.Conv2d(query_dim, query_dim, 1)
        )
        self.proj = nn.Conv2d(context_dim, context_dim, 1)
        self.decoder_layer = MemoryDecoderLayer(dim=query_dim)
        self.update_block = GMAUpdateBlock(corr_channels=query_dim + window, hidden=hidden)
        self.att = GlobalMotionAttention(dim=hidden)

    def forward(self, memory, fsrc, ftgt, context):
        # memory [B*h*w,K,128], fsrc/ftgt [B,256,h,w] (cost = <fsrc(p), ftgt(q)>), context [B,256,h,w]
        # -> flow [B,2,8h,8w]
        net, inp = self.update_block.initial_state(self.proj(context))
        attn = MotionAttention(*self.att(inp), mode=self.corr_mode)
        corr = Correlation(fsrc, ftgt, levels=1, radius=self.radius, scale=1.0, mode=self.corr_mode)
        k, v = self.decoder_layer.cross_attend.keys_values(memory)

        def lookup(coords):
            # the update reads the memory's answer [B,64,h,w] and the cost window [B,81,h,w] around coords
            cost = corr(coords)
            return torch.cat([self.decoder_layer(self.flow_token_encoder(cost), coords, k, v), cost], dim=1)

        return self.update_block.refine(net, inp, lookup, attn, iters=self.iters)


# -------------------------------------------------------------------------------------------------- estimator


class FlowFormer(BidirectionalEstimator):
    """Bidirectional FlowFormer flow estimator.

    Parts (keyword-only): ``memory_encoder`` (Twins features, cost volume, cost memory), ``memory_decoder``
    (recurrent decoding) and ``context_encoder`` (Twins context features, also returned for synthesis).

    ``encode`` returns fmap [N,256,h,w] (after ``channel_convertor``) and the context encoder's stage-1 map as
    feat4 [N,128,2h,2w] and stage-2 map as both context and feat8 [N,256,h,w].
    """

    def __init__(self, *, memory_encoder: MemoryEncoder, memory_decoder: MemoryDecoder, context_encoder: nn.Module):
        super().__init__()
        self.memory_encoder = memory_encoder
        self.memory_decoder = memory_decoder
        self.context_encoder = context_encoder

    def frame_features(self, x: torch.Tensor) -> Encoding:
        feat4, context = self.context_encoder(x)
        return Encoding(self.memory_encoder.features(x), context, feat4, context)

    def pair_flow(self, fsrc: torch.Tensor, ftgt: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        return self.memory_decoder(self.memory_encoder(fsrc, ftgt, context), fsrc, ftgt, context)


def flowformer(*, iters: int = 32, corr_mode: str = "auto") -> FlowFormer:
    """The FlowFormer configuration of GIMM-VFI-F (sintel "submission": Twins-SVT-L, 8 latent cost tokens,
    GMA, 32 decoder iterations). ``corr_mode``: see ``MemoryDecoder``."""
    return FlowFormer(
        memory_encoder=MemoryEncoder(feat_encoder=TwinsEncoder(), cost_encoder=CostEncoder()),
        memory_decoder=MemoryDecoder(iters=iters, corr_mode=corr_mode),
        context_encoder=TwinsEncoder(),
    )
