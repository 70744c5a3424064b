"""The installed CUDA driver, asked directly (no torch, no CUDA context): what a CPU-only torch cannot say."""

from __future__ import annotations

import ctypes
import sys
from typing import Optional

__all__ = ["driver_cuda_version"]

_DRIVER_LIBRARY = "nvcuda.dll" if sys.platform == "win32" else "libcuda.so.1"


def driver_cuda_version(library: str = _DRIVER_LIBRARY) -> Optional[str]:
    """The newest CUDA release the installed driver supports, ``"12.8"``, from ``cuDriverGetVersion`` (which needs
    no ``cuInit``); None without a driver."""
    version = ctypes.c_int()
    try:
        if ctypes.CDLL(library).cuDriverGetVersion(ctypes.byref(version)) != 0:
            return None
    except (OSError, AttributeError):
        return None
    return f"{version.value // 1000}.{version.value % 1000 // 10}"
