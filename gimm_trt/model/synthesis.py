"""Stage C, frame synthesis (AMT-style decoders): the frame at each timestep from its flow and pair features.

All T timesteps of a pair run as one batch; what depends only on the pair (upsampled encoder features,
resized images, the bidirectional correlation pyramids) is computed once per call.
"""

from typing import Optional

import torch
import torch.nn as nn

from ._utils import halo, resize, resize_region, tiles, warp, warp_region
from .flow._utils import Correlation, coords_grid


def paste(outs, parts, box, region) -> list:
    """Write the window ``box`` of each of ``parts`` (computed on ``region``) into ``outs`` (made on first use)."""
    y0, y1, x0, x1 = box
    ry0, _, rx0, _ = region
    parts = [p[..., y0 - ry0 : y1 - ry0, x0 - rx0 : x1 - rx0] for p in parts]
    if outs is None:
        return parts  # a single tile: the window is the frame
    for out, part in zip(outs, parts):
        out[..., y0:y1, x0:x1] = part
    return outs


def convrelu(cin: int, cout: int, kernel: int = 3, padding: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, 1, padding), nn.PReLU(cout))


class ResBlock(nn.Module):
    """Residual block whose last ``side`` channels get two extra convolutions."""

    def __init__(self, channels: int, side: int):
        super().__init__()
        self.side = side
        self.conv1 = convrelu(channels, channels)
        self.conv2 = convrelu(side, side)
        self.conv3 = convrelu(channels, channels)
        self.conv4 = convrelu(side, side)
        self.conv5 = nn.Conv2d(channels, channels, 3, 1, 1)
        self.prelu = nn.PReLU(channels)

    def forward(self, x):
        keep = x.shape[1] - self.side
        out = self.conv1(x)
        out = self.conv3(torch.cat([out[:, :keep], self.conv2(out[:, keep:])], 1))
        out = self.conv5(torch.cat([out[:, :keep], self.conv4(out[:, keep:])], 1))
        return self.prelu(x + out)


def feature_upsampler(cin: int, shuffles: int) -> nn.Sequential:
    """PixelShuffle(2) x ``shuffles``, then convs: cin/4**s -> cin/4 -> cin/2 channels, BN, ReLU."""
    c = cin // 4
    return nn.Sequential(
        *[nn.PixelShuffle(2) for _ in range(shuffles)],
        convrelu(cin // 4**shuffles, c, 5, 2),
        convrelu(c, c),
        convrelu(c, c),
        convrelu(c, c),
        convrelu(c, 2 * c),
        nn.Conv2d(2 * c, 2 * c, 1),
        nn.BatchNorm2d(2 * c),
        nn.ReLU(inplace=True),
    )


class InitDecoder(nn.Module):
    """1/8 features + 1/4 flows -> refined 1/4 flows, a mask logit and a 128-ch feature at 1/4."""

    def __init__(self, channels: int = 256, side: int = 64):
        super().__init__()
        self.upsample = feature_upsampler(channels, 1)
        c = channels // 2
        self.convblock = nn.Sequential(
            convrelu(2 * c + 16, c, 1, 0),
            ResBlock(c, side),
            ResBlock(c, side),
            ResBlock(c, side),
            nn.Conv2d(c, c + 5, 3, 1, 1),
        )

    def forward(self, up0, up1, flow0, flow1, img0, img1):
        # up0/up1 [1,128,h4,w4] (upsampled once per pair); flows [T,2,h4,w4]; img0/img1 [1,3,h4,w4]
        n = flow0.shape[0]
        img0 = img0.expand(n, -1, -1, -1)
        img1 = img1.expand(n, -1, -1, -1)
        x = torch.cat(
            [
                warp(up0.expand(n, -1, -1, -1), flow0),
                warp(up1.expand(n, -1, -1, -1), flow1),
                flow0,
                flow1,
                img0,
                img1,
                warp(img0, flow0),
                warp(img1, flow1),
            ],
            dim=1,
        )
        out = self.convblock(x)
        return flow0 + out[:, 0:2], flow1 + out[:, 2:4], out[:, 4:5], out[:, 5:]


class UpdateBlock(nn.Module):
    """Correlation-guided residual update of the 1/4 flows and feature, optionally at half resolution."""

    def __init__(self, *, feature: int = 128, hidden: int = 192, corr_channels: int = 648, scale=None):
        super().__init__()
        self.scale = scale
        self.convc1 = nn.Conv2d(corr_channels, 256, 1)
        self.convc2 = nn.Conv2d(256, 192, 3, padding=1)
        self.convf1 = nn.Conv2d(4, 128, 7, padding=3)
        self.convf2 = nn.Conv2d(128, 64, 3, padding=1)
        self.conv = nn.Conv2d(64 + 192, 188, 3, padding=1)
        self.gru = nn.Sequential(
            nn.Conv2d(188 + 4 + feature, hidden, 3, padding=1),
            nn.LeakyReLU(0.1, inplace=True),
            nn.Conv2d(hidden, hidden, 3, padding=1),
        )
        self.feat_head = nn.Sequential(
            nn.Conv2d(hidden, hidden, 3, padding=1),
            nn.LeakyReLU(0.1, inplace=True),
            nn.Conv2d(hidden, feature, 3, padding=1),
        )
        self.flow_head = nn.Sequential(
            nn.Conv2d(hidden, hidden, 3, padding=1), nn.LeakyReLU(0.1, inplace=True), nn.Conv2d(hidden, 4, 3, padding=1)
        )
        self.lrelu = nn.LeakyReLU(0.1, inplace=True)

    def forward(self, feat, flow, corr):
        # feat [T,128,h,w] (h,w = 2x the flow's size when scaled); flow [T,4,.]; corr [T,648,.]
        if self.scale is not None:
            feat = resize(feat, 1 / self.scale)
        cor = self.lrelu(self.convc2(self.lrelu(self.convc1(corr))))
        flo = self.lrelu(self.convf2(self.lrelu(self.convf1(flow))))
        x = self.lrelu(self.conv(torch.cat([cor, flo], dim=1)))
        out = self.gru(torch.cat([x, flow, feat], dim=1))
        d_feat, d_flow = self.feat_head(out), self.flow_head(out)
        if self.scale is not None:
            d_feat = resize(d_feat, self.scale)
            d_flow = self.scale * resize(d_flow, self.scale)
        return d_feat, d_flow


class MultiFlowDecoder(nn.Module):
    """1/4 flows and feature + 1/4 encoder features -> ``flows`` candidate flow pairs, masks, residuals."""

    def __init__(self, channels: int = 128, side: int = 64, flows: int = 3):
        super().__init__()
        self.flows = flows
        self.upsample = feature_upsampler(channels, 2)
        c = 2 * channels
        self.convblock = nn.Sequential(
            convrelu(c + 17, c),
            ResBlock(c, side),
            ResBlock(c, side),
            ResBlock(c, side),
            nn.Conv2d(c, 8 * flows, 3, padding=1),
        )

    def forward(self, feat, up0, up1, flow0, flow1, mask, img0, img1):
        # feat [T,128,h4,w4], flows [T,2,h4,w4], mask [T,1,h4,w4]; up0/up1 [1,64,H,W]; img0/img1 [1,3,H,W]
        n = flow0.shape[0]
        flow0 = 4.0 * resize(flow0, 4.0)
        flow1 = 4.0 * resize(flow1, 4.0)
        mask = resize(mask, 4.0)
        img0 = img0.expand(n, -1, -1, -1)
        img1 = img1.expand(n, -1, -1, -1)
        x = torch.cat(
            [
                resize(feat, 4.0),
                warp(up0.expand(n, -1, -1, -1), flow0),
                warp(up1.expand(n, -1, -1, -1), flow1),
                flow0,
                flow1,
                mask,
                img0,
                img1,
                warp(img0, flow0),
                warp(img1, flow1),
            ],
            dim=1,
        )
        return self._refine(x, flow0, flow1, mask)

    def _refine(self, x, flow0, flow1, mask):
        """The block's output on ``x`` as updates of the flows and mask ``x`` was built from (upsampled to the
        frame's resolution): ``flows`` flow pairs, their masks after a sigmoid, and 3-channel residuals."""
        k = self.flows
        d_flow0, d_flow1, d_mask, res = torch.split(self.convblock(x), [2 * k, 2 * k, k, 3 * k], dim=1)
        return (
            d_flow0 + flow0.repeat(1, k, 1, 1),
            d_flow1 + flow1.repeat(1, k, 1, 1),
            torch.sigmoid(d_mask + mask.repeat(1, k, 1, 1)),
            res,
        )

    def region(self, feat, up0, up1, flow0, flow1, mask, img0, img1, box):
        """``forward``'s outputs on the window ``box`` = (y0, y1, x0, x1) of the full-size frame; exact within
        ``halo(self.convblock)`` pixels of the window's sides that are not the frame's."""
        n = flow0.shape[0]
        h, w = img0.shape[-2:]
        y0, y1, x0, x1 = box
        flow0 = 4.0 * resize_region(flow0, 4, box)
        flow1 = 4.0 * resize_region(flow1, 4, box)
        mask = resize_region(mask, 4, box)
        img0, img1 = img0.expand(n, -1, -1, -1), img1.expand(n, -1, -1, -1)
        x = torch.cat(
            [
                resize_region(feat, 4, box),
                warp_region(up0.expand(n, -1, -1, -1), flow0, y0, x0, h, w),
                warp_region(up1.expand(n, -1, -1, -1), flow1, y0, x0, h, w),
                flow0,
                flow1,
                mask,
                img0[..., y0:y1, x0:x1],
                img1[..., y0:y1, x0:x1],
                warp_region(img0, flow0, y0, x0, h, w),
                warp_region(img1, flow1, y0, x0, h, w),
            ],
            dim=1,
        )
        return self._refine(x, flow0, flow1, mask)


class Synthesis(nn.Module):
    """Frame synthesis network (AMT decoders, correlation-guided updates, multi-flow combination)."""

    def __init__(self, *, flows: int = 3, levels: int = 4, radius: int = 4, corr_mode: str = "auto"):
        super().__init__()
        self.corr_mode = corr_mode  # how the bidirectional correlation is computed, see ``Correlation``
        self.flows = flows
        self.levels = levels
        self.radius = radius
        self.init_decoder = InitDecoder(256, 64)
        self.update_low = UpdateBlock(corr_channels=2 * levels * (2 * radius + 1) ** 2, scale=2.0)
        self.update_high = UpdateBlock(corr_channels=2 * levels * (2 * radius + 1) ** 2)
        self.final_decoder = MultiFlowDecoder(128, 64, flows)
        self.combine = nn.Sequential(
            nn.Conv2d(3 * flows, 6 * flows, 7, 1, 3), nn.PReLU(6 * flows), nn.Conv2d(6 * flows, 3, 7, 1, 3)
        )

    def forward(
        self,
        img0,
        img1,
        feat4_0,
        feat4_1,
        feat8_0,
        feat8_1,
        corr0,
        corr1,
        flowt,
        t,
        ds: float = 1.0,
        tile: Optional[int] = None,
        distinct: bool = False,
    ):
        """Frames at each timestep.

        Args:
            img0, img1: [1,3,Hp,Wp] float32 in [0,1], padded full resolution.
            feat4_0, feat4_1: [1,128,h/4,w/4]; feat8_0, feat8_1: [1,256,h/8,w/8] pair features
                (h, w = processing size = Hp*ds, Wp*ds).
            corr0, corr1: [1,256,h/8,w/8] correlation features of each frame.
            flowt: [T,2,h,w] float32 flow at t, pixels.
            t: [T] float32 in (0, 1).
            ds: processing scale of the pair.

            tile: None, or the side in pixels of the spatial tiles the full-size parts (final decoder at the
                processing size, composition at the frame size) run in, each with a halo of the receptive field
                of its convolutions: the same frames within float rounding, a fraction of the activations.
            distinct: with ``tile``, run one window of each kind only (see ``tiles``): for memory estimates,
                whose peak it keeps; the frames are incomplete.

        Returns:
            [T,3,Hp,Wp] float32 in [0,1].
        """
        x0, x1 = resize(img0, ds), resize(img1, ds)
        flow0, flow1, feat, mask = self.quarter_flows(x0, x1, feat8_0, feat8_1, corr0, corr1, flowt, t)
        args = (
            feat,
            self.final_decoder.upsample(feat4_0),
            self.final_decoder.upsample(feat4_1),
            flow0,
            flow1,
            mask,
            2 * x0 - 1.0,
            2 * x1 - 1.0,
        )
        del feat, flow0, flow1, mask
        if tile is None:
            return self.compose(img0, img1, *self.final_decoder(*args))
        return self.compose_tiled(img0, img1, *self.decode_tiled(args, tile, distinct), tile, distinct)

    def decode_tiled(self, args, tile: int, distinct: bool = False):
        """``final_decoder(*args)`` computed in ``tile`` x ``tile`` windows of the processing size."""
        h, w = args[6].shape[-2:]
        outs = None
        for box, region in tiles(h, w, tile, halo(self.final_decoder.convblock), distinct):
            parts = self.final_decoder.region(*args, region)
            if outs is None and box != (0, h, 0, w):
                outs = [p.new_empty(p.shape[:2] + (h, w)) for p in parts]
            outs = paste(outs, parts, box, region)
        return outs

    def compose_tiled(self, img0, img1, flows0, flows1, masks, res, tile: int, distinct: bool = False):
        """``compose`` computed in ``tile`` x ``tile`` windows of the frame (whole when the frame size is not an
        integer multiple of the processing size)."""
        hp, wp = img0.shape[-2:]
        h, w = flows0.shape[-2:]
        if hp % h or wp % w or hp // h != wp // w:
            return self.compose(img0, img1, flows0, flows1, masks, res)
        r = hp // h
        out = None
        for box, region in tiles(hp, wp, tile, halo(self.combine), distinct):
            ups = [resize_region(x, r, region) for x in (flows0, flows1, masks, res)]
            part = self.compose(
                img0, img1, float(r) * ups[0], float(r) * ups[1], ups[2], ups[3], region=region, scale=1.0
            )
            if out is None and box != (0, hp, 0, wp):
                out = part.new_empty(part.shape[:2] + (hp, wp))
            out = paste(None if out is None else [out], [part], box, region)[0]
        return out

    def quarter_flows(self, x0, x1, feat8_0, feat8_1, corr0, corr1, flowt, t):
        """Flows t->0, t->1 at 1/4 after the init decoder and both update blocks.

        Args: x0, x1 [1,3,h,w] frames at processing size in [0,1]; the rest as in ``forward``.

        Returns: flow_t0, flow_t1 [T,2,h/4,w/4] pixels of that scale; feature [T,128,h/4,w/4]; mask logit [T,1,h/4,w/4].
        """
        n = t.shape[0]
        tt = t.view(n, 1, 1, 1)
        img0, img1 = 2 * x0 - 1.0, 2 * x1 - 1.0
        flow0 = 0.25 * resize(flowt * (-tt), 0.25)
        flow1 = 0.25 * resize(flowt * (1.0 - tt), 0.25)
        quarter = flow0.shape[2] / img0.shape[2]
        flow0, flow1, mask, feat = self.init_decoder(
            self.init_decoder.upsample(feat8_0),
            self.init_decoder.upsample(feat8_1),
            flow0,
            flow1,
            resize(img0, quarter),
            resize(img1, quarter),
        )

        scale = 1.0 / float(corr0.shape[1]) ** 0.5
        opts = dict(levels=self.levels, radius=self.radius, scale=scale, mode=self.corr_mode)
        corr_01 = Correlation(corr0, corr1, **opts)  # rows: frame-0 pixels
        corr_10 = Correlation(corr1, corr0, **opts)  # rows: frame-1 pixels
        h8, w8 = corr0.shape[-2:]
        grid = coords_grid(1, h8, w8, device=flowt.device)
        f0 = 0.5 * resize(flow0, 0.5)
        f1 = 0.5 * resize(flow1, 0.5)
        # crossed on purpose: the frame-0 volume is read where t->1 points, scaled to a 0->1 flow
        corr = torch.cat(
            [corr_01(grid + f1 * (1.0 / (1.0 - tt)), shared=True), corr_10(grid + f0 * (1.0 / tt), shared=True)], dim=1
        )
        d_feat, d_flow = self.update_low(feat, torch.cat([f0, f1], dim=1), corr)
        flow0, flow1, feat = flow0 + d_flow[:, :2], flow1 + d_flow[:, 2:4], feat + d_feat

        d_feat, d_flow = self.update_high(feat, torch.cat([flow0, flow1], dim=1), resize(corr, 2.0))
        return flow0 + d_flow[:, :2], flow1 + d_flow[:, 2:4], feat + d_feat, mask

    def compose(self, img0, img1, flows0, flows1, masks, res, region=None, scale=None):
        """Blend the candidate warps at full resolution: [T,3,Hp,Wp] in [0,1].

        ``region`` (y0, y1, x0, x1): the flows, masks and residuals are already at full resolution
        (``scale=1.0``) and cover only that window of the frame; the result covers it too.
        """
        n, k = flows0.shape[0], self.flows
        r = img0.shape[2] / flows0.shape[2] if scale is None else scale  # 1/ds, as the ratio of the integer sizes
        flows0, flows1 = r * resize(flows0, r), r * resize(flows1, r)
        masks, res = resize(masks, r), resize(res, r)
        hp, wp = img0.shape[-2:]
        h, w = flows0.shape[-2:]
        # every candidate warps the same frame: a stride-0 view, not n * k copies of it
        img0 = (2 * img0 - 1.0).expand(n * k, -1, -1, -1)
        img1 = (2 * img1 - 1.0).expand(n * k, -1, -1, -1)
        m = masks.reshape(n * k, 1, h, w)
        if region is None:
            warp0, warp1 = warp(img0, flows0.reshape(n * k, 2, h, w)), warp(img1, flows1.reshape(n * k, 2, h, w))
        else:
            warp0 = warp_region(img0, flows0.reshape(n * k, 2, h, w), region[0], region[2], hp, wp)
            warp1 = warp_region(img1, flows1.reshape(n * k, 2, h, w), region[0], region[2], hp, wp)
        warps = m * warp0 + (1 - m) * warp1
        warps = warps + res.reshape(n * k, 3, h, w)
        warps = warps.view(n, k * 3, h, w)
        out = warps.view(n, k, 3, h, w).mean(dim=1) + self.combine(warps)
        return torch.clamp((out + 1.0) / 2, 0, 1)
