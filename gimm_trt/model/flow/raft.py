"""RAFT ("raft-things", the large model) as GIMM-VFI-R uses it: bidirectional flow plus context features.

Both directions run as one batch of two: the 0->1 and 1->0 problems share their feature maps (the
1->0 correlation volume is the transpose of the 0->1 one), so each frame is encoded once, not twice.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from ._utils import ConvexUpsample, Correlation, coords_grid


class ResidualBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, *, norm: str, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, padding=1, stride=stride)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1)
        self.relu = nn.ReLU(inplace=True)
        self.norm1 = _norm(norm, planes)
        self.norm2 = _norm(norm, planes)
        self.downsample = None
        if stride != 1:
            # the checkpoints hold this norm twice (norm3.* and downsample.1.*): one module, two names
            self.norm3 = _norm(norm, planes)
            self.downsample = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride=stride), self.norm3)

    def forward(self, x):
        y = self.relu(self.norm1(self.conv1(x)))
        y = self.relu(self.norm2(self.conv2(y)))
        if self.downsample is not None:
            x = self.downsample(x)
        return self.relu(x + y)


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "instance":
        return nn.InstanceNorm2d(channels)  # affine=False, no running stats: nothing in the checkpoint
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    raise ValueError(f"unknown norm {kind!r}")


class BasicEncoder(nn.Module):
    """conv7x7/2 -> 3 stages of residual blocks (64, 96/2, 128/2) -> 1x1 conv: 1/8 resolution."""

    def __init__(self, *, out_channels: int, norm: str):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3)
        self.norm1 = _norm(norm, 64)
        self.relu1 = nn.ReLU(inplace=True)
        self.layer1 = nn.Sequential(ResidualBlock(64, 64, norm=norm), ResidualBlock(64, 64, norm=norm))
        self.layer2 = nn.Sequential(ResidualBlock(64, 96, norm=norm, stride=2), ResidualBlock(96, 96, norm=norm))
        self.layer3 = nn.Sequential(ResidualBlock(96, 128, norm=norm, stride=2), ResidualBlock(128, 128, norm=norm))
        self.conv2 = nn.Conv2d(128, out_channels, 1)

    def forward(self, x):
        # x [N,3,H,W] in [-1,1] -> out [N,C,H/8,W/8], 1/4 map [N,96,H/4,W/4], 1/8 map [N,128,H/8,W/8]
        x = self.layer1(self.relu1(self.norm1(self.conv1(x))))
        x4 = self.layer2(x)
        x8 = self.layer3(x4)
        return self.conv2(x8), x4, x8


class MotionEncoder(nn.Module):
    def __init__(self, *, corr_channels: int):
        super().__init__()
        self.convc1 = nn.Conv2d(corr_channels, 256, 1)
        self.convc2 = nn.Conv2d(256, 192, 3, padding=1)
        self.convf1 = nn.Conv2d(2, 128, 7, padding=3)
        self.convf2 = nn.Conv2d(128, 64, 3, padding=1)
        self.conv = nn.Conv2d(64 + 192, 128 - 2, 3, padding=1)

    def forward(self, flow, corr):
        cor = F.relu(self.convc2(F.relu(self.convc1(corr))))
        flo = F.relu(self.convf2(F.relu(self.convf1(flow))))
        out = F.relu(self.conv(torch.cat([cor, flo], dim=1)))
        return torch.cat([out, flow], dim=1)


class SepConvGRU(nn.Module):
    """GRU with a 1x5 then a 5x1 pass."""

    def __init__(self, *, hidden: int, inputs: int):
        super().__init__()
        c = hidden + inputs
        self.convz1 = nn.Conv2d(c, hidden, (1, 5), padding=(0, 2))
        self.convr1 = nn.Conv2d(c, hidden, (1, 5), padding=(0, 2))
        self.convq1 = nn.Conv2d(c, hidden, (1, 5), padding=(0, 2))
        self.convz2 = nn.Conv2d(c, hidden, (5, 1), padding=(2, 0))
        self.convr2 = nn.Conv2d(c, hidden, (5, 1), padding=(2, 0))
        self.convq2 = nn.Conv2d(c, hidden, (5, 1), padding=(2, 0))

    def forward(self, h, x):
        h = self._step(h, x, self.convz1, self.convr1, self.convq1)
        return self._step(h, x, self.convz2, self.convr2, self.convq2)

    @staticmethod
    def _step(h, x, convz, convr, convq):
        hx = torch.cat([h, x], dim=1)
        z = torch.sigmoid(convz(hx))
        r = torch.sigmoid(convr(hx))
        q = torch.tanh(convq(torch.cat([r * h, x], dim=1)))
        return (1 - z) * h + z * q


class FlowHead(nn.Module):
    def __init__(self, *, inputs: int = 128, hidden: int = 256):
        super().__init__()
        self.conv1 = nn.Conv2d(inputs, hidden, 3, padding=1)
        self.conv2 = nn.Conv2d(hidden, 2, 3, padding=1)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        return self.conv2(self.relu(self.conv1(x)))


def mask_head(hidden: int = 128, factor: int = 8) -> nn.Sequential:
    """Predicts the convex-upsampling weights (scaled by 0.25 by the caller)."""
    return nn.Sequential(nn.Conv2d(hidden, 256, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(256, 9 * factor**2, 1))


class UpdateBlock(nn.Module):
    def __init__(self, *, corr_channels: int, hidden: int = 128):
        super().__init__()
        self.encoder = MotionEncoder(corr_channels=corr_channels)
        self.gru = SepConvGRU(hidden=hidden, inputs=128 + hidden)
        self.flow_head = FlowHead(inputs=hidden)
        self.mask = mask_head(hidden)

    def forward(self, net, inp, corr, flow):
        # returns the new hidden state and the flow update; the upsampling mask is computed by the
        # caller after the last iteration only (the official loop computes it every time and drops it)
        net = self.gru(net, torch.cat([inp, self.encoder(flow, corr)], dim=1))
        return net, self.flow_head(net)


class RAFT(nn.Module):
    """Bidirectional RAFT flow estimator.

    Parts (keyword-only): ``fnet`` (correlation features, instance norm), ``cnet`` (context, batch norm,
    ``hidden + context`` output channels), ``update_block``. ``iters`` recurrent refinements over a
    ``levels``-level, radius ``radius`` all-pairs correlation pyramid scaled by 1/sqrt(channels);
    ``corr_mode`` picks how it is computed (see ``Correlation``).
    """

    def __init__(self, *, fnet: BasicEncoder, cnet: BasicEncoder, update_block: UpdateBlock, iters: int = 20,
                 levels: int = 4, radius: int = 4, hidden: int = 128, corr_mode: str = "auto"):
        super().__init__()
        self.fnet = fnet
        self.cnet = cnet
        self.update_block = update_block
        self.iters = iters
        self.levels = levels
        self.radius = radius
        self.hidden = hidden
        self.corr_mode = corr_mode
        self.upsample = ConvexUpsample(8)

    def encode(self, img: torch.Tensor):
        """Per-frame work, reusable by the next pair of a video.

        Args:
            img: [N,3,H,W] float32 in [0,1]; H and W multiples of 8 and >= 128.

        Returns:
            (fmap [N,256,H/8,W/8] correlation features, ctx [N,256,H/8,W/8] context, feat4 [N,96,H/4,W/4],
            feat8 [N,128,H/8,W/8] context encoder layer2/layer3 maps).
        """
        # the official model feeds 255*img and computes 2*(v/255)-1; kept for float parity
        x = 2 * ((255 * img) / 255.0) - 1.0
        fmap, _, _ = self.fnet(x)
        ctx, feat4, feat8 = self.cnet(x)
        return fmap, ctx, feat4, feat8

    def estimate(self, enc0, enc1):
        """Flows both ways from two frames' ``encode`` outputs; returns what ``forward`` returns."""
        fmap0, ctx0, feat4_0, feat8_0 = enc0
        fmap1, ctx1, feat4_1, feat8_1 = enc1
        n = fmap0.shape[0]
        # batch item k < n solves 0->1 (frame 0 is the source), k >= n solves 1->0
        fmap = torch.cat([fmap0, fmap1], dim=0)
        scale = 1.0 / float(fmap.shape[1]) ** 0.5
        corr_fn = Correlation(fmap, torch.cat([fmap1, fmap0], dim=0), levels=self.levels, radius=self.radius,
                              scale=scale, mode=self.corr_mode)
        ctx = torch.cat([ctx0, ctx1], dim=0)
        net, inp = torch.split(ctx, [self.hidden, ctx.shape[1] - self.hidden], dim=1)
        net = torch.tanh(net)
        inp = torch.relu(inp)

        b, _, h, w = fmap.shape
        coords0 = coords_grid(b, h, w, device=fmap.device)
        coords1 = coords0
        for _ in range(self.iters):
            net, delta = self.update_block(net, inp, corr_fn(coords1), coords1 - coords0)
            coords1 = coords1 + delta
        mask = 0.25 * self.update_block.mask(net)
        flow = self.upsample(coords1 - coords0, mask)
        return flow[:n], flow[n:], fmap0, fmap1, feat4_0, feat4_1, feat8_0, feat8_1

    def forward(self, img0: torch.Tensor, img1: torch.Tensor):
        """Flow in both directions between two frames, plus the features GIMM-VFI reuses.

        Args:
            img0, img1: [N,3,H,W] float32 in [0,1]; H and W multiples of 8 and >= 128.

        Returns:
            flow01, flow10: [N,2,H,W] pixels (x then y).
            fmap0, fmap1: [N,256,H/8,W/8] correlation features of each frame.
            feat4_0, feat4_1: [N,96,H/4,W/4] context encoder layer2 maps of each frame.
            feat8_0, feat8_1: [N,128,H/8,W/8] context encoder layer3 maps of each frame.
        """
        n = img0.shape[0]
        enc = self.encode(torch.cat([img0, img1], dim=0))  # both frames in one batch
        return self.estimate(tuple(e[:n] for e in enc), tuple(e[n:] for e in enc))


def raft_large(*, iters: int = 20) -> RAFT:
    """The RAFT configuration of GIMM-VFI-R (raft-things: 256-ch features, 128 hidden + 128 context)."""
    levels, radius = 4, 4
    return RAFT(
        fnet=BasicEncoder(out_channels=256, norm="instance"),
        cnet=BasicEncoder(out_channels=256, norm="batch"),
        update_block=UpdateBlock(corr_channels=levels * (2 * radius + 1) ** 2),
        iters=iters,
        levels=levels,
        radius=radius,
    )
