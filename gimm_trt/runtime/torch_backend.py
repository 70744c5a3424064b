"""The ``torch`` backend: the PyTorch model itself, eager, in inference mode."""

from __future__ import annotations

import contextlib
import warnings

import torch

from ..core.precision import autocast_dtype
from ..core.stages import FLOW_OUTPUTS, SYNTHESIS_INPUTS
from .backend import Backend

__all__ = ["TorchBackend", "exact_fp32", "cpu_has_bf16"]


def cpu_has_bf16() -> bool:
    """Whether oneDNN runs bf16 convolutions natively on this CPU (else it emulates them, ~80x slower)."""
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


@contextlib.contextmanager
def exact_fp32(device: torch.device):
    """No TF32 inside: 20-32 recurrent refinements amplify its rounding. Restores the caller's settings."""
    if device.type != "cuda":
        yield
        return
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


class TorchBackend(Backend):
    """The PyTorch model, eager, in inference mode; any ``ds_scale`` the frame size allows.

    ``precision="fp16"`` (CUDA) or ``"bf16"`` runs convolutions and matmuls in that type under autocast;
    coordinates, resampling, correlation, splatting and normalisers are fp32 islands in the model code
    (``model._utils.fp32``), so autocast never picks their precision. Weights stay fp32.
    """

    name = "torch"
    precisions = {"cuda": ("fp32", "fp16", "bf16"), "cpu": ("fp32", "bf16")}
    why = (
        "PyTorch's CPU fp16 convolutions are reference loops (minutes per frame); bf16 ones are fast on CPUs "
        "with AVX512-BF16 or AMX"
    )

    def __init__(self, model: torch.nn.Module, *, device, precision: str = "fp32"):
        self.device = self.check(device, precision)
        self.precision = precision
        if precision == "bf16" and self.device.type == "cpu" and not cpu_has_bf16():
            warnings.warn(
                f"this CPU ({torch.backends.cpu.get_cpu_capability()}) has no native bf16 (AVX512-BF16 or AMX): "
                "PyTorch emulates bf16 convolutions there, about 80x slower than fp32; use precision='fp32'",
                stacklevel=2,
            )
        self.model = model.to(self.device).eval()
        self.tile = None  # motion and synthesis tile side in pixels (None: untiled), set by a memory budget

    def use_tile(self, tile) -> None:
        self.tile = tile

    @contextlib.contextmanager
    def _mode(self):
        dtype = autocast_dtype(self.precision)
        with (
            torch.inference_mode(),
            exact_fp32(self.device),
            torch.autocast(self.device.type, dtype=dtype or torch.float32, enabled=dtype is not None),
        ):
            yield

    def flow(self, img0, img1, ds: float) -> dict:
        with self._mode():
            return dict(zip(FLOW_OUTPUTS, self.model.flow(img0, img1, ds)))

    def encode(self, img, ds: float) -> tuple:
        with self._mode():
            return self.model.flow.encode(img, ds)

    def estimate(self, enc0: tuple, enc1: tuple, ds: float) -> dict:
        with self._mode():
            return dict(zip(FLOW_OUTPUTS, self.model.flow.estimate(enc0, enc1)))

    def motion(self, flow01, flow10, t) -> torch.Tensor:
        with self._mode():
            if self.tile is None:
                return self.model.motion(flow01, flow10, t)
            return self.model.motion(flow01, flow10, t, tile=self.tile)

    def synthesis(self, img0, img1, feats: dict, flowt, t, ds: float) -> torch.Tensor:
        with self._mode():
            pair = [feats[k] for k in SYNTHESIS_INPUTS[2:8]]
            if self.tile is None:
                return self.model.synthesis(img0, img1, *pair, flowt, t, ds)
            return self.model.synthesis(img0, img1, *pair, flowt, t, ds, tile=self.tile)
