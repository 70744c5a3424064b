"""RAFT ("raft-things", the large model) as GIMM-VFI-R uses it: bidirectional flow plus context features.

Both directions run as one batch of two (``BidirectionalEstimator``): the 0->1 and 1->0 problems share their
feature maps (the 1->0 correlation volume is the transpose of the 0->1 one), so each frame is encoded once.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F

from ._utils import BidirectionalEstimator, ConvexUpsample, Correlation, Encoding, coords_grid


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
    """Correlation [B,corr_channels,h,w] and flow [B,2,h,w] -> motion features [B,128,h,w] (the flow last)."""

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
    """Hidden state [B,inputs,h,w] -> flow update [B,2,h,w]."""

    def __init__(self, *, inputs: int = 128, hidden: int = 256):
        super().__init__()
        self.conv1 = nn.Conv2d(inputs, hidden, 3, padding=1)
        self.conv2 = nn.Conv2d(hidden, 2, 3, padding=1)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        return self.conv2(self.relu(self.conv1(x)))


class UpdateBlock(nn.Module):
    """RAFT's recurrent update: the motion features of (flow, correlation) and the context input drive a
    SepConvGRU whose hidden state predicts a flow update; ``mask`` predicts the weights of the final x8 convex
    upsampling.

    ``gru_input(inp, motion, *extra)`` forms the GRU input, ``gru_inputs`` channels wide (here the 128-channel
    context input and the 128 motion channels); a subclass may widen it.
    """

    def __init__(self, *, corr_channels: int, hidden: int = 128, gru_inputs: int = 256):
        super().__init__()
        self.hidden = hidden
        self.encoder = MotionEncoder(corr_channels=corr_channels)
        self.gru = SepConvGRU(hidden=hidden, inputs=gru_inputs)
        self.flow_head = FlowHead(inputs=hidden)
        self.mask = nn.Sequential(
            nn.Conv2d(hidden, 256, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(256, 9 * 8**2, 1)
        )
        self.upsample = ConvexUpsample(8)

    def initial_state(self, context: torch.Tensor):
        """Context [B,C,h,w] -> hidden state tanh(first ``hidden`` channels), GRU input relu(the others)."""
        net, inp = torch.split(context, [self.hidden, context.shape[1] - self.hidden], dim=1)
        return torch.tanh(net), torch.relu(inp)

    def gru_input(self, inp: torch.Tensor, motion: torch.Tensor) -> torch.Tensor:
        return torch.cat([inp, motion], dim=1)

    def forward(self, net, inp, corr, flow, *extra):
        """One update: hidden state net [B,hidden,h,w], context input inp, what the motion encoder reads corr
        [B,corr_channels,h,w], current flow [B,2,h,w] and ``gru_input``'s extra arguments -> (new hidden
        state, flow update [B,2,h,w])."""
        net = self.gru(net, self.gru_input(inp, self.encoder(flow, corr), *extra))
        return net, self.flow_head(net)

    def refine(self, net: torch.Tensor, inp: torch.Tensor, lookup, *extra, iters: int) -> torch.Tensor:
        """``iters`` updates from zero flow, then x8 convex upsampling.

        Args:
            net, inp: ``initial_state`` of the context, [B,*,h,w].
            lookup: target coordinates [B,2,h,w] (pixels, x then y) -> ``corr`` of the update.
            extra: passed to every update.

        Returns:
            flow [B,2,8h,8w] in pixels.
        """
        b, _, h, w = net.shape
        coords0 = coords_grid(b, h, w, device=net.device)
        coords1 = coords0
        for _ in range(iters):
            net, delta = self(net, inp, lookup(coords1), coords1 - coords0, *extra)
            coords1 = coords1 + delta
        # the mask of the last hidden state only: the official loop computes one every iteration and drops it
        return self.upsample(coords1 - coords0, 0.25 * self.mask(net))


class RAFT(BidirectionalEstimator):
    """Bidirectional RAFT flow estimator.

    Parts (keyword-only): ``fnet`` (correlation features, instance norm), ``cnet`` (context, batch norm,
    ``hidden + context`` output channels), ``update_block``. ``iters`` recurrent refinements over a
    ``levels``-level, radius ``radius`` all-pairs correlation pyramid scaled by 1/sqrt(channels);
    ``corr_mode`` picks how it is computed (see ``Correlation``).

    ``encode`` returns fmap [N,256,h,w], context [N,256,h,w], feat4 [N,96,2h,2w] and feat8 [N,128,h,w] (the
    context encoder's layer2 and layer3 maps).
    """

    def __init__(
        self,
        *,
        fnet: BasicEncoder,
        cnet: BasicEncoder,
        update_block: UpdateBlock,
        iters: int = 20,
        levels: int = 4,
        radius: int = 4,
        corr_mode: str = "auto",
    ):
        super().__init__()
        self.fnet = fnet
        self.cnet = cnet
        self.update_block = update_block
        self.iters = iters
        self.levels = levels
        self.radius = radius
        self.corr_mode = corr_mode

    def frame_features(self, x: torch.Tensor) -> Encoding:
        fmap, _, _ = self.fnet(x)
        ctx, feat4, feat8 = self.cnet(x)
        return Encoding(fmap, ctx, feat4, feat8)

    def pair_flow(self, fsrc: torch.Tensor, ftgt: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        scale = 1.0 / float(fsrc.shape[1]) ** 0.5
        corr = Correlation(fsrc, ftgt, levels=self.levels, radius=self.radius, scale=scale, mode=self.corr_mode)
        net, inp = self.update_block.initial_state(context)
        return self.update_block.refine(net, inp, corr, iters=self.iters)


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
