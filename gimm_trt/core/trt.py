"""TensorRT as an optional dependency: whether the installed one is usable, and importing it.

Two engine families build and run plans with the same API shape: ``tensorrt`` (TensorRT, needs the GPU the
plan is for) and ``tensorrt-rtx`` (TensorRT for RTX, module ``tensorrt_rtx``: builds ahead of time on the CPU for
a set of compute capabilities, no plugins). ``import_trt(family)`` is the one place that maps a family to its
module. Kept on the ground floor because the plugin (a bottom layer) and the engines (a higher one) both need it.
Nothing is imported at import time.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
from dataclasses import dataclass
from typing import Optional

from .errors import InputError, MissingDependency

__all__ = [
    "MIN_TRT_VERSION",
    "INSTALL_HINT",
    "TRT_REQUIRED",
    "TrtFamily",
    "FAMILIES",
    "DEFAULT_FAMILY",
    "family",
    "parse_version",
    "check_trt_version",
    "import_trt",
    "TrtState",
    "probe",
    "has_tensorrt",
]

# The splat op ships as a quickly-deployable plugin with an AOT implementation (`trtp.aot_impl`),
# which first appears in TensorRT 10.9.
MIN_TRT_VERSION = (10, 9)
INSTALL_HINT = "pip install gimm-trt[tensorrt]"
TRT_REQUIRED = ("__version__", "Builder")  # what any TensorRT provides; an empty namespace package does not


@dataclass(frozen=True, kw_only=True)
class TrtFamily:
    """One engine family: the module that builds and runs its plans and what that module can do.

    ``tag`` is the family's mark in plan names (``trt10.9.0.34``, ``rtx1.7.1.116``); ``aot``: builds without a
    GPU, for a list of compute capabilities instead of the GPU it runs on; ``plugins``: the splat plugin can be
    built into its engines; ``scatter_add``: its parser takes ScatterElements with a reduction (the portable
    splat).
    """

    name: str
    title: str
    module: str
    tag: str
    min_version: tuple
    install_hint: str
    why_min: str
    aot: bool
    plugins: bool
    scatter_add: bool


FAMILIES = {
    "tensorrt": TrtFamily(
        name="tensorrt",
        title="TensorRT",
        module="tensorrt",
        tag="trt",
        min_version=MIN_TRT_VERSION,
        install_hint=INSTALL_HINT,
        why_min="the splat op is a quickly-deployable plugin with an ahead-of-time kernel",
        aot=False,
        plugins=True,
        scatter_add=True,
    ),
    "tensorrt-rtx": TrtFamily(
        name="tensorrt-rtx",
        title="TensorRT-RTX",
        module="tensorrt_rtx",
        tag="rtx",
        # the release the builder settings and compute-capability calls were checked against
        min_version=(1, 7),
        install_hint="pip install gimm-trt[tensorrt-rtx]",
        why_min="its CPU-only builder and compute-capability API were checked with 1.7",
        aot=True,
        plugins=False,
        scatter_add=False,  # "Unsupported reduction type", as its parser says
    ),
}
DEFAULT_FAMILY = "tensorrt"


def family(name: str = DEFAULT_FAMILY) -> TrtFamily:
    """The ``TrtFamily`` called ``name``; InputError naming the families there are."""
    if name not in FAMILIES:
        raise InputError(f"engine family must be one of {', '.join(FAMILIES)}, got {name!r}")
    return FAMILIES[name]


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


def check_trt_version(version: str, family_name: str = DEFAULT_FAMILY) -> str:
    fam = family(family_name)
    if parse_version(version)[:2] < fam.min_version:
        need = ".".join(map(str, fam.min_version))
        what = fam.title
        raise MissingDependency(
            f"{what} {version} is too old: gimm_trt needs {what} >= {need} ({fam.why_min}); upgrade with "
            f"`{fam.install_hint}`"
        )
    return version


def import_trt(family_name: str = DEFAULT_FAMILY):
    """The module of an engine family (``tensorrt`` or ``tensorrt_rtx``), or MissingDependency saying how to
    install it."""
    fam = family(family_name)
    need = ".".join(map(str, fam.min_version))
    wants = (
        f"the tensorrt backend needs TensorRT >= {need} and Polygraphy"
        if fam.name == "tensorrt"
        else f"the tensorrt-rtx engine family needs TensorRT-RTX >= {need}"
    )
    try:
        trt = importlib.import_module(fam.module)
    except (ImportError, OSError) as err:  # OSError: the wheel is there but its native libraries are not
        raise MissingDependency(f"{fam.module} is not usable here ({err}); {wants}: `{fam.install_hint}`") from err
    missing = [name for name in TRT_REQUIRED if not hasattr(trt, name)]
    if missing:
        # e.g. `tensorrt-stubs` alone: `import tensorrt` then finds an empty namespace package
        where = ", ".join(getattr(trt, "__path__", None) or [str(getattr(trt, "__file__", "?"))])
        raise MissingDependency(
            f"the `{fam.module}` module found ({where}) is not usable: it lacks {', '.join(missing)}; {wants}: "
            f"`{fam.install_hint}`"
        )
    check_trt_version(trt.__version__, fam.name)
    return trt


@dataclass(frozen=True)
class TrtState:
    """An engine family's module here: usable, missing (no package of that name), or broken (a package is there
    but ``import_trt`` fails: too old, its native libraries absent or mismatched); ``error`` says how."""

    found: bool
    error: Optional[str] = None

    @property
    def usable(self) -> bool:
        return self.error is None

    @property
    def broken(self) -> bool:
        return self.found and self.error is not None


def _found(module: str) -> bool:
    """A regular package or module called ``module`` is on the path. A namespace package (stubs alone leave one
    without ``__init__.py``) is not: it is what a missing TensorRT looks like, not a broken one."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):  # a parent package that is missing or half-installed
        return False
    return spec is not None and spec.origin not in (None, "namespace")


def probe(family_name: str = DEFAULT_FAMILY) -> TrtState:
    """Whether ``import_trt(family_name)`` succeeds here and, when not, whether the module is missing or broken."""
    try:
        import_trt(family_name)
    except Exception as err:  # whatever an installed package raises on import is what "broken" reports
        return TrtState(found=_found(family(family_name).module), error=" ".join(str(err).split()))
    return TrtState(found=True)


def has_tensorrt(family_name: str = DEFAULT_FAMILY) -> bool:
    """Whether ``import_trt(family_name)`` succeeds: the family's module >= its minimum is installed and loads."""
    return probe(family_name).usable
