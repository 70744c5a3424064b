"""The export's graphs against the ONNX parsers: TensorRT's statically (the table in ``export/trt_ops.json``),
TensorRT-RTX's by running the real parser when ``tensorrt_rtx`` is installed (its column of the table when not).

``ENGINES`` names what ``gimm-doctor --export DIR --engine`` takes."""

from __future__ import annotations

import time
from pathlib import Path

from . import rtx_parser
from .context import Context, doctor_export, need

__all__ = ["ENGINES", "check_parser_static", "export_check"]

ENGINES = ("tensorrt", "tensorrt-rtx")


def _nodes(reports: dict) -> int:
    return sum(e["count"] for r in reports.values() for e in r.ops.values())


def _findings(reports: dict) -> tuple:
    """(findings, check data) of the table check's ``reports`` (graph -> GraphReport)."""
    from ..export.trt_support import findings

    found = findings(reports)
    return found, {"findings": [f.as_dict() for f in found], "nodes": _nodes(reports)}


def _listed(items: list, limit: int) -> str:
    return "; ".join(str(i) for i in items[:limit]) + (" ..." if len(items) > limit else "")


def check_parser_static(ctx: Context) -> tuple:
    """TensorRT's ONNX parser, statically, on the export the engines are built from."""
    for module in ("onnx", "onnxscript", "onnx_ir"):
        need(module)
    from ..export.trt_support import TARGETS, check_export

    found, data = _findings(check_export(doctor_export(ctx), targets=TARGETS))
    if found:
        return "fail", f"{len(found)} finding(s): {_listed(found, 1)}", data
    return "pass", f"{data['nodes']} nodes in 3 graphs: nothing TensorRT 10.9+/11.x's parser rejects or changes", data


def export_check(export_dir: Path, doc: dict, log, engine: str = "tensorrt") -> dict:
    """``--export DIR``: that directory's graphs against ``engine``'s parser (a missing or foreign directory
    raises). Adds ``doc["export"]``: path, engine, and each graph's op inventory and table findings."""
    from ..export.partition import graphs_without_splat
    from ..export.trt_support import RTX, TARGETS, check_export, check_model

    start = time.perf_counter()
    rtx = engine == "tensorrt-rtx"
    if rtx:  # the graphs TensorRT-RTX builds (a stage with splat nodes as its parts), loaded once for both checks
        graphs = graphs_without_splat(export_dir)
        reports = {name: check_model(model, graph=name, targets=(RTX,)) for name, model in graphs.items()}
    else:
        reports = check_export(export_dir, targets=TARGETS)
    found, data = _findings(reports)
    doc["export"] = {
        "path": str(export_dir),
        "engine": engine,
        "graphs": {s: r.as_dict() for s, r in reports.items()},
    }
    nodes = data["nodes"]
    if rtx and rtx_parser.unavailable() is None:
        rejected = [r for rs in rtx_parser.parse_graphs(graphs).values() for r in rs]
        for r in rejected:
            log(f"doctor: rejected: {r}")
        name, problems = "parser_rtx", rejected
        data = {"rejections": [r.as_dict() for r in rejected], "nodes": nodes, "parser": rtx_parser.version()}
        accepted = f"{nodes} nodes in {len(reports)} graphs: the TensorRT-RTX {rtx_parser.version()} parser takes all"
        detail = f"{len(rejected)} node(s) the parser rejects: {_listed(rejected, 5)}" if rejected else accepted
    else:
        for f in found:
            log(f"doctor: finding: {f}")
        what = "TensorRT-RTX's column of the table flags" if rtx else "TensorRT 10.9+/11.x's parser rejects or changes"
        name, problems = "parser_static", found
        detail = (
            f"{len(found)} finding(s) in {nodes} nodes: {_listed(found, 5)}"
            if found
            else f"{nodes} nodes in {len(reports)} graphs: nothing {what}"
        )
        if rtx:  # the table stands in for the real parser: say why
            detail += f" (the real parser is not run: {rtx_parser.unavailable()})"
    return {
        "name": name,
        "status": "fail" if problems else "pass",
        "detail": detail,
        "seconds": round(time.perf_counter() - start, 2),
        "data": data,
    }
