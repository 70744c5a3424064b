"""Will TensorRT's ONNX parser take these graphs as they are? A static check, without TensorRT.

Every node of a graph is held against ``trt_ops.json`` (what onnx-tensorrt's ``docs/operators.md`` lists for
TensorRT 10.9+ and 11.x, and what the TensorRT-RTX 1.x parser was measured to take; its ``about`` field says
which versions and commits) and against the parser's own behaviour where it rejects or silently changes a node
the table marks supported::

    from gimm_trt.export import trt_support

    reports = trt_support.check_export("exports/R-P-fp16-4k")        # stage -> GraphReport
    for finding in trt_support.findings(reports):
        print(finding)        # motion: node 'node_splat' (gimm_trt::splat): ... [TensorRT 10]
    trt_support.require_parsable("exports/R-P-fp16-4k")               # ExportError naming node and reason

A finding is what the parser would reject (unsupported op or type, an input that must be a constant and is
not, an attribute value outside its list, a shape it cannot take, a custom op no plugin serves) or silently
change (a GridSample or Resize mode it maps to nearest, an input without a shape it imports as a scalar).
Each names the TensorRT majors it concerns: a graph can be fine for 11.x and not for 10.9. TensorRT-RTX is a
column of its own (``RTX``), checked only when asked for (``targets=(RTX,)``): it has no plugins, so our plugin
node and the portable form's ScatterElements reduction are findings there, and an export is not refused for it.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from ..core.errors import ExportError, ExportMissingError
from ..plugins import schema

__all__ = [
    "TARGETS",
    "RTX",
    "COLUMNS",
    "TABLE",
    "Finding",
    "GraphReport",
    "load_table",
    "check_model",
    "check_file",
    "check_export",
    "findings",
    "targets_here",
    "require_parsable",
    "format_reports",
]

TARGETS = ("10", "11")  # TensorRT majors checked: 10 = 10.9 and later, 11 = 11.x
RTX = "tensorrt-rtx"  # TensorRT-RTX 1.x, a separate product with its own parser build
COLUMNS = TARGETS + (RTX,)  # every column of the table
TABLE = Path(__file__).with_name("trt_ops.json")
DEFAULT_DOMAINS = ("", "ai.onnx")

# ONNX TensorProto element types -> the type names of the parser's table
_TYPE_NAMES = {
    1: "FP32",
    2: "UINT8",
    3: "INT8",
    4: "UINT16",
    5: "INT16",
    6: "INT32",
    7: "INT64",
    8: "STRING",
    9: "BOOL",
    10: "FP16",
    11: "DOUBLE",
    12: "UINT32",
    13: "UINT64",
    14: "COMPLEX64",
    15: "COMPLEX128",
    16: "BF16",
    17: "FP8",
    18: "FP8",
    19: "FP8",
    20: "FP8",
    21: "UINT4",
    22: "INT4",
    23: "FP4",
}
# ops whose table types describe the output (the inputs are shapes, or there are none)
_OUTPUT_TYPED = {
    "Cast",
    "CastLike",
    "Constant",
    "ConstantOfShape",
    "EyeLike",
    "RandomNormal",
    "RandomNormalLike",
    "RandomUniform",
    "RandomUniformLike",
}
_DATA_INPUT = {"Where": 1}  # input 0 is the condition

# onnx-tensorrt onnxOpImporters.cpp (GridSample): any other mode string silently becomes kNEAREST, any other
# padding_mode kFILL. Opset 20 spells bilinear/bicubic as linear/cubic, which the parser does not know (checked
# with TensorRT 11.1).
GRIDSAMPLE_MODES = ("bilinear", "nearest", "bicubic")
GRIDSAMPLE_PADDING = ("zeros", "border", "reflection")
# the Resize row of the table (both versions)
RESIZE_MODES = ("nearest", "linear")
RESIZE_TRANSFORMS = ("half_pixel", "pytorch_half_pixel", "tf_half_pixel_for_nn", "asymmetric", "align_corners")
RESIZE_NEAREST = ("floor", "ceil", "round_prefer_floor", "round_prefer_ceil")
# TensorRT's ScatterElements plugin (plugin/scatterElementsPlugin/README.md), which the parser uses for a reduction
SCATTER_REDUCTIONS = ("add", "mul", "max", "min")

# inputs the parser reads as weights at import (initializer or Constant output): op -> {input index: what}
_CONSTANT_INPUTS = {
    **{
        op: {1: "axes"}
        for op in (
            "ReduceL1",
            "ReduceL2",
            "ReduceLogSum",
            "ReduceLogSumExp",
            "ReduceMax",
            "ReduceMean",
            "ReduceMin",
            "ReduceProd",
            "ReduceSum",
            "ReduceSumSquare",
        )
    },
    "CumSum": {1: "axis"},
    "OneHot": {1: "depth"},
    "Dropout": {2: "training_mode"},
    "STFT": {1: "frame_step", 2: "window"},
}
# inputs that must be known when the network is built: a value computed from a graph input's values is not
_STATIC_INPUTS = {"Squeeze": {1: "axes"}, "Unsqueeze": {1: "axes"}}
# outputs the parser produces: the table's "only the first output" and "`Indices` output unsupported"
_OUTPUTS_MADE = {"LayerNormalization": 1, "MaxPool": 1}


@dataclass(frozen=True)
class Finding:
    """One node the parser would reject or change, for the TensorRT majors in ``versions``."""

    graph: str
    node: str
    op: str
    reason: str
    versions: tuple = TARGETS

    def __str__(self) -> str:
        return f"{self.graph}: node {self.node!r} ({self.op}): {self.reason} [{_label(self.versions)}]"

    def as_dict(self) -> dict:
        return {
            "graph": self.graph,
            "node": self.node,
            "op": self.op,
            "reason": self.reason,
            "versions": list(self.versions),
        }


def _label(versions: tuple) -> str:
    """``TensorRT 10, 11``, ``TensorRT-RTX 1.x`` or both joined by ``; ``."""
    majors = [v for v in versions if v != RTX]
    parts = [f"TensorRT {', '.join(majors)}"] if majors else []
    return "; ".join(parts + (["TensorRT-RTX 1.x"] if RTX in versions else []))


@dataclass
class GraphReport:
    """One graph: its opsets, every op with count, attributes and input types seen, and the findings."""

    graph: str
    opsets: dict
    ops: dict = field(default_factory=dict)
    findings: list = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "graph": self.graph,
            "opsets": self.opsets,
            "ops": self.ops,
            "findings": [f.as_dict() for f in self.findings],
        }


def load_table(path=TABLE) -> dict:
    """The parser's table: ``{"about", "versions", "ops": {op: {major: {supported, types, restrictions}}}}``."""
    return json.loads(Path(path).read_text())


# --- what a graph holds ------------------------------------------------------------------------------------------


class _Graph:
    """Lookups the rules need: producers, constants, types and shapes of every named value."""

    def __init__(self, model, graph, table: dict, targets: tuple, name: str):
        self.model, self.graph, self.table, self.targets, self.name = model, graph, table, targets, name
        self.producer = {out: node for node in graph.node for out in node.output if out}
        self.initializers = {init.name for init in graph.initializer}
        self.graph_inputs = {vi.name for vi in graph.input} - self.initializers
        self.values = {vi.name: vi for vi in (*graph.value_info, *graph.input, *graph.output)}
        self.types = {init.name: init.data_type for init in graph.initializer}
        for name_, vi in self.values.items():
            if vi.type.HasField("tensor_type") and vi.type.tensor_type.elem_type:
                self.types.setdefault(name_, vi.type.tensor_type.elem_type)
        self.functions = {(f.domain, f.name): f for f in model.functions}
        self.opset = next((o.version for o in model.opset_import if o.domain in DEFAULT_DOMAINS), None)

    def is_constant(self, value: str) -> bool:
        """Read as weights by the parser: an initializer or a Constant node's output."""
        node = self.producer.get(value)
        return value in self.initializers or (node is not None and node.op_type == "Constant")

    def depends_on_input_values(self, value: str, seen=None) -> bool:
        """Whether ``value`` is computed from a graph input's values (a Shape of it does not count)."""
        seen = set() if seen is None else seen
        if value in seen or not value:
            return False
        seen.add(value)
        if value in self.graph_inputs:
            return True
        node = self.producer.get(value)
        if node is None or node.op_type in ("Shape", "Size", "Constant"):
            return False
        return any(self.depends_on_input_values(v, seen) for v in node.input)

    def type_name(self, value: str) -> Optional[str]:
        elem = self.types.get(value)
        return None if elem is None else _TYPE_NAMES.get(elem, f"type {elem}")

    def rank(self, value: str) -> Optional[int]:
        vi = self.values.get(value)
        if vi is None or not vi.type.tensor_type.HasField("shape"):
            init = next((i for i in self.graph.initializer if i.name == value), None)
            return None if init is None else len(init.dims)
        return len(vi.type.tensor_type.shape.dim)

    def row(self, op: str, version: str) -> Optional[dict]:
        entry = self.table["ops"].get(op)
        return None if entry is None else entry.get(version)

    def plugin_less(self) -> tuple:
        """The targets whose parser can reach no plugin (TensorRT-RTX: neither TensorRT's library nor ours)."""
        return tuple(v for v in self.targets if not self.table["versions"][v]["plugins"])

    def only(self, targets: tuple) -> _Graph:
        """The same graph, for ``targets`` only."""
        view = copy.copy(self)
        view.targets = targets
        return view


def _attrs(node) -> dict:
    import onnx

    out = {}
    for attr in node.attribute:
        value = onnx.helper.get_attribute_value(attr)
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        elif isinstance(value, list):
            value = [v.decode("utf-8", "replace") if isinstance(v, bytes) else v for v in value]
        elif not isinstance(value, (int, float, str)):
            value = f"<{type(value).__name__}>"  # tensors and graphs: shown by kind only
        out[attr.name] = value
    return out


def _op_name(node) -> str:
    return node.op_type if node.domain in DEFAULT_DOMAINS else f"{node.domain}::{node.op_type}"


# --- the rules ----------------------------------------------------------------------------------------------------
# Each rule returns its issues as (reason, versions) pairs.


def _table_rules(g: _Graph, node, attrs: dict) -> list:
    """Unknown or unsupported op; a data type its row does not list."""
    issues = []
    for version in g.targets:
        row = g.row(node.op_type, version)
        if row is None:
            issues.append((f"{node.op_type} is not in the parser's operator table", (version,)))
        elif not row["supported"]:
            why = f" ({row['restrictions']})" if row["restrictions"] else ""
            issues.append((f"the parser lists {node.op_type} as unsupported{why}", (version,)))
        else:
            value = _typed_value(node)
            kind = g.type_name(value) if value else None
            if kind is not None and kind not in row["types"]:
                issues.append(
                    (
                        f"{kind} {'output' if node.op_type in _OUTPUT_TYPED else 'input'} {value!r}: the parser "
                        f"supports {node.op_type} for {', '.join(row['types']) or 'no type'}",
                        (version,),
                    )
                )
    return _merge(issues)


def _typed_value(node) -> Optional[str]:
    if node.op_type in _OUTPUT_TYPED:
        return node.output[0] if node.output else None
    index = _DATA_INPUT.get(node.op_type, 0)
    return node.input[index] if len(node.input) > index and node.input[index] else None


def _constant_rules(g: _Graph, node, attrs: dict) -> list:
    """Inputs the parser must read as weights (initializer or Constant) or resolve when building; outputs it
    does not make."""
    issues = []
    for index, what in _CONSTANT_INPUTS.get(node.op_type, {}).items():
        if len(node.input) > index and node.input[index] and not g.is_constant(node.input[index]):
            issues.append(
                (
                    f"input {index} ({what}) must be an initializer or a Constant, got the computed value "
                    f"{node.input[index]!r}",
                    g.targets,
                )
            )
    made = _OUTPUTS_MADE.get(node.op_type)
    used = [o for o in node.output[made:] if o] if made else []
    if used:
        issues.append(
            (f"uses output(s) {', '.join(map(repr, used))}: the parser makes only the first {made}", g.targets)
        )
    for index, what in _STATIC_INPUTS.get(node.op_type, {}).items():
        if len(node.input) > index and g.depends_on_input_values(node.input[index]):
            issues.append(
                (
                    f"input {index} ({what}) must resolve to a constant when the engine is built; it is "
                    f"computed from a graph input's values",
                    g.targets,
                )
            )
    return issues


def _without_plugins(g: _Graph, reason: str) -> tuple:
    """(the issue ``reason`` for the targets whose parser has no plugins, the graph for the other targets)."""
    bare = g.plugin_less()
    return ([(reason, bare)] if bare else []), g.only(tuple(v for v in g.targets if v not in bare))


def _scatter_nd(g: _Graph, node, attrs: dict) -> list:
    reduction = attrs.get("reduction", "none")
    if reduction != "none":
        return [(f"ScatterND reduction {reduction!r}: the parser takes only 'none'", g.targets)]
    return []


def _scatter_elements(g: _Graph, node, attrs: dict) -> list:
    """A reduction goes to TensorRT's ScatterElements plugin, which takes int64 indices and no bf16/int8 data;
    a parser without plugins rejects it."""
    reduction = attrs.get("reduction", "none")
    if reduction == "none":
        return []
    issues, g = _without_plugins(
        g, f"ScatterElements reduction {reduction!r} needs TensorRT's ScatterElements plugin, which TensorRT-RTX lacks"
    )
    if not g.targets:
        return issues
    if reduction not in SCATTER_REDUCTIONS:
        return [
            *issues,
            (f"ScatterElements reduction {reduction!r} is none of {', '.join(SCATTER_REDUCTIONS)}", g.targets),
        ]
    indices = g.type_name(node.input[1]) if len(node.input) > 1 else None
    if indices not in (None, "INT64"):
        issues.append(
            (
                f"ScatterElements with reduction {reduction!r} runs as TensorRT's ScatterElements plugin, "
                f"which takes INT64 indices, got {indices}",
                g.targets,
            )
        )
    data = g.type_name(node.input[0]) if node.input else None
    if data in ("BF16", "INT8"):
        issues.append((f"TensorRT's ScatterElements plugin does not take {data} data", g.targets))
    return issues


def _grid_sample(g: _Graph, node, attrs: dict) -> list:
    issues = []
    mode = attrs.get("mode", "bilinear")
    if mode not in GRIDSAMPLE_MODES:
        spelling = " (the opset-20 spelling)" if mode in ("linear", "cubic") else ""
        issues.append(
            (
                f"mode {mode!r}{spelling} is not one the parser knows ({', '.join(GRIDSAMPLE_MODES)}): it "
                "silently samples nearest",
                g.targets,
            )
        )
    padding = attrs.get("padding_mode", "zeros")
    if padding not in GRIDSAMPLE_PADDING:
        issues.append(
            (
                f"padding_mode {padding!r} is not one the parser knows ({', '.join(GRIDSAMPLE_PADDING)}): it "
                "silently pads with zeros",
                g.targets,
            )
        )
    rank = g.rank(node.input[0]) if node.input else None
    if rank is not None and rank != 4:
        issues.append((f"input of rank {rank}: TensorRT's GridSample takes rank 4 only", g.targets))
    return issues


def _resize(g: _Graph, node, attrs: dict) -> list:
    issues = []
    checks = (
        ("mode", "nearest", RESIZE_MODES),
        ("coordinate_transformation_mode", "half_pixel", RESIZE_TRANSFORMS),
        ("nearest_mode", "round_prefer_floor", RESIZE_NEAREST),
        ("keep_aspect_ratio_policy", "stretch", ("stretch",)),
    )
    for name, default, allowed in checks:
        value = attrs.get(name, default)
        if value not in allowed:
            issues.append((f"{name} {value!r} is outside the parser's list ({', '.join(allowed)})", g.targets))
    if attrs.get("antialias", 0):
        issues.append(("antialias=1: the parser does not support antialiasing", g.targets))
    scales = node.input[2] if len(node.input) > 2 else ""
    sizes = node.input[3] if len(node.input) > 3 else ""
    axes = attrs.get("axes")
    if scales and not sizes and not g.is_constant(scales) and axes is not None:
        rank = g.rank(node.input[0])
        if rank is None or list(axes) != list(range(rank)):
            issues.append(
                (
                    "scales is a computed tensor and axes is not 0..rank-1: the parser takes axes only as an "
                    "iota vector then",
                    g.targets,
                )
            )
    return issues


def _eye_like(g: _Graph, node, attrs: dict) -> list:
    vi = g.values.get(node.input[0]) if node.input else None
    if vi is not None and any(not d.HasField("dim_value") for d in vi.type.tensor_type.shape.dim):
        return [("EyeLike input must have static dimensions", g.targets)]
    return []


_OP_RULES: dict = {
    "ScatterND": _scatter_nd,
    "ScatterElements": _scatter_elements,
    "Scatter": _scatter_elements,
    "GridSample": _grid_sample,
    "Resize": _resize,
    "EyeLike": _eye_like,
}


def _splat_rules(g: _Graph, node, attrs: dict) -> list:
    """Our plugin node: the attributes the parser and the plugin read, the types the plugin takes."""
    issues = []
    if attrs.get(schema.MODE_ATTR) not in schema.MODES:
        issues.append(
            (f"{schema.MODE_ATTR} {attrs.get(schema.MODE_ATTR)!r} is none of {', '.join(schema.MODES)}", g.targets)
        )
    # onnx-tensorrt FallbackPluginImporter: the plugin is looked up by op type, plugin_version (default "1") and
    # plugin_namespace (default ""); from 10.10 the node's domain also gives the namespace.
    namespace = attrs.get("plugin_namespace")
    if namespace != schema.NAMESPACE:
        versions = tuple(v for v in g.targets if v == "10") if namespace is None else g.targets
        if versions:
            issues.append(
                (
                    f"plugin_namespace {namespace!r}: the parser looks the plugin up in that namespace, "
                    f"registered as {schema.NAMESPACE!r}",
                    versions,
                )
            )
    if str(attrs.get("plugin_version", "1")) != str(schema.VERSION):
        issues.append(
            (
                f"plugin_version {attrs.get('plugin_version')!r}: the plugin is registered as version {schema.VERSION}",
                g.targets,
            )
        )
    if len(node.input) != len(schema.INPUTS):
        issues.append((f"{len(node.input)} inputs; the plugin takes {len(schema.INPUTS)}", g.targets))
    allowed = {"FP32": "float32", "FP16": "float16"}  # TensorRT's names; which ones pass is INPUT_DTYPES'
    for value in node.input:
        kind = g.type_name(value)
        if kind is not None and allowed.get(kind) not in schema.INPUT_DTYPES:
            issues.append((f"{kind} input {value!r}: the plugin takes {', '.join(schema.INPUT_DTYPES)}", g.targets))
    return issues


def _custom_rules(g: _Graph, node, attrs: dict) -> list:
    """A node outside the ONNX domain: our splat plugin, a model-local function, or something the parser cannot
    serve."""
    if (node.domain, node.op_type) == (schema.NAMESPACE, schema.OP_NAME):
        return _splat_rules(g, node, attrs)
    if node.op_type in g.table["ops"]:
        # the parser picks importers by op type alone; 10.15 added kENABLE_PLUGIN_OVERRIDE, off by default
        return [
            (
                f"custom op {node.domain}::{node.op_type} has a standard op's name: the parser imports it as the "
                f"ONNX {node.op_type}",
                g.targets,
            )
        ]
    return [
        (
            f"unknown custom op {node.domain}::{node.op_type}: the parser needs a TensorRT plugin of that name, and "
            f"gimm_trt registers only {schema.PLUGIN_ID}",
            g.targets,
        )
    ]


def _merge(issues: list) -> list:
    """One issue per reason, with all the versions it concerns."""
    merged: dict = {}
    for reason, versions in issues:
        merged.setdefault(reason, []).extend(v for v in versions if v not in merged.get(reason, []))
    return [(reason, tuple(versions)) for reason, versions in merged.items()]


def _node_issues(g: _Graph, node) -> list:
    attrs = _attrs(node)
    if (node.domain, node.op_type) in g.functions:
        return []  # a model-local function: its body is checked instead
    if node.domain not in DEFAULT_DOMAINS:
        issues, rest = _without_plugins(
            g,
            f"custom op {node.domain}::{node.op_type}: the parser finds no plugin for it (TensorRT-RTX loads none; "
            f"gimm_trt registers {schema.PLUGIN_ID} with TensorRT only)",
        )
        return issues + (_custom_rules(rest, node, attrs) if rest.targets else [])
    issues = _table_rules(g, node, attrs) + _constant_rules(g, node, attrs)
    rule: Optional[Callable] = _OP_RULES.get(node.op_type)
    return issues + (rule(g, node, attrs) if rule else [])


def _graph_issues(g: _Graph) -> list:
    """Opset range and graph inputs."""
    issues = []
    for version in g.targets:
        top = g.table["versions"][version]["max_opset"]
        if g.opset is not None and not 9 <= g.opset <= top:
            issues.append(("-", "opset", f"ONNX opset {g.opset} is outside the parser's range 9..{top}", (version,)))
    for vi in g.graph.input:
        if vi.name in g.initializers:
            continue
        if not vi.type.tensor_type.HasField("shape"):
            # onnx-tensorrt ModelImporter.cpp importInput converts shape().dim() as it is: no shape, rank 0
            issues.append((vi.name, "input", "graph input without a shape: the parser adds it as a scalar", g.targets))
        kind = g.type_name(vi.name)
        if kind not in (None, "FP32", "FP16", "BF16", "INT32", "INT64", "INT8", "UINT8", "BOOL"):
            issues.append(
                (vi.name, "input", f"graph input of type {kind}: TensorRT has no such network input type", g.targets)
            )
    return issues


# --- checking ------------------------------------------------------------------------------------------------------


def _with_types(model):
    """``model`` with inferred value types (our splat op's schema registered first); as it is if inference fails."""
    import onnx

    if any(n.domain == schema.NAMESPACE for n in model.graph.node):
        from ..plugins.onnx_node import register_onnx_schema

        register_onnx_schema()
    try:
        return onnx.shape_inference.infer_shapes(model, strict_mode=False, data_prop=False)
    except Exception:  # types are a help: the other rules still run without them
        return model


def _walk(model, graph, table, targets, name, prefix="") -> Iterable:
    """(node label, op name, attrs, node, _Graph) for every node, into subgraphs and model-local functions."""
    g = _Graph(model, graph, table, targets, name)
    yield from ((None, None, None, None, g),)
    for index, node in enumerate(graph.node):
        label = prefix + (node.name or f"{node.op_type}#{index}")
        yield label, _op_name(node), _attrs(node), node, g
        for attr in node.attribute:
            if attr.g.node:
                yield from _walk(model, attr.g, table, targets, name, prefix=f"{label}/")
        function = g.functions.get((node.domain, node.op_type))
        if function is not None:
            import onnx

            body = onnx.helper.make_graph(function.node, function.name, [], [])
            yield from _walk(model, body, table, targets, name, prefix=f"{label}/")


def check_model(model, *, graph: str = "graph", targets: tuple = TARGETS, table: Optional[dict] = None) -> GraphReport:
    """Check an ``onnx.ModelProto``: every op with its opset, attributes and input types, and the findings."""
    table = table or load_table()
    model = _with_types(model)
    opsets = {o.domain or "ai.onnx": o.version for o in model.opset_import}
    report = GraphReport(graph=graph, opsets=opsets)
    for label, op, attrs, node, g in _walk(model, model.graph, table, tuple(targets), graph):
        if node is None:
            if g.graph is model.graph:
                report.findings += [Finding(graph, n, o, r, v) for n, o, r, v in _graph_issues(g)]
            continue
        _inventory(
            report.ops,
            op,
            attrs,
            [g.type_name(v) if v else "-" for v in node.input],
            opsets.get(node.domain or "ai.onnx"),
        )
        report.findings += [Finding(graph, label, op, reason, versions) for reason, versions in _node_issues(g, node)]
    return report


def _inventory(ops: dict, op: str, attrs: dict, types: list, opset) -> None:
    entry = ops.setdefault(op, {"count": 0, "opset": opset, "attributes": {}, "input_types": []})
    entry["count"] += 1
    for name, value in attrs.items():
        seen = entry["attributes"].setdefault(name, [])
        if value not in seen and len(seen) < 8:
            seen.append(value)
    signature = ",".join(t or "?" for t in types)
    if signature not in entry["input_types"]:
        entry["input_types"].append(signature)


def load_graph(path):
    """The ONNX model at ``path``; ExportMissingError or ExportError, naming the file, when it cannot be read."""
    import onnx

    path = Path(path)
    if not path.is_file():
        raise ExportMissingError(f"{path} is missing")
    try:
        return onnx.load(str(path))
    except Exception as err:  # a truncated or foreign file
        raise ExportError(f"{path} is not a readable ONNX file ({err})") from None


def check_file(
    path, *, graph: Optional[str] = None, targets: tuple = TARGETS, table: Optional[dict] = None
) -> GraphReport:
    return check_model(load_graph(path), graph=graph or Path(path).stem, targets=targets, table=table)


def check_export(export_dir, *, targets: tuple = TARGETS) -> dict:
    """Check the three graphs of a gimm-export directory: stage -> ``GraphReport``."""
    from .manifest import read_manifest

    export_dir = Path(export_dir)
    stages = read_manifest(export_dir).get("stages", {})
    if not stages:
        raise ExportError(f"{export_dir} lists no graphs in its manifest; re-run gimm-export")
    table = load_table()
    return {
        stage: check_file(export_dir / entry["file"], graph=stage, targets=targets, table=table)
        for stage, entry in stages.items()
    }


def findings(reports: dict) -> list:
    return [f for report in reports.values() for f in report.findings]


def targets_here() -> tuple:
    """The TensorRT major installed here if it is one we check, else all of them (nothing to narrow by)."""
    from ..core.trt import has_tensorrt, import_trt, parse_version

    if not has_tensorrt():
        return TARGETS
    major = str(parse_version(import_trt().__version__)[0])
    return (major,) if major in TARGETS else TARGETS


def require_parsable(
    export_dir, *, targets: Optional[tuple] = None, log: Optional[Callable[[str], None]] = None
) -> list:
    """Check an export; ExportError naming each node and reason that concerns ``targets`` (default: the TensorRT
    installed here, else every major we support). Findings only for other majors are logged and returned."""
    log = log or (lambda message: None)
    targets = tuple(targets or targets_here())
    found = findings(check_export(export_dir))
    blocking = [f for f in found if set(f.versions) & set(targets)]
    for f in found:
        if f not in blocking:
            log(f"note: TensorRT's parser: {f}")
    if blocking:
        lines = "; ".join(str(f) for f in blocking[:10])
        more = f" (and {len(blocking) - 10} more)" if len(blocking) > 10 else ""
        raise ExportError(
            f"TensorRT's ONNX parser would reject or change {len(blocking)} node(s) of {export_dir}: {lines}{more}"
        )
    return found


def format_reports(reports: dict) -> str:
    """The op inventory and the findings, as lines of text."""
    lines = []
    for stage, report in reports.items():
        opsets = ", ".join(f"{d} {v}" for d, v in report.opsets.items())
        lines.append(f"{stage}: {sum(e['count'] for e in report.ops.values())} nodes, opsets {opsets}")
        for op, entry in sorted(report.ops.items()):
            types = " | ".join(entry["input_types"][:3]) + (" | ..." if len(entry["input_types"]) > 3 else "")
            lines.append(f"  {op:<24} x{entry['count']:<5} {types}")
        lines += [f"  FINDING {f}" for f in report.findings]
    return "\n".join(lines)
