"""Execution backends: each runs the three stages (flow, motion, synthesis) with torch tensors as I/O.

A backend exposes ``device``, ``ds_scale`` (the one scale it serves, or None for any) and three
methods; ``Interpolator`` drives them and never looks inside.
"""
import contextlib

import torch

from ..model.gimm import FLOW_OUTPUTS

BACKENDS = ("torch", "onnxruntime", "tensorrt")
PRECISIONS = ("fp32", "fp16", "bf16")  # bf16: torch backend only (CPUs have no fast fp16 convolutions)
_AUTOCAST = {"fp16": torch.float16, "bf16": torch.bfloat16}


def resolve_device(device) -> torch.device:
    """``"cpu"``, ``"cuda"`` or ``"cuda:N"`` -> torch.device; a clear error when CUDA is absent."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device must be 'cpu', 'cuda' or 'cuda:N', got {device!r}") from None
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'cpu', 'cuda' or 'cuda:N', got {device!r}")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r} requested but CUDA is not available (use device='cpu')")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"device {device!r}: only {torch.cuda.device_count()} CUDA device(s) present")
    return dev


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


class TorchBackend:
    """The PyTorch model itself, eager, in inference mode.

    ``precision="fp16"`` (CUDA) or ``"bf16"`` runs convolutions and matmuls in that type under autocast;
    coordinates, resampling, correlation, splatting and normalisers are fp32 islands in the model code
    (``model._utils.fp32``), so autocast never picks their precision. Weights stay fp32.
    """

    name = "torch"
    ds_scale = None  # any scale the frame size allows

    def __init__(self, model: torch.nn.Module, *, device, precision: str = "fp32"):
        if precision not in PRECISIONS:
            raise ValueError(f"unknown precision {precision!r}: choose one of {', '.join(PRECISIONS)}")
        self.device = resolve_device(device)
        if precision == "fp16" and self.device.type == "cpu":
            # PyTorch's CPU fp16 convolutions are reference loops (minutes per frame); bf16 ones are fast
            raise ValueError("precision 'fp16' needs device='cuda'; on the CPU use precision='bf16' or 'fp32'")
        self.precision = precision
        self.model = model.to(self.device).eval()

    @contextlib.contextmanager
    def _mode(self):
        dtype = _AUTOCAST.get(self.precision)
        with torch.inference_mode(), exact_fp32(self.device), torch.autocast(
                self.device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            yield

    def flow(self, img0, img1, ds: float) -> dict:
        with self._mode():
            return dict(zip(FLOW_OUTPUTS, self.model.flow(img0, img1, ds)))

    def encode(self, img, ds: float) -> tuple:
        """Per-frame estimator work, so ``stream`` encodes each frame of a video once."""
        with self._mode():
            return self.model.flow.encode(img, ds)

    def flow_encoded(self, enc0: tuple, enc1: tuple) -> dict:
        with self._mode():
            return dict(zip(FLOW_OUTPUTS, self.model.flow.from_encoded(enc0, enc1)))

    def motion(self, flow01, flow10, t) -> torch.Tensor:
        with self._mode():
            return self.model.motion(flow01, flow10, t)

    def synthesis(self, img0, img1, feats: dict, flowt, t, ds: float) -> torch.Tensor:
        with self._mode():
            return self.model.synthesis(img0, img1, feats["feat4_0"], feats["feat4_1"], feats["feat8_0"],
                                        feats["feat8_1"], feats["corr0"], feats["corr1"], flowt, t, ds)
