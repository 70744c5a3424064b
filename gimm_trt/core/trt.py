"""TensorRT as an optional dependency: whether the installed one is usable, and importing it.

Kept on the ground floor because the plugin (a bottom layer) and the engines (a higher one) both need it.
Nothing is imported at import time.
"""

from __future__ import annotations

import importlib
import re

from .errors import MissingDependency

__all__ = [
    "MIN_TRT_VERSION",
    "INSTALL_HINT",
    "TRT_REQUIRED",
    "parse_version",
    "check_trt_version",
    "import_trt",
    "has_tensorrt",
]

# The splat op ships as a quickly-deployable plugin with an AOT implementation (`trtp.aot_impl`),
# which first appears in TensorRT 10.9.
MIN_TRT_VERSION = (10, 9)
INSTALL_HINT = "pip install gimm-trt[tensorrt]"
TRT_REQUIRED = ("__version__", "Builder")  # what any TensorRT provides; an empty namespace package does not


def parse_version(version: str) -> tuple:
    """``"10.9.0.34"`` -> ``(10, 9, 0, 34)``; stops at the first part that is not a number (``"11.0.0b1"``)."""
    parts = []
    for part in version.split("."):
        digits = re.match(r"\d+", part)
        if digits is None:
            break
        parts.append(int(digits.group()))
        if digits.end() != len(part):
            break
    return tuple(parts)


def check_trt_version(version: str) -> str:
    if parse_version(version)[:2] < MIN_TRT_VERSION:
        need = ".".join(map(str, MIN_TRT_VERSION))
        raise MissingDependency(
            f"TensorRT {version} is too old: gimm_trt needs TensorRT >= {need} (the splat op is a "
            f"quickly-deployable plugin with an ahead-of-time kernel); upgrade with `{INSTALL_HINT}`"
        )
    return version


def import_trt():
    """The ``tensorrt`` module, or MissingDependency saying how to install it."""
    need = ".".join(map(str, MIN_TRT_VERSION))
    try:
        trt = importlib.import_module("tensorrt")
    except (ImportError, OSError) as err:  # OSError: the wheel is there but its native libraries are not
        raise MissingDependency(
            f"TensorRT is not usable here ({err}); the tensorrt backend needs TensorRT >= {need} and "
            f"Polygraphy: `{INSTALL_HINT}`"
        ) from err
    missing = [name for name in TRT_REQUIRED if not hasattr(trt, name)]
    if missing:
        # e.g. `tensorrt-stubs` alone: `import tensorrt` then finds an empty namespace package
        where = ", ".join(getattr(trt, "__path__", None) or [str(getattr(trt, "__file__", "?"))])
        raise MissingDependency(
            f"the `tensorrt` module found ({where}) is not TensorRT: it lacks {', '.join(missing)}; the "
            f"tensorrt backend needs TensorRT >= {need} and Polygraphy: `{INSTALL_HINT}`"
        )
    check_trt_version(trt.__version__)
    return trt


def has_tensorrt() -> bool:
    """Whether ``import_trt()`` succeeds: TensorRT >= the minimum is installed and loads."""
    try:
        import_trt()
    except ImportError:
        return False
    return True
