"""ONNX -> TensorRT (via Polygraphy) or TensorRT-RTX engines, cached under ``<export>/engines``, and a
torch-facing runner.

``build_engines(export_dir, family=...)`` returns the plan of each stage (building what is missing);
``build_plan(onnx_path, stage, engine_dir=..., family=...)`` the plan of one graph (a stage or a part of one);
``TrtStage(plan)`` runs one with torch CUDA tensors; ``load_stages(export_dir)`` does both;
``prepare(options)`` exports, checks and builds in one call (``gimm-export``).
Importing this package imports neither TensorRT, Polygraphy, ONNX nor torch: names resolve on first use.
"""

import importlib

_EXPORTS = {
    "build_engines": "build",
    "build_plan": "build",
    "plan_loader": "build",
    "rtx_builder": "build",
    "engine_loaders": "build",
    "CachedEngine": "build",
    "SaveEngineAtomic": "build",
    "EngineBytesFromOnnx": "build",
    "inspect_onnx": "build",
    "profiles_for": "build",
    "polygraphy_builder": "build",
    "EngineKey": "cache",
    "BuilderSettings": "settings",
    "Target": "compat",
    "current_target": "compat",
    "TrtStage": "runner",
    "load_stages": "runner",
    "prepare": "prepare",
    "Prepared": "prepare",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
