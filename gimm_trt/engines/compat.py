"""Capability probes and version checks: the only place in gimm_trt that asks what TensorRT or the GPU can do.

Everything else asks here, so a TensorRT release that renames or drops something is handled in one file.
Nothing is imported or probed at import time; ``tensorrt`` and ``torch`` load on first use.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from ..core.errors import DeviceError, InputError
from ..core.trt import (
    DEFAULT_FAMILY,
    FAMILIES,
    INSTALL_HINT,
    MIN_TRT_VERSION,
    family,
    has_tensorrt,
    import_trt,
    parse_version,
)

__all__ = [
    "MIN_TRT_VERSION",
    "INSTALL_HINT",
    "Target",
    "DEFAULT_FAMILY",
    "FAMILIES",
    "RTX_DEFAULT_CCS",
    "family",
    "import_trt",
    "has_tensorrt",
    "trt_version",
    "parse_version",
    "has_fp16_flag",
    "has_strongly_typed",
    "sanitize_gpu_name",
    "cuda_device",
    "gpu_name",
    "compute_capability",
    "current_target",
    "rtx_compute_capabilities",
    "rtx_target",
    "target_for",
    "trt_logger",
    "PLUGIN_MODULE",
]

PLUGIN_MODULE = "gimm_trt.plugins.trt_plugin"  # registers gimm_trt::splat with tensorrt.plugin on import


# the parts of a Target as they may appear in file names: no dots in gpu (the separator), nothing a shell minds
PATTERNS = {"gpu": r"[a-z0-9][a-z0-9-]*", "sm": r"[0-9]+", "trt_version": r"[0-9][0-9A-Za-z.+_-]*"}
# an AOT family's target compute capabilities: its default set, or sorted numbers joined by "_" ("86_89")
RTX_DEFAULT_CCS = "default"
AOT_SM = rf"{RTX_DEFAULT_CCS}|[0-9]+(?:_[0-9]+)*"


@dataclass(frozen=True, kw_only=True)
class Target:
    """What an engine is bound to besides its ONNX and builder settings: the engine family and its version,
    and the GPU model and compute capability it was built on, or for an AOT family the compute capabilities
    it was built for.

    ``family``: ``"tensorrt"`` or ``"tensorrt-rtx"``; ``gpu`` a file-name-safe name (``sanitize_gpu_name``),
    ``""`` for an AOT family (its plans are not bound to a GPU model); ``sm`` the compute capability as
    digits (``"90"`` for 9.0), for an AOT family ``"default"`` (the library's default set) or the targets
    joined by ``"_"`` (``"86_89"``); ``trt_version`` the family's full version string (``"10.9.0.34"``).
    """

    family: str = DEFAULT_FAMILY
    gpu: str
    sm: str
    trt_version: str

    def __post_init__(self):
        if self.family not in FAMILIES:
            raise InputError(f"Target.family must be one of {', '.join(FAMILIES)}, got {self.family!r}")
        patterns = self.patterns(self.family)
        for name, pattern in patterns.items():
            value = getattr(self, name)
            if not isinstance(value, str) or not re.fullmatch(pattern, value):
                raise InputError(f"Target.{name} must match {pattern} for the {self.family} family, got {value!r}")

    @staticmethod
    def patterns(family_name: str) -> dict:
        """The file-name-safe form of each part for a family."""
        if FAMILIES[family_name].aot:
            return {**PATTERNS, "gpu": "", "sm": AOT_SM}
        return PATTERNS


def trt_version(trt=None, family_name: str = DEFAULT_FAMILY) -> str:
    return (trt or import_trt(family_name)).__version__


def has_fp16_flag(trt=None) -> bool:
    """Whether the builder still has ``BuilderFlag.FP16`` (TensorRT 10 does, 11 does not).

    gimm_trt never sets it: engines are always built strongly typed and fp16 comes from the fp16 ONNX graph.
    """
    return hasattr((trt or import_trt()).BuilderFlag, "FP16")


def has_strongly_typed(trt=None) -> bool:
    return hasattr((trt or import_trt()).NetworkDefinitionCreationFlag, "STRONGLY_TYPED")


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
    """The ``Target`` of this machine for the tensorrt family: probes torch.cuda and imports TensorRT."""
    return Target(gpu=gpu_name(device), sm=compute_capability(device), trt_version=trt_version())


def rtx_compute_capabilities(values=None, trt=None) -> str:
    """The ``Target.sm`` of an AOT build: ``"default"`` for None (TensorRT-RTX's default set), else the
    compute capabilities, given as ``86``, ``"8.6"``, ``"86"`` or ``"sm86"``, sorted and joined by ``"_"``.

    Each must be one TensorRT-RTX can target (a member ``SM<nn>`` of its ``ComputeCapability``).
    """
    if values is None:
        return RTX_DEFAULT_CCS
    if isinstance(values, str):
        values = values.split(",")  # "86,89", as the command line gives them
    elif isinstance(values, int):
        values = [values]
    trt = trt or import_trt("tensorrt-rtx")
    known = sorted(int(m[2:]) for m in trt.ComputeCapability.__members__ if re.fullmatch(r"SM[0-9]+", m))
    ccs = set()
    for value in values:
        text = re.sub(r"^sm", "", str(value).strip().lower()).replace(".", "")
        if not text.isdigit() or int(text) not in known:
            raise InputError(
                f"compute_capabilities: {value!r} is not one TensorRT-RTX {trt.__version__} builds for; "
                f"pass some of {', '.join(map(str, known))} or None for its default set"
            )
        ccs.add(int(text))
    if not ccs:
        raise InputError("compute_capabilities is empty; pass None for TensorRT-RTX's default set")
    return "_".join(map(str, sorted(ccs)))


def rtx_target(compute_capabilities=None) -> Target:
    """The ``Target`` of a TensorRT-RTX AOT build: no GPU is probed; see ``rtx_compute_capabilities``."""
    trt = import_trt("tensorrt-rtx")
    return Target(
        family="tensorrt-rtx",
        gpu="",
        sm=rtx_compute_capabilities(compute_capabilities, trt),
        trt_version=trt.__version__,
    )


def target_for(family_name: str = DEFAULT_FAMILY, *, device=None, compute_capabilities=None) -> Target:
    """The ``Target`` plans of ``family_name`` are built for here: this GPU for tensorrt, the given (or default)
    compute capabilities for an AOT family."""
    if family(family_name).aot:
        return rtx_target(compute_capabilities)
    if compute_capabilities is not None:
        raise InputError(
            "compute_capabilities only applies to the tensorrt-rtx family; tensorrt builds for the GPU it runs on "
            "(pick it with device=)"
        )
    return current_target(device)


@functools.cache
def trt_logger(family_name: str = DEFAULT_FAMILY):
    """One logger per family and process, for tensorrt shared with Polygraphy's builder when it is installed
    (TensorRT warns when a builder and a runtime in one process were given different loggers)."""
    if family(family_name).name != "tensorrt":
        trt = import_trt(family_name)
        return trt.Logger(trt.Logger.WARNING)
    try:
        from polygraphy.backend.trt import util as trt_util
    except ImportError:
        trt = import_trt()
        return trt.Logger(trt.Logger.WARNING)
    import_trt()  # our error message, not Polygraphy's, when TensorRT is missing
    return trt_util.get_trt_logger()
