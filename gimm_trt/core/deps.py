"""Optional dependencies: whether one is importable, its version, and what to install when it is not.

Nothing is imported to answer ``installed``: ``find_spec`` only looks, so asking is cheap and has no side
effects (a CUDA context, a plugin registry).
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Optional

from .errors import MissingDependency

__all__ = ["EXTRAS", "installed", "usable", "install_hint", "require", "version"]

# module -> the extra of gimm-trt that brings it
EXTRAS = {
    "onnx": "onnx",
    "onnxscript": "onnx",
    "onnx_ir": "onnx",
    "onnxruntime": "onnx",
    "onnxruntime_extensions": "onnx",
    "tensorrt": "tensorrt",
    "polygraphy": "tensorrt",
    "tensorrt_rtx": "tensorrt-rtx",
    "triton": "triton",
    "cupy": "cupy",
    "av": "video",
    "PIL": "video",
    "psutil": "bench",
    "matplotlib": "bench",
    "pynvml": "bench",
    "ray": "ray",
}
_NOTES = {
    "onnxruntime": " (onnxruntime-gpu for CUDA)",
    "tensorrt": " (TensorRT >= 10.9 and an NVIDIA GPU)",
    "tensorrt_rtx": " (TensorRT-RTX >= 1.7; builds without a GPU)",
    "cupy": " (needs CUDA)",
}


def installed(module: str) -> bool:
    """Whether ``module`` can be found (not imported)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package that is missing or half-installed
        return False


def usable(module: str) -> bool:
    """``installed``, except for TensorRT and TensorRT-RTX, which are imported and checked: stubs alone make
    ``tensorrt`` an empty namespace package that ``find_spec`` finds."""
    from .trt import FAMILIES, has_tensorrt

    for family in FAMILIES.values():
        if module == family.module:
            return has_tensorrt(family.name)
    return installed(module)


def install_hint(module: str) -> str:
    """``pip install 'gimm-trt[<extra>]'`` for ``module``, with a note where one helps."""
    extra = EXTRAS.get(module)
    what = f"pip install 'gimm-trt[{extra}]'" if extra else f"pip install {module}"
    return what + _NOTES.get(module, "")


def require(module: str, purpose: str):
    """Import ``module``, or raise ``MissingDependency`` naming ``purpose`` and the install command."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise MissingDependency(
            f"{purpose} needs {module}, which is not installed ({err}): {install_hint(module)}"
        ) from None


def version(module: str) -> Optional[str]:
    """``module.__version__`` if the module imports, else None."""
    if not installed(module):
        return None
    try:
        return str(importlib.import_module(module).__version__)
    except Exception:  # a broken install reports as absent rather than failing a benchmark or a doctor run
        return None
