"""The backend contract: what ``Interpolator`` drives, and what each backend declares about itself.

A backend runs the three stages with torch tensors in and out. Each backend class describes itself once, where
it is defined: its ``name``, the precisions it offers per device type, its options type, the modules it needs
and how it runs (``Backend``'s class attributes). ``registry`` lists the classes; the CLI's choices, the options
lookup and every early check are derived from these descriptions.
"""

from __future__ import annotations

import abc
from typing import Any, ClassVar, Optional

import torch

from ..core import deps
from ..core.checks import check_device
from ..core.errors import DeviceError, InputError

__all__ = ["Backend", "default_device", "resolve_device"]

_KIND = {"cpu": "CPU", "cuda": "CUDA"}


class Backend(abc.ABC):
    """The three stages on one device.

    Class attributes (the backend's description; ``registry`` derives everything else from them):
        name: the backend's name (``--backend``).
        precisions: device type -> precisions offered there (``{"cuda": ("fp32", "fp16")}``).
        options_type: the frozen dataclass of its options (None: it takes none).
        needs: modules it imports (checked before anything loads; each has an install hint in ``core.deps``).
        runs_exports: it runs ``gimm-export`` directories (``open(export_dir, device=..., options=...)``).
        splat: the splat form of the exports it makes on demand (``"plugin"`` or ``"portable"``).
        batch_bound: one call takes at most the export's ``max_timesteps`` (a built engine's profile).
        why: said when a precision is refused on a device type.

    Instance attributes:
        device: where its tensors live.
        precision: what it computes in (``"fp32"``, ``"fp16"``, ``"bf16"``).
        ds_scale: the one processing scale it serves, or None for any.

    ``encode`` is the per-frame part of the flow stage, so a video encodes each frame once; ``estimate``
    turns two encodings into the flow stage's outputs (``gimm_trt.core.stages.FLOW_OUTPUTS``).
    """

    name: ClassVar[str]
    precisions: ClassVar[dict]
    options_type: ClassVar[Optional[type]] = None
    needs: ClassVar[tuple] = ()
    runs_exports: ClassVar[bool] = False
    splat: ClassVar[str] = ""
    batch_bound: ClassVar[bool] = False
    why: ClassVar[str] = ""

    device: torch.device
    precision: str
    ds_scale: Optional[float] = None

    @classmethod
    def precisions_on(cls, device_type: str) -> tuple:
        return cls.precisions.get(device_type, ())

    @classmethod
    def device_problem(cls, device, precision: Optional[str] = None) -> Optional[str]:
        """None when this backend runs ``precision`` on ``device``'s type, else one line saying what to use."""
        kind = device.type if isinstance(device, torch.device) else resolve_device(device, check=False).type
        offered = cls.precisions_on(kind)
        if not offered:
            where = " or ".join(_KIND.get(t, t) for t in cls.precisions)
            return (
                f"backend {cls.name!r} runs on {where} devices only, not {str(device)!r} "
                f"(use --device {' or '.join(cls.precisions)})"
            )
        if precision is not None and precision not in offered:
            why = f" ({cls.why})" if cls.why else ""
            return (
                f"precision {precision!r} of backend {cls.name!r} does not run on the {_KIND.get(kind, kind)}{why}; "
                f"there use precision {' or '.join(repr(p) for p in offered)}"
            )
        return None

    @classmethod
    def missing(cls) -> Optional[str]:
        """None when every module this backend needs imports here, else what to install."""
        for module in cls.needs:
            if not deps.usable(module):
                return f"backend {cls.name!r} needs {module}, which is not installed: {deps.install_hint(module)}"
        return None

    @classmethod
    def check(cls, device, precision: Optional[str] = None) -> torch.device:
        """The resolved device, or the first problem as an error: a device that is absent or that this backend
        (at ``precision``) cannot use (DeviceError), then a missing package (MissingDependency). The device comes
        first: no install helps a backend on a device it cannot use. Subclasses add runtime checks (e.g. no CUDA
        provider) by extending it."""
        if device is None and "cpu" not in cls.precisions:
            device = "cuda"  # a GPU-only backend's default, whatever this machine has
        reason = cls.device_problem(resolve_device(device, check=False), precision)
        if reason:
            raise DeviceError(reason)
        if "cpu" not in cls.precisions and not torch.cuda.is_available():
            raise DeviceError(f"backend {cls.name!r} runs on CUDA GPUs, and CUDA is not available here")
        dev = resolve_device(device)
        for module in cls.needs:
            if not deps.usable(module):
                deps.require(module, f"the {cls.name} backend")
        return dev

    @classmethod
    def make_options(cls, options=None):
        """``options`` checked against ``options_type`` (None: its defaults)."""
        if cls.options_type is None:
            if options is not None:
                raise InputError(f"backend {cls.name!r} takes no options, got {type(options).__name__}")
            return None
        if options is None:
            return cls.options_type()
        if not isinstance(options, cls.options_type):
            raise InputError(f"backend {cls.name!r} takes {cls.options_type.__name__}, got {type(options).__name__}")
        return options

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


def default_device() -> str:
    """Where a model runs when nobody says: the GPU when CUDA is available, else the CPU."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_device(device, *, check: bool = True) -> torch.device:
    """``"cpu"``, ``"cuda"``, ``"cuda:N"`` or None (``default_device()``) -> torch.device; InputError for any other
    name (``core.checks.check_device``), and (``check``) DeviceError when CUDA or that GPU is absent."""
    dev = torch.device(check_device(device) or default_device())
    if dev.type == "cuda" and check:
        if not torch.cuda.is_available():
            raise DeviceError(f"device {str(dev)!r} requested but CUDA is not available (use device='cpu')")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise DeviceError(f"device {str(dev)!r}: only {torch.cuda.device_count()} CUDA device(s) present")
    return dev
