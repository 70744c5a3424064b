"""The real TensorRT-RTX ONNX parser, node by node: which nodes of a graph it rejects, and why.

    from gimm_trt.diagnostics import rtx_parser

    rejected = rtx_parser.parse_file("exports/R-P-fp32-4k/motion.onnx", graph="motion")
    for r in rejected:
        print(r)      # motion: node 'node_splat' (gimm_trt::splat): Plugin not found ... [TensorRT-RTX 1.7.1.116]

The parser runs on the CPU (no GPU, no engine build). It stops at the first node it cannot import, so a rejected
node is cut out (its outputs become graph inputs of the same type and shape) and the rest parsed again: every
node is either parsed or reported. An importer error carries no node index; the node is the last one the
parser's log says it started.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ..core import deps
from ..core.errors import ExportError, MissingDependency

__all__ = ["MODULE", "Rejection", "version", "unavailable", "parse_model", "parse_file", "parse_graphs"]

MODULE = "tensorrt_rtx"
_STARTED = re.compile(r"^Parsing node: (.*) \[([^\]]*)\]$")


@dataclass(frozen=True)
class Rejection:
    """One node the parser rejects (``node`` is "-" for an error outside any node)."""

    graph: str
    node: str
    op: str
    reason: str
    version: str

    def __str__(self) -> str:
        return f"{self.graph}: node {self.node!r} ({self.op}): {self.reason} [TensorRT-RTX {self.version}]"

    def as_dict(self) -> dict:
        return {"graph": self.graph, "node": self.node, "op": self.op, "reason": self.reason, "version": self.version}


def unavailable() -> Optional[str]:
    """Why the real parser cannot run here, or None."""
    if not deps.installed(MODULE):
        return f"{MODULE} is not installed (pip install tensorrt-rtx)"
    try:
        import tensorrt_rtx  # noqa: F401
    except Exception as err:  # a wheel without its native libraries
        return f"{MODULE} does not import: {' '.join(str(err).split())[:200]}"
    return None


def version() -> Optional[str]:
    return None if unavailable() else deps.version(MODULE)


def _import():
    reason = unavailable()
    if reason:
        raise MissingDependency(f"the TensorRT-RTX parser check needs {MODULE}: {reason}")
    import tensorrt_rtx

    return tensorrt_rtx


def _op_name(node) -> str:
    return node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}::{node.op_type}"


def _parse_once(trt, model) -> Optional[tuple]:
    """None when the whole graph parses, else (index of the rejected node or None, reason)."""

    class _Log(trt.ILogger):
        def __init__(self):
            trt.ILogger.__init__(self)
            self.started = None

        def log(self, severity, message):
            match = _STARTED.match(message)
            if match:
                self.started = match.group(1)

    logger = _Log()
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    if parser.parse(model.SerializeToString()):
        return None
    error = parser.get_error(0)
    names = [n.name for n in model.graph.node]
    reason = " ".join(error.desc().split())
    if 0 <= error.node() < len(names):
        return error.node(), reason
    name = error.node_name() or logger.started
    return (names.index(name) if name in names else None), reason


def _cut(model, index: int):
    """``model`` without node ``index``; its outputs become graph inputs with their inferred types and shapes."""
    import onnx

    node = model.graph.node[index]
    known = {vi.name: vi for vi in (*model.graph.value_info, *model.graph.output)}
    cut = onnx.ModelProto()
    cut.CopyFrom(model)
    del cut.graph.node[index]
    for out in node.output:
        if not out:
            continue
        if out not in known:
            raise ExportError(f"the type and shape of {out!r} (an output of {node.name!r}) are unknown")
        cut.graph.input.append(known[out])
    return cut


def parse_model(model, *, graph: str = "graph") -> list:
    """Every ``Rejection`` of an ``onnx.ModelProto`` by the real parser (an empty list: it takes the graph)."""
    import onnx

    trt = _import()
    if any(n.domain not in ("", "ai.onnx") for n in model.graph.node):
        from ..plugins.onnx_node import register_onnx_schema

        register_onnx_schema()  # shape inference below must know our splat node's outputs
    model = onnx.shape_inference.infer_shapes(model, strict_mode=False, data_prop=False)
    ver = str(trt.__version__)
    rejected = []
    while True:  # each round parses further or cuts one node: it ends
        failure = _parse_once(trt, model)
        if failure is None:
            return rejected
        index, reason = failure
        if index is None:
            return [*rejected, Rejection(graph, "-", "-", reason, ver)]
        node = model.graph.node[index]
        rejected.append(Rejection(graph, node.name or f"#{index}", _op_name(node), reason, ver))
        model = _cut(model, index)


def parse_file(path, *, graph: Optional[str] = None) -> list:
    from ..export.trt_support import load_graph

    return parse_model(load_graph(path), graph=graph or Path(path).stem)


def parse_graphs(graphs: dict) -> dict:
    """graph -> its ``Rejection`` list, for ``graphs`` (name -> ``onnx.ModelProto``): those TensorRT-RTX builds
    from a gimm-export directory are ``partition.graphs_without_splat``'s (a stage holding splat nodes as its
    standard-op parts, which the runtime joins with our splat kernel; the other stages whole)."""
    return {name: parse_model(model, graph=name) for name, model in graphs.items()}
