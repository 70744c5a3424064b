"""What the API and the CLI take as input, converted and checked in one place: frames, timesteps, batch sizes,
factors, scales and frame rates. Every problem is an ``InputError`` naming the argument and the fix."""

from __future__ import annotations

from fractions import Fraction
from typing import Optional

import numpy as np
import torch

from ..core.checks import check_count, is_real
from ..core.errors import InputError

__all__ = [
    "RANGE_TOLERANCE",
    "T_MIN",
    "T_MAX",
    "MAX_FPS",
    "MIN_FPS",
    "to_tensor",
    "check_timesteps",
    "check_factor",
    "check_fps",
]

# float frames this far outside [0, 1] (resampling overshoot, rounding) are clamped; further out is an error
RANGE_TOLERANCE = 1e-2
# synthesis divides by t and by 1 - t in float32: t must be a normal float32 below 1 there (1/t finite, and
# not a subnormal, which GPUs flush to 0)
T_MIN = float(np.finfo(np.float32).tiny)
T_MAX = float(np.nextafter(np.float32(1), np.float32(0)))
# frame rates a video container can carry (time bases are 32-bit fractions); beyond them muxers refuse or round
MIN_FPS, MAX_FPS = Fraction(1, 1000), Fraction(1000)


def to_tensor(img, name: str, device) -> torch.Tensor:
    """A frame as float32 [1,3,H,W] in [0,1] on ``device``.

    Accepts float [3,H,W] / [1,3,H,W] in [0,1] (torch or numpy) or uint8 [H,W,3] (torch or numpy, RGB).
    Float values outside [0, 1] by more than ``RANGE_TOLERANCE`` are an error naming the likely cause.
    """
    if isinstance(img, np.ndarray):
        img = _from_numpy(img, name)
    if not isinstance(img, torch.Tensor):
        raise InputError(f"{name} must be a torch.Tensor or numpy.ndarray, got {type(img).__name__}")
    _check_has_data(img, name)
    if img.numel() == 0:
        raise InputError(f"{name} is empty (shape {tuple(img.shape)})")
    if img.dtype == torch.uint8:
        if img.dim() != 3 or img.shape[2] != 3:
            raise InputError(f"{name}: uint8 frames must be [H,W,3] RGB, got shape {tuple(img.shape)}")
        return (img.to(device).permute(2, 0, 1).unsqueeze(0).float() / 255.0).contiguous()
    if not img.is_floating_point():
        raise InputError(f"{name}: dtype {img.dtype} is not supported (use float in [0,1] or uint8)")
    if img.dim() == 3:
        img = img.unsqueeze(0)
    if img.dim() != 4 or img.shape[:2] != (1, 3):
        raise InputError(f"{name}: float frames must be [3,H,W] or [1,3,H,W], got shape {tuple(img.shape)}")
    img = img.detach().to(device=device, dtype=torch.float32)
    if not bool(torch.isfinite(img).all()):
        raise InputError(f"{name} contains NaN or infinite pixel values")
    low, high = (float(v) for v in torch.aminmax(img))
    if low < -RANGE_TOLERANCE or high > 1.0 + RANGE_TOLERANCE:
        raise InputError(f"{name} has values in [{low:.4g}, {high:.4g}], frames take [0, 1]: {_range_hint(low, high)}")
    if low < 0.0 or high > 1.0:
        img = img.clamp(0.0, 1.0)
    return img.contiguous()


def _check_has_data(values, name: str) -> None:
    """InputError for a tensor on the meta device: it has a shape and a dtype but no values to compute with."""
    if isinstance(values, torch.Tensor) and values.is_meta:
        raise InputError(f"{name} is on the meta device, which holds no values: pass it on the CPU or a GPU")


def _from_numpy(arr: np.ndarray, name: str) -> torch.Tensor:
    if arr.dtype.byteorder not in "=|":  # big-endian data: torch takes native byte order only
        arr = arr.astype(arr.dtype.newbyteorder("="))
    if not arr.flags.writeable:  # torch would share read-only memory and warn about it; copy instead
        arr = np.array(arr)
    try:
        return torch.from_numpy(np.ascontiguousarray(arr))
    except TypeError:
        raise InputError(f"{name}: numpy dtype {arr.dtype} is not supported (use float in [0,1] or uint8)") from None


def _range_hint(low: float, high: float) -> str:
    """The likely cause of float pixel values outside [0, 1], and its fix."""
    tol = RANGE_TOLERANCE
    if low >= -tol and 2.0 < high <= 255.0 + tol:
        return "0..255 values: divide by 255 or pass uint8 [H,W,3]"
    if low >= -tol and 255.0 < high <= 65535.0 + tol:
        return "0..65535 (16-bit) values: divide by 65535"
    if -1.0 - tol <= low < -tol and high <= 1.0 + tol:
        return "-1..1 values: map them with (x + 1) / 2"
    return "rescale them to [0, 1] (or pass uint8 [H,W,3])"


def check_timesteps(timesteps) -> list:
    """Timesteps as a list of floats strictly inside (0, 1) in float32, the precision the model computes in
    (synthesis divides by t and by 1 - t, so a t that rounds to 0 or 1 there would give NaN frames)."""
    values = _timestep_values(timesteps)
    if not values:
        raise InputError("timesteps must not be empty")
    outside = [t for t in values if not 0.0 < t < 1.0]
    if outside:
        raise InputError(f"timesteps must lie strictly inside (0, 1); got {_few(outside)}")
    rounded = [t for t in values if not T_MIN <= float(np.float32(t)) <= T_MAX]
    if rounded:
        raise InputError(
            f"timesteps {_few(rounded)} lie too close to 0 or 1 for float32, the precision the model "
            f"computes in: use values in [{T_MIN:.4g}, {T_MAX:.9g}]"
        )
    return values


def _few(values: list, n: int = 4) -> str:
    return "[" + ", ".join(f"{v!r}" for v in values[:n]) + (", ..." if len(values) > n else "") + "]"


def _timestep_values(timesteps) -> list:
    """Floats from a number, a 0-d/1-d tensor or array, or a sequence of numbers; anything else is an error."""
    if isinstance(timesteps, (str, bytes)):
        raise InputError(f"timesteps must be numbers, got the string {timesteps!r} (pass e.g. [0.5])")
    if isinstance(timesteps, (set, frozenset)):  # frames come out in timestep order, and a set has none
        raise InputError(
            f"timesteps must be a sequence (list, tuple, tensor or array), got a {type(timesteps).__name__}, "
            "which has no order: pass sorted(timesteps)"
        )
    if isinstance(timesteps, (torch.Tensor, np.ndarray)):
        return _array_values(timesteps, "timesteps")
    if is_real(timesteps):
        return [float(timesteps)]
    try:
        items = list(timesteps)
    except TypeError:
        raise InputError(
            f"timesteps must be a number or a sequence of numbers, got {type(timesteps).__name__}"
        ) from None
    values = []
    for i, t in enumerate(items):
        if isinstance(t, (torch.Tensor, np.ndarray)) and t.ndim == 0:
            values += _array_values(t, f"timesteps[{i}]")
        elif is_real(t):
            values.append(float(t))
        else:
            what = f"the string {t!r}" if isinstance(t, (str, bytes)) else type(t).__name__
            raise InputError(f"timesteps[{i}] is {what}: timesteps must be numbers, e.g. [0.25, 0.5]")
    return values


def _array_values(arr, name: str) -> list:
    _check_has_data(arr, name)
    if arr.ndim > 1:
        raise InputError(f"{name} must be a number or a 1-d sequence, got shape {tuple(arr.shape)}")
    kind = (
        arr.dtype.kind
        if isinstance(arr, np.ndarray)
        else ("f" if arr.is_floating_point() else "c" if arr.is_complex() else "b" if arr.dtype == torch.bool else "i")
    )
    if kind not in "fiu":
        raise InputError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    return [float(v) for v in arr.reshape(-1).tolist()]


def check_factor(factor) -> int:
    """The frame-rate multiplier: an integer >= 2."""
    return check_count("factor", factor, 2)


def check_fps(fps) -> Optional[Fraction]:
    """None, or a frame rate (a number, a Fraction or a string like ``"30000/1001"``) between ``MIN_FPS`` and
    ``MAX_FPS``, as a Fraction."""
    if fps is None:
        return None
    try:
        if isinstance(fps, (bool, np.bool_)):
            raise ValueError
        rate = Fraction(str(fps).strip()) if isinstance(fps, (str, float, np.floating)) else Fraction(fps)
    except (ValueError, TypeError, ZeroDivisionError, OverflowError):
        raise InputError(
            f"fps must be a finite number of frames per second (e.g. 30 or 30000/1001), got {fps!r}"
        ) from None
    if not MIN_FPS <= rate <= MAX_FPS:
        raise InputError(f"fps must lie in [{float(MIN_FPS):g}, {float(MAX_FPS):g}] frames per second, got {fps!r}")
    return rate
