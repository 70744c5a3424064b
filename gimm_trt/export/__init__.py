"""torch -> three ONNX graphs (flow, motion, synthesis), fp16 with fp32 islands, manifest, reuse.

``export(ExportOptions(...), out)`` writes ``<out>/<variant>-<precision>-<resolution>/``; ``gimm-export`` is
its command line and ``Interpolator.from_export`` runs the result. Importing this package imports neither
torch nor ONNX: names resolve on first use.
"""

import importlib

_EXPORTS = {
    "ExportOptions": "exporter",
    "WeightsSource": "exporter",
    "export": "exporter",
    "export_key": "exporter",
    "weights_of": "exporter",
    "OPSETS": "exporter",
    "DEFAULT_OPSET": "exporter",
    "PRECISIONS": "exporter",
    "ExportInfo": "manifest",
    "read_manifest": "manifest",
    "to_fp16": "fp16",
    "Fp16Report": "fp16",
    "stage_module": "graphs",
    "trace": "graphs",
    "compare_export": "compare",
    "ort_session": "ort",
    "providers_for": "ort",
    "part_runner": "ort",
    "partition_graph": "partition",
    "write_parts": "partition",
    "load_plan": "partition",
    "run_partitioned": "partition",
    "PartitionPlan": "partition",
    "check_export": "trt_support",
    "require_parsable": "trt_support",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
