"""Capability probes and version checks: the only place in gimm_trt that asks what TensorRT or the GPU can do.

Everything else asks here, so a TensorRT release that renames or drops something is handled in one file.
Nothing is imported or probed at import time; ``tensorrt`` and ``torch`` load on first use.
"""

from __future__ import annotations

import functools
import importlib
import re
from dataclasses import dataclass

from ..core.errors import DeviceError, InputError
from ..core.trt import INSTALL_HINT, MIN_TRT_VERSION, has_tensorrt, import_trt, parse_version

__all__ = [
    "MIN_TRT_VERSION",
    "INSTALL_HINT",
    "Target",
    "import_trt",
    "has_tensorrt",
    "trt_version",
    "parse_version",
    "has_fp16_flag",
    "has_strongly_typed",
    "has_python_plugins",
    "sanitize_gpu_name",
    "cuda_device",
    "gpu_name",
    "compute_capability",
    "current_target",
    "trt_logger",
    "PLUGIN_MODULE",
]

PLUGIN_MODULE = "gimm_trt.plugins.trt_plugin"  # registers gimm_trt::splat with tensorrt.plugin on import


# the parts of a Target as they may appear in file names: no dots in gpu (the separator), nothing a shell minds
PATTERNS = {"gpu": r"[a-z0-9][a-z0-9-]*", "sm": r"[0-9]+", "trt_version": r"[0-9][0-9A-Za-z.+_-]*"}


@dataclass(frozen=True, kw_only=True)
class Target:
    """What an engine is bound to besides its ONNX: the GPU model, its compute capability and TensorRT.

    ``gpu`` is a file-name-safe name (``sanitize_gpu_name``), ``sm`` the compute capability as digits
    (``"90"`` for 9.0), ``trt_version`` TensorRT's full version string (``"10.9.0.34"``).
    """

    gpu: str
    sm: str
    trt_version: str

    def __post_init__(self):
        for name, pattern in PATTERNS.items():
            value = getattr(self, name)
            if not isinstance(value, str) or not re.fullmatch(pattern, value):
                raise InputError(f"Target.{name} must match {pattern}, got {value!r}")


def trt_version(trt=None) -> str:
    return (trt or import_trt()).__version__


def has_fp16_flag(trt=None) -> bool:
    """Whether the builder still has ``BuilderFlag.FP16`` (TensorRT 10 does, 11 does not).

    gimm_trt never sets it: engines are always built strongly typed and fp16 comes from the fp16 ONNX graph.
    """
    return hasattr((trt or import_trt()).BuilderFlag, "FP16")


def has_strongly_typed(trt=None) -> bool:
    return hasattr((trt or import_trt()).NetworkDefinitionCreationFlag, "STRONGLY_TYPED")


def has_python_plugins(trt=None) -> bool:
    """Whether ``tensorrt.plugin`` (quickly-deployable plugins) can be imported."""
    trt = trt or import_trt()
    try:
        importlib.import_module(f"{trt.__name__}.plugin")
    except ImportError:
        return False
    return True


def sanitize_gpu_name(name: str) -> str:
    """``"NVIDIA H100 80GB HBM3"`` -> ``"h100-80gb-hbm3"``: lower case, ``[a-z0-9-]`` only (never a dot,
    the separator in engine file names), the vendor prefix every CUDA device carries dropped."""
    safe = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    safe = re.sub(r"^nvidia-", "", safe)
    if not safe:
        raise InputError(f"GPU name {name!r} has nothing usable in a file name")
    return safe


def cuda_device(device=None):
    """A ``torch.device`` of type cuda with an index (``None`` = the current CUDA device)."""
    import torch

    if not torch.cuda.is_available():
        raise DeviceError(
            "the tensorrt backend needs a CUDA GPU, and torch sees none "
            "(is this a CPU-only torch build, or is CUDA_VISIBLE_DEVICES empty?)"
        )
    device = torch.device("cuda" if device is None else device)
    if device.type != "cuda":
        raise DeviceError(f"the tensorrt backend runs on a CUDA device, not {device}")
    return torch.device("cuda", torch.cuda.current_device() if device.index is None else device.index)


def gpu_name(device=None) -> str:
    import torch

    return sanitize_gpu_name(torch.cuda.get_device_name(cuda_device(device)))


def compute_capability(device=None) -> str:
    import torch

    major, minor = torch.cuda.get_device_capability(cuda_device(device))
    return f"{major}{minor}"


def current_target(device=None) -> Target:
    """The ``Target`` of this machine: probes torch.cuda and imports TensorRT."""
    return Target(gpu=gpu_name(device), sm=compute_capability(device), trt_version=trt_version())


@functools.cache
def trt_logger():
    """One TensorRT logger per process, shared with Polygraphy's builder when it is installed
    (TensorRT warns when a builder and a runtime in one process were given different loggers)."""
    try:
        from polygraphy.backend.trt import util as trt_util
    except ImportError:
        trt = import_trt()
        return trt.Logger(trt.Logger.WARNING)
    import_trt()  # our error message, not Polygraphy's, when TensorRT is missing
    return trt_util.get_trt_logger()
