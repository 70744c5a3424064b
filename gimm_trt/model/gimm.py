"""GIMM-VFI composed from its three stages: flow (once per pair), motion and synthesis (T timesteps as a batch)."""

import torch
import torch.nn as nn

from ._utils import resize
from .motion import MotionNetwork
from .synthesis import Synthesis


class FlowStage(nn.Module):
    """Stage A: the flow estimator run once per pair, plus the projections synthesis expects.

    Parts: ``estimator`` (RAFT or FlowFormer: ``(img0, img1) -> flow01, flow10, fmap0, fmap1, feat4_0,
    feat4_1, feat8_0, feat8_1``, split into a per-frame ``encode(img) -> tuple`` and a per-pair
    ``estimate(enc0, enc1)`` so a video encodes each frame once) and optional 1x1 projections ``fproj``
    (correlation features), ``proj4`` and ``proj8`` (1/4 and 1/8 context features); RAFT needs them,
    FlowFormer's features already have the right widths. Outputs are ``gimm_trt.core.stages.FLOW_OUTPUTS``.
    """

    def __init__(self, *, estimator: nn.Module, fproj=None, proj4=None, proj8=None):
        super().__init__()
        self.estimator = estimator
        self.fproj = fproj if fproj is not None else nn.Identity()
        self.proj4 = proj4 if proj4 is not None else nn.Identity()
        self.proj8 = proj8 if proj8 is not None else nn.Identity()

    def forward(self, img0: torch.Tensor, img1: torch.Tensor, ds: float = 1.0):
        """Flows and features of one frame pair.

        Args:
            img0, img1: [1,3,Hp,Wp] float32 in [0,1], padded to multiples of 32.
            ds: processing scale; the estimator runs at (h, w) = (Hp*ds, Wp*ds), multiples of 8, >= 128.

        Returns (``gimm_trt.core.stages.FLOW_OUTPUTS``):
            flow01, flow10 [1,2,h,w] pixels; feat4_0, feat4_1 [1,128,h/4,w/4]; feat8_0, feat8_1
            [1,256,h/8,w/8]; corr0, corr1 [1,256,h/8,w/8] correlation features.
        """
        return self._project(*self.estimator(resize(img0, ds), resize(img1, ds)))

    def encode(self, img: torch.Tensor, ds: float = 1.0):
        """Per-frame work of the estimator for [1,3,Hp,Wp] ``img``; pass two of these to ``estimate``."""
        return self.estimator.encode(resize(img, ds))

    def estimate(self, enc0, enc1):
        """``forward``'s outputs from the ``encode`` outputs of both frames."""
        return self._project(*self.estimator.estimate(enc0, enc1))

    def _project(self, flow01, flow10, fmap0, fmap1, f4_0, f4_1, f8_0, f8_1):
        return (
            flow01,
            flow10,
            self.proj4(f4_0),
            self.proj4(f4_1),
            self.proj8(f8_0),
            self.proj8(f8_1),
            self.fproj(fmap0),
            self.fproj(fmap1),
        )


class GIMMVFI(nn.Module):
    """GIMM-VFI: frames at any timesteps between two frames.

    Parts (keyword-only): ``flow`` (``FlowStage``), ``motion`` (``MotionNetwork``), ``synthesis``
    (``Synthesis``). Each stage has a tensor-only ``forward`` that exports on its own.
    """

    def __init__(self, *, flow: FlowStage, motion: MotionNetwork, synthesis: Synthesis):
        super().__init__()
        self.flow = flow
        self.motion = motion
        self.synthesis = synthesis

    def forward(self, img0: torch.Tensor, img1: torch.Tensor, t: torch.Tensor, ds: float = 1.0) -> torch.Tensor:
        """[1,3,Hp,Wp] x2 in [0,1] (padded to multiples of 32), t [T] in (0,1) -> frames [T,3,Hp,Wp] in [0,1]."""
        f = self.flow(img0, img1, ds)
        flowt = self.motion(f[0], f[1], t)
        return self.synthesis(img0, img1, *f[2:], flowt, t, ds)
