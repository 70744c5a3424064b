"""A cheap stand-in for the model behind ``Interpolator``: tests of input checks, sinks and faults run in
milliseconds, while the division hazards of the real synthesis stage are kept."""

import time

import numpy as np
import torch

from gimm_trt import Interpolator
from gimm_trt.runtime import Backend


class CrossFade(Backend):
    """A backend whose synthesis is a cross-fade computed the way the real one divides: by t and by 1 - t in
    float32, so a timestep that is 0, 1 or denormal there gives NaN frames as the model does.

    ``delay`` seconds pass in each synthesis call (to interrupt a run midway); ``fail_at`` raises in that call.
    """

    name, ds_scale, device, precision = "crossfade", None, torch.device("cpu"), "fp32"

    def __init__(self, delay: float = 0.0, fail_at=None, error=RuntimeError("synthesis failed")):
        self.delay, self.fail_at, self.error, self.calls = delay, fail_at, error, 0

    def encode(self, img, ds):
        return img

    def estimate(self, enc0, enc1, ds):
        h, w = int(enc0.shape[2] * ds), int(enc0.shape[3] * ds)
        return {"flow01": torch.zeros(1, 2, h, w), "flow10": torch.zeros(1, 2, h, w)}

    def motion(self, flow01, flow10, t):
        return flow01.expand(t.shape[0], -1, -1, -1)

    def synthesis(self, img0, img1, feats, flowt, t, ds):
        self.calls += 1
        if self.fail_at is not None and self.calls >= self.fail_at:
            raise self.error
        time.sleep(self.delay)
        tt = t.view(-1, 1, 1, 1).to(torch.float32)
        # the real stage scales flows by 1/t and 1/(1-t) after multiplying them by t and 1-t
        a = (img0 * tt) * (1.0 / tt)
        b = (img1 * (1.0 - tt)) * (1.0 / (1.0 - tt))
        poison = (a - a) + (b - b)  # 0, or NaN where a division overflowed: clamp would hide an inf
        return ((1.0 - tt) * a + tt * b).clamp(0.0, 1.0) + poison


def crossfade(**kwargs) -> Interpolator:
    return Interpolator(CrossFade(**kwargs), variant="R", weights="cross-fade stand-in")


def gradient_frames(n: int, height: int = 128, width: int = 128) -> list:
    """``n`` uint8 [H,W,3] frames, each different (a moving ramp)."""
    x = np.arange(width, dtype=np.int64)
    return [
        np.broadcast_to(((x * 2 + 17 * i) % 256).astype(np.uint8)[None, :, None], (height, width, 3)).copy()
        for i in range(n)
    ]
