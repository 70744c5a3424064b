"""The backend contract: what ``Interpolator`` drives, which backends exist and what each runs on.

A backend runs the three stages with torch tensors in and out. Every backend implements the whole of
``Backend``; which precisions it offers on which device type is declared once, in ``SPECS``, and the CLI's
choices and every early check come from there.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any, ClassVar, Optional

import torch

from ..core import deps
from ..core.errors import DeviceError, InputError
from ..export.exporter import PRECISIONS as EXPORT_PRECISIONS

__all__ = [
    "Backend",
    "BackendSpec",
    "SPECS",
    "BACKENDS",
    "PRECISIONS",
    "OrtOptions",
    "TrtOptions",
    "resolve_device",
    "check_backend",
    "unavailable",
]


class Backend(abc.ABC):
    """The three stages on one device.

    Attributes:
        name: the backend's name in ``SPECS``.
        device: where its tensors live.
        precision: what it computes in (``"fp32"``, ``"fp16"``, ``"bf16"``).
        ds_scale: the one processing scale it serves, or None for any.

    ``encode`` is the per-frame part of the flow stage, so a video encodes each frame once; ``estimate``
    turns two encodings into the flow stage's outputs (``gimm_trt.core.stages.FLOW_OUTPUTS``).
    """

    name: ClassVar[str]
    device: torch.device
    precision: str
    ds_scale: Optional[float] = None

    def check_frames(self, height: int, width: int) -> None:  # noqa: B027 (a default, not a duty)
        """Raise before any work when frames of ``height`` x ``width`` cannot run here (any size by default)."""

    def use_tile(self, tile: Optional[int]) -> None:  # noqa: B027 (a default, not a duty)
        """Run motion and synthesis in ``tile``-pixel windows from now on (None: whole), as a memory budget plans;
        backends whose graphs have fixed shapes (exports) run whole and ignore it."""

    @abc.abstractmethod
    def encode(self, img: torch.Tensor, ds: float) -> Any:
        """Per-frame work for a padded [1,3,Hp,Wp] frame."""

    @abc.abstractmethod
    def estimate(self, enc0: Any, enc1: Any, ds: float) -> dict:
        """The flow stage's outputs by name from the encodings of the two frames of a pair."""

    def flow(self, img0: torch.Tensor, img1: torch.Tensor, ds: float) -> dict:
        """The flow stage for one padded pair."""
        return self.estimate(self.encode(img0, ds), self.encode(img1, ds), ds)

    @abc.abstractmethod
    def motion(self, flow01: torch.Tensor, flow10: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """flowt [T,2,h,w] for timesteps ``t`` [T]."""

    @abc.abstractmethod
    def synthesis(self, img0, img1, feats: dict, flowt, t, ds: float) -> torch.Tensor:
        """Frames [T,3,Hp,Wp] in [0,1]."""


@dataclass(frozen=True)
class BackendSpec:
    """What a backend needs and offers: modules to import, precisions per device type."""

    name: str
    precisions: dict  # device type -> precisions offered there
    needs: tuple = ()  # modules it imports
    runs_exports: bool = False
    splat: str = ""  # splat form of the exports it makes on demand ("" for none)
    batch_bound: bool = False  # one call takes at most the export's max_timesteps (a built engine's profile)
    why: str = ""  # said when a precision is refused on a device type

    def precisions_on(self, device_type: str) -> tuple:
        return self.precisions.get(device_type, ())


SPECS = {
    "torch": BackendSpec(
        "torch",
        {"cuda": ("fp32", "fp16", "bf16"), "cpu": ("fp32", "bf16")},
        why="PyTorch's CPU fp16 convolutions are reference loops (minutes per frame); bf16 ones are fast on CPUs "
        "with AVX512-BF16 or AMX",
    ),
    # the exported backends run what an export can be made in
    # portable splats for onnxruntime: stock ORT runs them on any provider, the custom op is a CPU Python callback
    "onnxruntime": BackendSpec(
        "onnxruntime",
        {"cpu": EXPORT_PRECISIONS, "cuda": EXPORT_PRECISIONS},
        needs=("onnxruntime", "onnx"),
        runs_exports=True,
        splat="portable",
    ),
    "tensorrt": BackendSpec(
        "tensorrt",
        {"cuda": EXPORT_PRECISIONS},
        needs=("tensorrt", "polygraphy"),
        runs_exports=True,
        splat="plugin",
        batch_bound=True,
    ),
}
BACKENDS = tuple(SPECS)
PRECISIONS = tuple(dict.fromkeys(p for spec in SPECS.values() for ps in spec.precisions.values() for p in ps))


@dataclass(frozen=True, kw_only=True)
class OrtOptions:
    """Options of the onnxruntime backend: ``threads`` per session (0: ONNX Runtime's default)."""

    threads: int = 0


@dataclass(frozen=True, kw_only=True)
class TrtOptions:
    """Options of the tensorrt backend.

    Args:
        cuda_graph: capture and replay CUDA graphs for repeated shapes.
        build: build missing engines (False: a missing engine is an error that says what differs).
    """

    cuda_graph: bool = False
    build: bool = True


OPTIONS = {"onnxruntime": OrtOptions, "tensorrt": TrtOptions}


def resolve_device(device) -> torch.device:
    """``"cpu"``, ``"cuda"`` or ``"cuda:N"`` -> torch.device; DeviceError when CUDA is absent."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise DeviceError(f"device must be 'cpu', 'cuda' or 'cuda:N', got {device!r}") from None
    if dev.type not in ("cpu", "cuda"):
        raise DeviceError(f"device must be 'cpu', 'cuda' or 'cuda:N', got {device!r}")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(f"device {device!r} requested but CUDA is not available (use device='cpu')")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise DeviceError(f"device {device!r}: only {torch.cuda.device_count()} CUDA device(s) present")
    return dev


_KIND = {"cpu": "CPU", "cuda": "CUDA"}


def _device_problem(spec: BackendSpec, device, precision: Optional[str]) -> Optional[str]:
    kind = device.type if isinstance(device, torch.device) else torch.device(device).type
    offered = spec.precisions_on(kind)
    if not offered:
        where = " or ".join(_KIND.get(t, t) for t in spec.precisions)
        return (
            f"backend {spec.name!r} runs on {where} devices only, not {str(device)!r} "
            f"(use --device {' or '.join(spec.precisions)})"
        )
    if precision is not None and precision not in offered:
        why = f" ({spec.why})" if spec.why else ""
        return (
            f"precision {precision!r} of backend {spec.name!r} does not run on the {_KIND.get(kind, kind)}{why}; "
            f"there use precision {' or '.join(repr(p) for p in offered)}"
        )
    return None


def _unknown(backend: str, precision: Optional[str]) -> Optional[str]:
    if backend not in SPECS:
        return f"unknown backend {backend!r}: choose one of {', '.join(BACKENDS)}"
    if precision is not None and precision not in PRECISIONS:
        return f"unknown precision {precision!r}: choose one of {', '.join(PRECISIONS)}"
    return None


def unavailable(backend: str, device=None, precision: Optional[str] = None) -> Optional[str]:
    """None when ``backend`` (at ``precision``) can run on ``device`` here, else one line saying why not and
    what to do: what to install first, then what the device lacks. Looks only: nothing is imported."""
    reason = _unknown(backend, precision)
    if reason:
        return reason
    spec = SPECS[backend]
    for module in spec.needs:
        if not deps.usable(module):
            return f"backend {backend!r} needs {module}, which is not installed: {deps.install_hint(module)}"
    return None if device is None else _device_problem(spec, device, precision)


def check_backend(backend: str, device, precision: Optional[str] = None) -> torch.device:
    """The resolved device for ``backend``, or the first problem as an error: an unknown name (InputError),
    a device that is absent or that the backend/precision cannot use (DeviceError), a missing package
    (MissingDependency). The device comes first here: no install helps a backend on a device it cannot use."""
    reason = _unknown(backend, precision)
    if reason:
        raise InputError(reason)
    dev = resolve_device(device)
    reason = _device_problem(SPECS[backend], dev, precision)
    if reason:
        raise DeviceError(reason)
    for module in SPECS[backend].needs:
        if not deps.usable(module):
            deps.require(module, f"the {backend} backend")
    return dev
