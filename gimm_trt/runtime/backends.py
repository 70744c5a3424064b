"""Execution backends: each runs the three stages (flow, motion, synthesis) with torch tensors as I/O.

A backend exposes ``device``, ``ds_scale`` (the one scale it serves, or None for any) and three
methods; ``Interpolator`` drives them and never looks inside.
"""
import contextlib

import torch

from ..model.gimm import FLOW_OUTPUTS

BACKENDS = ("torch", "onnxruntime", "tensorrt")
PRECISIONS = ("fp32", "fp16")


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
    """The PyTorch model itself, eager, in inference mode."""

    name = "torch"
    ds_scale = None  # any scale the frame size allows

    def __init__(self, model: torch.nn.Module, *, device, precision: str = "fp32"):
        if precision != "fp32":
            raise ValueError(f"precision {precision!r} is not available for the torch backend (use 'fp32')")
        self.device = resolve_device(device)
        self.precision = precision
        self.model = model.to(self.device).eval()

    def flow(self, img0, img1, ds: float) -> dict:
        with torch.inference_mode(), exact_fp32(self.device):
            return dict(zip(FLOW_OUTPUTS, self.model.flow(img0, img1, ds)))

    def motion(self, flow01, flow10, t) -> torch.Tensor:
        with torch.inference_mode(), exact_fp32(self.device):
            return self.model.motion(flow01, flow10, t)

    def synthesis(self, img0, img1, feats: dict, flowt, t, ds: float) -> torch.Tensor:
        with torch.inference_mode(), exact_fp32(self.device):
            return self.model.synthesis(img0, img1, feats["feat4_0"], feats["feat4_1"], feats["feat8_0"],
                                        feats["feat8_1"], feats["corr0"], feats["corr1"], flowt, t, ds)
