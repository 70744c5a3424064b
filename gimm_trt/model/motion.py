"""Stage B, the implicit motion network: flow at any timestep t from the two estimator flows.

Per pair: flow normalisation, splatting metrics and motion latents. Per timestep (a batch axis T):
two forward splats of the latents, the latent refiner and the coordinate MLP.
"""

from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..plugins import splat
from ._utils import fp32, halo, tiles, warp


class LateralBlock(nn.Module):
    """x + conv3x3(LeakyReLU(conv3x3(x)))."""

    def __init__(self, channels: int):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.LeakyReLU(0.1, inplace=True),
            nn.Conv2d(channels, channels, 3, padding=1),
        )

    def forward(self, x):
        return x + self.layers(x)


def latent_encoder(in_channels: int, width: int, lateral_blocks: int) -> nn.Sequential:
    """conv -> conv -> LReLU -> lateral blocks -> LReLU -> reflect-padded conv.

    Channels in -> width/2 -> width -> width/2: (2, 32) is the motion encoder, (64, 64) the latent refiner.
    """
    return nn.Sequential(
        nn.Conv2d(in_channels, width // 2, 3, padding=1),
        nn.Conv2d(width // 2, width, 3, padding=1),
        nn.LeakyReLU(0.1, inplace=True),
        *[LateralBlock(width) for _ in range(lateral_blocks)],
        nn.LeakyReLU(0.1, inplace=True),
        nn.Conv2d(width, width // 2, 3, padding=1, padding_mode="reflect"),
    )


class CoordMLP(nn.Module):
    """The coordinate network (hyponet): [latent, t, y, x] -> normalised flow, sine activations.

    Each layer's weight is a [fan_in + 1, fan_out] matrix whose last row is the bias; the weight rows are
    normalised per output column before use (as trained).
    """

    def __init__(
        self,
        *,
        in_features: int = 35,
        hidden: int = 128,
        layers: int = 5,
        out_features: int = 2,
        output_bias: float = 0.5,
    ):
        super().__init__()
        dims = [in_features] + [hidden] * (layers - 1) + [out_features]
        self.layers = nn.ParameterList([nn.Parameter(torch.zeros(i + 1, o)) for i, o in zip(dims[:-1], dims[1:])])
        self.output_bias = output_bias

    @fp32  # its inputs are coordinates
    def forward(self, x):
        # x [..., in_features] -> [..., out_features]
        last = len(self.layers) - 1
        for i, wb in enumerate(self.layers):
            x = F.linear(x, F.normalize(wb[:-1], dim=0).t(), wb[-1])
            if i < last:
                x = torch.sin(x)
        return x + self.output_bias


class MotionNetwork(nn.Module):
    """Implicit motion: estimator flows + timesteps -> flow at each timestep."""

    def __init__(self, *, latent: int = 16, splat_impl: str = "auto"):
        super().__init__()
        self.g_filter = nn.Parameter(torch.zeros(1, 1, 1, 3, 3), requires_grad=False)
        self.alpha_v = nn.Parameter(torch.ones(1))
        self.alpha_fe = nn.Parameter(torch.ones(1))
        self.encoder = latent_encoder(2, 2 * latent, 3)
        self.refiner = latent_encoder(4 * latent, 4 * latent, 1)
        self.mlp = CoordMLP(in_features=2 * latent + 3)
        self.splat_impl = splat_impl

    @staticmethod
    @fp32
    def normalise(flow01: torch.Tensor, flow10: torch.Tensor):
        """[flow01, -flow10] scaled into [0,1] by their largest magnitude.

        Returns:
            nflow: [N,2,2,H,W] (dim 2: 0->1, negated 1->0); scale: [N,1,1,1] pixels.
        """
        flows = torch.stack([flow01, -flow10], dim=2)
        scale = flows.abs().flatten(1).amax(dim=1).view(-1, 1, 1, 1)
        return (flows / scale.unsqueeze(-1) + 1.0) / 2.0, scale

    @fp32
    def splat_weights(self, flow01: torch.Tensor, flow10: torch.Tensor):
        """Splatting metrics from local flow variance and forward-backward consistency.

        Args:
            flow01, flow10: [N,2,H,W] pixels.

        Returns:
            w01, w10: [N,1,H,W] in (0, 2] for positive alphas.
        """
        n = flow01.shape[0]
        flows = torch.cat([flow01, flow10], dim=0)
        stats = F.pad(torch.cat([flows**2, flows], dim=1), (1, 1, 1, 1), mode="reflect")
        # the 3x3 binomial filter (a 1x1x3x3 conv3d in the checkpoint) applied to each channel alone
        stats = F.conv2d(stats, self.g_filter.view(1, 1, 3, 3).expand(4, 1, 3, 3), groups=4)
        mean_sq, mean = stats[:, :2], stats[:, 2:]
        var = (mean_sq - mean**2).clamp(min=1e-9).sqrt().mean(dim=1, keepdim=True)
        err01 = (-warp(flow10, flow01) - flow01).abs().mean(dim=1, keepdim=True)
        err10 = (-warp(flow01, flow10) - flow10).abs().mean(dim=1, keepdim=True)
        w01 = 1 / (1 + err01 * self.alpha_fe) + 1 / (1 + var[:n] * self.alpha_v)
        w10 = 1 / (1 + err10 * self.alpha_fe) + 1 / (1 + var[n:] * self.alpha_v)
        return w01, w10

    def latents(self, nflow: torch.Tensor):
        """Motion latents of both normalised flows: [N,2,2,H,W] -> two [N,16,H,W]."""
        n = nflow.shape[0]
        lat = self.encoder(torch.cat([nflow[:, :, 0], nflow[:, :, 1]], dim=0))
        return lat[:n], lat[n:]

    def forward(
        self, flow01: torch.Tensor, flow10: torch.Tensor, t: torch.Tensor, tile: Optional[int] = None
    ) -> torch.Tensor:
        """Flow at each timestep for one frame pair.

        Args:
            flow01, flow10: [1,2,h,w] float32 estimator flows, pixels (x then y).
            t: [T] float32 timesteps in (0, 1).
            tile: None, or a tile side in pixels (as ``Synthesis.forward``'s): the latent refiner and the
                coordinate MLP then run per ``tile`` x ``tile`` window, the refiner on the window grown by its
                receptive field (``halo``). They hold the stage's largest activations (64 channels and the MLP's
                128 at full processing size: 2.5 GiB per timestep at 1080p); the splats stay whole.

        Returns:
            flowt: [T,2,h,w] float32, pixels; F_t0 = -t * flowt and F_t1 = (1-t) * flowt.
        """
        nflow, scale = self.normalise(flow01, flow10)
        w01, w10 = self.splat_weights(flow01, flow10)
        lat0, lat1 = self.latents(nflow)
        n_t = t.shape[0]
        h, w = flow01.shape[-2:]
        tt = t.view(n_t, 1, 1, 1)
        lat0 = lat0.expand(n_t, -1, -1, -1)
        lat1 = lat1.expand(n_t, -1, -1, -1)
        s0 = splat(lat0, flow01 * tt, w01.expand(n_t, -1, -1, -1), impl=self.splat_impl)
        s1 = splat(lat1, flow10 * (1 - tt), w10.expand(n_t, -1, -1, -1), impl=self.splat_impl)
        z = torch.cat([s0, s1], dim=1)
        del s0, s1
        if tile is None:
            return (2.0 * self.decode(self.refine(lat0, lat1, z), self.coords(t, h, w)) - 1.0) * scale
        out = z.new_empty(n_t, 2, h, w, dtype=torch.float32)
        coords = self.coords(t, h, w)
        for (y0, y1, x0, x1), (ry0, ry1, rx0, rx1) in tiles(h, w, tile, halo(self.refiner)):
            region = (..., slice(ry0, ry1), slice(rx0, rx1))
            part = self.refine(lat0[region], lat1[region], z[region])[..., y0 - ry0 : y1 - ry0, x0 - rx0 : x1 - rx0]
            out[..., y0:y1, x0:x1] = self.decode(part, coords[:, y0:y1, x0:x1])
        return (2.0 * out - 1.0) * scale

    def refine(self, lat0, lat1, z) -> torch.Tensor:
        """Splatted latents refined with the pair's own: [T,16,h,w] x2 and [T,32,h,w] -> [T,32,h,w]. Its 3x3
        convolutions read ``halo(self.refiner)`` pixels around each output: a window grown by that is exact."""
        return z + self.refiner(torch.cat([lat0, lat1, z], dim=1))

    def decode(self, z, coords) -> torch.Tensor:
        """The coordinate MLP per pixel: latents [T,32,h,w] and (t, y, x) [T,h,w,3] -> [T,2,h,w] in about [0,1]."""
        return self.mlp(torch.cat([z.permute(0, 2, 3, 1), coords], dim=-1)).permute(0, 3, 1, 2)

    @staticmethod
    def coords(t: torch.Tensor, h: int, w: int) -> torch.Tensor:
        """[T,h,w,3] (t, y, x) with pixel centres in [-1, 1], formed as the trained model formed them."""
        n_t = t.shape[0]
        ys = -1.0 + 2.0 * ((0.5 + torch.arange(h, device=t.device, dtype=torch.float32)) / h)
        xs = -1.0 + 2.0 * ((0.5 + torch.arange(w, device=t.device, dtype=torch.float32)) / w)
        return torch.stack(
            [
                t.view(n_t, 1, 1).expand(n_t, h, w),
                ys.view(1, h, 1).expand(n_t, h, w),
                xs.view(1, 1, w).expand(n_t, h, w),
            ],
            dim=-1,
        )
