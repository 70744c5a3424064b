"""Checks of the plain option values every layer takes (counts, scales, byte sizes), in one place so that a
model option is checked the same way wherever it is given. Every problem is an ``InputError`` naming it."""

from __future__ import annotations

import math
import numbers
import re
from typing import Optional

from .errors import InputError

__all__ = ["is_real", "check_count", "check_max_batch", "check_ds", "check_device", "parse_bytes"]

_UNITS = {
    "": 1,
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}


def is_real(value) -> bool:
    """A real number (Python or numpy), not a bool (``True`` is an ``int`` to Python, never a size or a scale)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and type(value).__name__ != "bool_"


def check_count(name: str, value, low: int) -> int:
    """An integer option (Python or numpy) that must be >= ``low``, as an ``int``."""
    if not isinstance(value, numbers.Integral) or not is_real(value) or value < low:
        raise InputError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


def check_max_batch(max_batch) -> Optional[int]:
    """None (no cap) or an integer >= 1."""
    return None if max_batch is None else check_count("max_batch", max_batch, 1)


def check_ds(ds_scale) -> Optional[float]:
    """None, or a finite number in (0, 1] as a float (whether the frame size allows it is ``processing_size``'s
    question)."""
    if ds_scale is None:
        return None
    if not is_real(ds_scale) or not math.isfinite(float(ds_scale)) or not 0.0 < float(ds_scale) <= 1.0:
        raise InputError(f"ds_scale must lie in (0, 1] (1.0 up to 1080p, 0.5 for 2K, 0.25 for 4K), got {ds_scale!r}")
    return float(ds_scale)


# what a device option names: the CPU or a CUDA GPU (index without leading zeros, as torch writes it)
_DEVICE = re.compile(r"cpu(?::0)?|cuda(?::(?:0|[1-9][0-9]*))?")


def check_device(device) -> Optional[str]:
    """None (the default device: chosen where the model runs), or ``"cpu"``, ``"cuda"`` or ``"cuda:N"`` given as a
    string or a ``torch.device``, as a string. Checks the name only: whether that device is present is for the
    machine that runs the model to say."""
    if device is None:
        return None
    text = str(device) if type(device).__module__ == "torch" and type(device).__name__ == "device" else device
    if isinstance(text, str) and _DEVICE.fullmatch(text):
        return text
    hint = ""
    if isinstance(text, str) and _DEVICE.fullmatch(text.strip().lower()):
        hint = f" (write {text.strip().lower()!r})"
    raise InputError(f"device must be 'cpu', 'cuda' or 'cuda:N' (N a GPU index from 0), got {device!r}{hint}")


def parse_bytes(value, name: str = "max_memory") -> int:
    """Bytes from an integer or a string such as ``"6GiB"``, ``"500MB"``, ``"1.5 gib"``; InputError otherwise."""
    if isinstance(value, numbers.Integral) and is_real(value):
        if value > 0:
            return int(value)
    elif isinstance(value, str):
        m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]*)?)\s*([a-zA-Z]*)\s*", value)
        if m and m[2].lower() in _UNITS and float(m[1]) > 0:
            return int(float(m[1]) * _UNITS[m[2].lower()])
    raise InputError(f"{name} must be a number of bytes > 0 or a size such as '6GiB' or '500MB', got {value!r}")
