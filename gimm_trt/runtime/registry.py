"""The backends by name: one line per backend class; every list, choice and check is derived from the classes'
own descriptions (``Backend``'s class attributes). Adding a backend is its module and one line here."""

from __future__ import annotations

import dataclasses
from typing import Optional

import torch

from ..core.errors import InputError
from .ort_backend import OrtBackend
from .rtx_backend import RtxBackend
from .torch_backend import TorchBackend
from .trt_backend import TrtBackend

__all__ = [
    "REGISTRY",
    "BACKENDS",
    "PRECISIONS",
    "EXPORTED_BACKENDS",
    "backend_class",
    "unavailable",
    "check_backend",
    "check_spec",
    "options_from_text",
    "options_help",
]

REGISTRY: dict = {cls.name: cls for cls in (TorchBackend, OrtBackend, TrtBackend, RtxBackend)}
BACKENDS = tuple(REGISTRY)
PRECISIONS = tuple(dict.fromkeys(p for cls in REGISTRY.values() for ps in cls.precisions.values() for p in ps))
EXPORTED_BACKENDS = tuple(name for name, cls in REGISTRY.items() if cls.runs_exports)


def backend_class(name: str) -> type:
    """The class registered as ``name``; InputError naming the choices otherwise."""
    reason = _unknown(name, None)
    if reason:
        raise InputError(reason)
    return REGISTRY[name]


def _unknown(backend: str, precision: Optional[str]) -> Optional[str]:
    if backend not in REGISTRY:
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
    cls = REGISTRY[backend]
    return cls.missing() or (None if device is None else cls.device_problem(device, precision))


def check_spec(spec) -> torch.device:
    """Everything about a ``ModelSpec`` that can be checked before a model loads or a worker starts: the backend
    and precision names, an export given to a backend that runs none, the device and the packages. Returns the
    resolved device; raises the first problem (InputError, DeviceError, MissingDependency)."""
    if spec.export is not None and spec.backend in REGISTRY and not REGISTRY[spec.backend].runs_exports:
        raise InputError(
            f"an export runs on an exported backend ({', '.join(EXPORTED_BACKENDS)}), not {spec.backend!r}"
        )
    # an export's precision is its own: checked when its manifest is read
    return check_backend(spec.backend, spec.device, None if spec.export is not None else spec.precision)


def options_from_text(backend: str, items) -> object:
    """The options object of ``backend`` from ``KEY=VALUE`` strings (``--backend-option cuda_graph=on``), each
    value converted to the field's type; None when ``items`` is empty. InputError names a bad key or value."""
    items = tuple(items or ())
    if not items:
        return None
    cls = backend_class(backend)
    kind = cls.options_type
    if kind is None:
        raise InputError(f"backend {backend!r} takes no options, got {', '.join(items)}")
    fields = {f.name: f for f in dataclasses.fields(kind)}
    values = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or key not in fields:
            raise InputError(
                f"--backend-option {item!r}: backend {backend!r} takes KEY=VALUE with KEY one of {', '.join(fields)}"
            )
        values[key] = _typed(backend, key, fields[key].type, text.strip())
    return kind(**values)


_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def _typed(backend: str, key: str, kind, text: str):
    kind = kind if isinstance(kind, str) else kind.__name__  # annotations are strings under postponed evaluation
    if kind.startswith("Optional["):
        if text.lower() == "none":
            return None
        kind = kind[len("Optional[") : -1]
    try:
        if kind == "bool":
            if text.lower() not in _TRUE + _FALSE:
                raise ValueError
            return text.lower() in _TRUE
        return {"int": int, "float": float, "str": str}[kind](text)
    except (ValueError, KeyError):
        raise InputError(f"--backend-option {key}={text!r} of backend {backend!r}: expected a {kind}") from None


def options_help() -> str:
    """What ``--backend-option`` takes, per backend, from the options types (for ``--help``)."""
    parts = []
    for name, cls in REGISTRY.items():
        if cls.options_type is not None:
            fields = ", ".join(
                f"{f.name} ({f.type}, default {f.default!r})" for f in dataclasses.fields(cls.options_type)
            )
            parts.append(f"{name}: {fields}")
    return "; ".join(parts)


def check_backend(backend: str, device, precision: Optional[str] = None) -> torch.device:
    """The resolved device for ``backend``, or the first problem as an error (see ``Backend.check``); an unknown
    backend or precision name is an InputError."""
    reason = _unknown(backend, precision)
    if reason:
        raise InputError(reason)
    return REGISTRY[backend].check(device, precision)
