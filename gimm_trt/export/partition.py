"""A graph with splat nodes -> standard-op parts and splat calls between them, run in order.

TensorRT for RTX has no plugin layers (and no scatter-add to decompose the op into), so the motion graph of a
plugin-form export cannot become one engine. ``partition_graph`` cuts it at its ``gimm_trt::splat`` nodes: each
part holds only standard ops (an engine, or an ONNX Runtime session) and each splat node becomes a call of our
own kernel (``gimm_trt.plugins.accumulate``: Triton on CUDA, torch on the CPU) on the parts' tensors.

The motion graph has two splat nodes side by side (latents of frame 0 and of frame 1), so its plan is
``part0 -> splat, splat -> part1``. In general a node's *level* is the number of splat nodes on its longest
path from the graph inputs; splat nodes of level ``k`` run after part ``k``. A standard node goes into the
latest part that still precedes all of its consumers, so work that only later parts need (the coordinate
grid of the timesteps, for one) is done there instead of crossing a boundary as a large tensor.

Files beside the export (``write_parts``): ``motion.part0.onnx``, ``motion.part1.onnx``, ... and
``motion.parts.json``, the plan a runtime loads (``load_plan``) without reading ONNX.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Optional

from ..core.errors import ExportError, ExportMissingError
from ..core.files import atomic_write, file_lock, sha256_file
from ..plugins import schema
from .manifest import export_file, read_manifest

__all__ = [
    "PLAN_SCHEMA",
    "PartStep",
    "SplatStep",
    "PartitionPlan",
    "partition_graph",
    "write_parts",
    "load_plan",
    "plan_file",
    "run_partitioned",
    "graphs_without_splat",
]

PLAN_SCHEMA = "gimm-parts/1"


@dataclass(frozen=True)
class PartStep:
    """One sub-graph of standard ops: ``file`` beside the export, its graph inputs and outputs by name.

    ``model`` is the ``onnx.ModelProto`` when the plan was just made (None when loaded from JSON); ``sha256``
    is the file's once written.
    """

    index: int
    file: str
    inputs: tuple
    outputs: tuple
    model: object = field(default=None, compare=False, repr=False)
    sha256: Optional[str] = None

    kind = "part"

    def as_dict(self) -> dict:
        return {"kind": self.kind, "index": self.index, "file": self.file, "inputs": list(self.inputs),
                "outputs": list(self.outputs), "sha256": self.sha256}  # fmt: skip


@dataclass(frozen=True)
class SplatStep:
    """One splat node: ``acc = accumulate(x, flow, metric, mode)`` ([N,C,H,W] -> [N,CO,H,W] float32).

    ``inputs`` are the names of (x, flow, metric), ``output`` the name of acc, as in the source graph.
    """

    name: str
    inputs: tuple
    output: str
    mode: str

    kind = "splat"

    def as_dict(self) -> dict:
        return {"kind": self.kind, "name": self.name, "inputs": list(self.inputs), "output": self.output,
                "mode": self.mode}  # fmt: skip


@dataclass(frozen=True)
class PartitionPlan:
    """The steps in run order; ``tensors``: name -> {"shape", "dtype"} of every tensor that crosses a step
    (shape entries are ints or the symbolic ``"T"``), ``inputs``/``outputs`` those of the source graph."""

    stage: str
    source: str
    source_sha256: Optional[str]
    inputs: tuple
    outputs: tuple
    steps: tuple
    tensors: dict

    @property
    def parts(self) -> tuple:
        return tuple(s for s in self.steps if s.kind == "part")

    @property
    def splats(self) -> tuple:
        return tuple(s for s in self.steps if s.kind == "splat")

    def as_dict(self) -> dict:
        return {
            "schema": PLAN_SCHEMA,
            "stage": self.stage,
            "source": self.source,
            "source_sha256": self.source_sha256,
            "inputs": list(self.inputs),
            "outputs": list(self.outputs),
            "steps": [s.as_dict() for s in self.steps],
            "tensors": self.tensors,
        }

    @classmethod
    def from_dict(cls, data: dict) -> PartitionPlan:
        steps = tuple(
            PartStep(s["index"], s["file"], tuple(s["inputs"]), tuple(s["outputs"]), sha256=s["sha256"])
            if s["kind"] == "part"
            else SplatStep(s["name"], tuple(s["inputs"]), s["output"], s["mode"])
            for s in data["steps"]
        )
        return cls(
            stage=data["stage"],
            source=data["source"],
            source_sha256=data["source_sha256"],
            inputs=tuple(data["inputs"]),
            outputs=tuple(data["outputs"]),
            steps=steps,
            tensors=data["tensors"],
        )


def plan_file(stage: str = "motion") -> str:
    """The plan's file name beside the export: ``<stage>.parts.json``."""
    return f"{stage}.parts.json"


# --- the graph walk -------------------------------------------------------------------------------------------


def _is_splat(node) -> bool:
    return node.domain == schema.NAMESPACE and node.op_type == schema.OP_NAME


def _levels(graph) -> list:
    """Per node: the number of splat nodes on its longest path from the graph inputs (a splat node's own
    level counts those before it)."""
    level_of = {}
    levels = []
    for node in graph.node:
        level = max((level_of.get(name, 0) for name in node.input if name), default=0)
        levels.append(level)
        for name in node.output:
            level_of[name] = level + _is_splat(node)
    return levels


def _placement(graph, levels: list, last: int, types: dict) -> list:
    """Per node: the set of parts it goes into; empty for splat nodes and for nodes nothing consumes.

    A standard node goes into the earliest part among its readers' (a splat node of level k reads in part k,
    the graph's outputs in ``last``). A node with integer outputs only (shape arithmetic, such as T read off
    ``t``) goes into every part that reads it instead: passed between engines such a tensor would become a
    TensorRT shape-tensor input, recomputing it costs nothing.
    """
    outputs = {o.name for o in graph.output}
    need = {}  # tensor name -> the parts (splat levels) that read it
    place = [frozenset()] * len(graph.node)
    for k in reversed(range(len(graph.node))):
        node = graph.node[k]
        if _is_splat(node):
            reads = {levels[k]}
        else:
            wanted = set().union(*(need.get(o, ()) for o in node.output))
            wanted |= {last for o in node.output if o in outputs}
            if not wanted:
                continue
            reads = wanted if _integer_only(node, types) else {min(wanted)}
            place[k] = frozenset(reads)
        for name in node.input:
            if name:
                need.setdefault(name, set()).update(reads)
    return place


def _integer_only(node, types: dict) -> bool:
    import onnx

    ints = {onnx.TensorProto.INT64, onnx.TensorProto.INT32}
    return all(o in types and types[o].type.tensor_type.elem_type in ints for o in node.output)


def _check_flat(graph, source: str) -> None:
    """ExportError for control flow: names a subgraph reads from the outer graph would be missed by the walk."""
    import onnx

    for node in graph.node:
        if any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for a in node.attribute):
            raise ExportError(
                f"{source}: node {node.name or node.op_type} holds a subgraph; partition needs a flat graph "
                "(re-export with gimm-export, whose graphs are inlined)"
            )


def _type_table(model) -> dict:
    """name -> ``onnx.ValueInfoProto`` of every typed tensor: graph inputs/outputs, value_info, inferred.

    The splat op has no ONNX shape inference; a splat output the graph does not type gets x's type with
    ``schema.out_channels`` channels in float32, and inference runs again past it.
    """
    import onnx

    from ..plugins import onnx_node

    onnx_node.register_onnx_schema()
    model = onnx.ModelProto.FromString(model.SerializeToString())
    splats = [n for n in model.graph.node if _is_splat(n)]
    while True:
        graph = onnx.shape_inference.infer_shapes(model).graph
        types = {v.name: v for v in [*graph.value_info, *graph.input, *graph.output]}
        added = [_splat_type(n, types) for n in splats if n.output[0] not in types and n.input[0] in types]
        if not added:
            return types
        model.graph.value_info.extend(added)


def _splat_type(node, types: dict):
    """The value info of a splat node's output from that of its x: [N,C,H,W] -> [N,CO,H,W] float32."""
    import onnx

    info = onnx.ValueInfoProto()
    info.CopyFrom(types[node.input[0]])
    info.name = node.output[0]
    info.type.tensor_type.elem_type = onnx.TensorProto.FLOAT
    channels = info.type.tensor_type.shape.dim[1]
    if channels.HasField("dim_value"):
        mode = _splat_step(node).mode
        channels.dim_value = schema.out_channels(channels.dim_value, mode)
    else:
        channels.ClearField("dim_param")  # x's channel symbol is not the output's
    return info


def _describe(info) -> dict:
    import onnx

    tt = info.type.tensor_type
    return {
        "shape": [d.dim_param or d.dim_value for d in tt.shape.dim],
        "dtype": onnx.helper.tensor_dtype_to_np_dtype(tt.elem_type).name,
    }


def _part_model(model, index: int, nodes: list, inputs: list, outputs: list, types: dict, stage: str):
    """An ``onnx.ModelProto`` of ``nodes`` with the given graph inputs/outputs and only the initializers
    the nodes read; opsets of the source minus the splat domain."""
    import onnx

    graph = model.graph
    read = {name for node in nodes for name in node.input}
    initializers = [i for i in graph.initializer if i.name in read]
    produced = {name for node in nodes for name in node.output}
    inner = [types[name] for name in sorted(produced - set(outputs)) if name in types]
    part = onnx.helper.make_graph(
        nodes,
        f"{graph.name or stage}_part{index}",
        [types[name] for name in inputs],
        [types[name] for name in outputs],
        initializer=initializers,
        value_info=inner,
    )
    domains = {node.domain for node in nodes}
    opsets = [o for o in model.opset_import if o.domain in domains or o.domain in ("", "ai.onnx")]
    return onnx.helper.make_model(
        part,
        opset_imports=opsets,
        ir_version=model.ir_version,
        producer_name=model.producer_name,
        producer_version=model.producer_version,
        doc_string=f"part {index} of {stage}.onnx (cut at its splat nodes by gimm_trt.export.partition)",
    )


def _check_part(part, file: str) -> None:
    """onnx.checker (full) and strict shape inference; ExportError naming the part's file otherwise."""
    import onnx

    try:
        onnx.checker.check_model(part, full_check=True)
        onnx.shape_inference.infer_shapes(part, check_type=True, strict_mode=True, data_prop=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ExportError(f"{file} is not a valid graph ({first}); re-export with gimm-export") from None


def _splat_step(node) -> SplatStep:
    import onnx

    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    mode = attrs.get(schema.MODE_ATTR, b"").decode()
    return SplatStep(node.name or node.output[0], tuple(node.input), node.output[0], schema.check_mode(mode))


def _steps(model, levels: list, place: list, last: int, types: dict, stage: str) -> tuple:
    """Parts 0..last (empty ones left out), the splat nodes of level k right after part k."""
    graph = model.graph
    readers = {}  # tensor -> where it is read: part p, p + 0.5 for a splat after part p, last + 1 for outputs
    makers = {}  # tensor -> the parts that compute it
    for k, node in enumerate(graph.node):
        where = {levels[k] + 0.5} if _is_splat(node) else place[k]
        for name in node.input:
            if name:
                readers.setdefault(name, set()).update(where)
        for name in node.output:
            makers.setdefault(name, set()).update(place[k])
    for o in graph.output:
        readers.setdefault(o.name, set()).add(last + 1)
    initializers = {i.name for i in graph.initializer}
    direct = [n for n, at in readers.items() if n in initializers and any(a % 1 or a > last for a in at)]
    if direct:
        raise ExportError(
            f"{stage}.onnx: initializer {direct[0]} feeds a splat node or the graph output directly; "
            "re-export with gimm-export"
        )
    # what part p hands on: tensors it computes that a later step reads without computing them itself
    handed = {name: {r for r in at if r not in makers.get(name, ())} for name, at in readers.items()}
    steps = []
    for p in range(last + 1):
        nodes = [n for n, at in zip(graph.node, place) if p in at]
        if nodes:
            outputs = [n for node in nodes for n in node.output if n and any(r > p for r in handed.get(n, ()))]
            index = sum(s.kind == "part" for s in steps)
            steps.append(_part(model, index, nodes, outputs, types, stage))
        steps += [_splat_step(n) for n, lv in zip(graph.node, levels) if _is_splat(n) and lv == p]
    return tuple(steps)


def _part(model, index: int, nodes: list, outputs: list, types: dict, stage: str) -> PartStep:
    """The ``PartStep`` of ``nodes`` making ``outputs``: its inputs are what the nodes read from outside the
    part (graph inputs, outputs of earlier steps)."""
    initializers = {i.name for i in model.graph.initializer}
    outside = {name for node in nodes for name in node.output} | initializers
    order = {name: k for k, name in enumerate([i.name for i in model.graph.input] + _made(model.graph))}
    inputs = sorted({n for node in nodes for n in node.input if n and n not in outside}, key=order.__getitem__)
    missing = [name for name in inputs + outputs if name not in types]
    if missing:
        raise ExportError(f"{stage}.onnx: tensor {missing[0]} has no type or shape; re-export with gimm-export")
    file = f"{stage}.part{index}.onnx"
    part = _part_model(model, index, nodes, inputs, outputs, types, stage)
    _check_part(part, file)
    return PartStep(index, file, tuple(inputs), tuple(outputs), model=part)


def _made(graph) -> list:
    return [name for node in graph.node for name in node.output]


def partition_graph(model, *, stage: str = "motion", source_sha256: Optional[str] = None) -> PartitionPlan:
    """Cut ``model`` (an ``onnx.ModelProto`` of a plugin-form export, fp32 or fp16) at its splat nodes.

    A graph without splat nodes (the portable form, flow, synthesis) becomes one part, the whole graph.
    Every part passes ``onnx.checker`` (full) and strict shape inference; the symbolic ``T`` axis stays.
    """
    graph = model.graph
    _check_flat(graph, f"{stage}.onnx")
    levels = _levels(graph)
    splat_levels = [lv for node, lv in zip(graph.node, levels) if _is_splat(node)]
    last = max(splat_levels) + 1 if splat_levels else 0
    types = _type_table(model)
    place = _placement(graph, levels, last, types)
    steps = _steps(model, levels, place, last, types, stage)
    crossing = dict.fromkeys(
        name for s in steps for name in (*s.inputs, *(s.outputs if s.kind == "part" else (s.output,)))
    )
    plan = PartitionPlan(
        stage=stage,
        source=f"{stage}.onnx",
        source_sha256=source_sha256,
        inputs=tuple(i.name for i in graph.input if i.name not in {t.name for t in graph.initializer}),
        outputs=tuple(o.name for o in graph.output),
        steps=steps,
        tensors={name: _describe(types[name]) for name in crossing},
    )
    _check_order(plan, f"{stage}.onnx")
    return plan


def graphs_without_splat(export_dir) -> dict:
    """What an engine family without plugin layers builds from a gimm-export directory, in memory (nothing is
    written): name -> ``onnx.ModelProto``, each stage whole, or as its parts (``motion.0``, ``motion.1``) where it
    holds splat nodes."""
    from .trt_support import load_graph

    export_dir = Path(export_dir)
    stages = read_manifest(export_dir).get("stages", {})
    if not stages:
        raise ExportError(f"{export_dir} lists no graphs in its manifest; re-run gimm-export")
    graphs = {}
    for stage, entry in stages.items():
        model = load_graph(export_dir / entry["file"])
        if not any(_is_splat(node) for node in model.graph.node):
            graphs[stage] = model
            continue
        for step in partition_graph(model, stage=stage).parts:
            graphs[f"{stage}.{step.index}"] = step.model
    return graphs


def _check_order(plan: PartitionPlan, source: str) -> None:
    """ExportError unless every step reads only graph inputs and earlier steps' outputs, and the graph's
    outputs are made."""
    ready = set(plan.inputs)
    for step in plan.steps:
        missing = [name for name in step.inputs if name not in ready]
        if missing:
            where = step.file if step.kind == "part" else f"splat {step.name}"
            raise ExportError(f"{source}: {where} reads {missing[0]} before any step makes it; write the parts again")
        ready.update(step.outputs if step.kind == "part" else (step.output,))
    missing = [name for name in plan.outputs if name not in ready]
    if missing:
        raise ExportError(f"{source}: no step makes the output {missing[0]}; write the parts again")


# --- files ----------------------------------------------------------------------------------------------------


def write_parts(export_dir, *, stage: str = "motion") -> list:
    """Write the parts of ``<export_dir>/<stage>.onnx`` and then its plan beside it; returns their paths.

    Files already made from the same source (the plan records its sha256 and every part's) are reused.
    """
    import onnx

    export_dir = Path(export_dir)
    source = export_dir / f"{stage}.onnx"
    if not source.is_file():
        raise ExportMissingError(f"{source} is missing; run gimm-export first")
    with file_lock(export_dir / f".{stage}.parts"):
        digest = sha256_file(source)
        current = _current_plan(export_dir, stage, digest)
        if current is not None:
            return _paths(export_dir, current, stage)
        plan = partition_graph(onnx.load(str(source)), stage=stage, source_sha256=digest)
        steps = []
        for step in plan.steps:
            if step.kind == "part":
                data = step.model.SerializeToString()
                atomic_write(export_dir / step.file, data)
                step = PartStep(step.index, step.file, step.inputs, step.outputs, sha256=_sha256(data))
            steps.append(step)
        written = replace(plan, steps=tuple(steps))
        atomic_write(export_dir / plan_file(stage), (json.dumps(written.as_dict(), indent=2) + "\n").encode())
    return _paths(export_dir, written, stage)


def _sha256(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def _paths(export_dir: Path, plan: PartitionPlan, stage: str) -> list:
    return [export_dir / p.file for p in plan.parts] + [export_dir / plan_file(stage)]


def _current_plan(export_dir: Path, stage: str, digest: str) -> Optional[PartitionPlan]:
    """The plan on disk when it and all its parts are intact and made from the source with ``digest``."""
    try:
        plan = load_plan(export_dir, stage=stage)
    except ExportError:
        return None
    if plan.source_sha256 != digest:
        return None
    if all((export_dir / p.file).is_file() and sha256_file(export_dir / p.file) == p.sha256 for p in plan.parts):
        return plan
    return None


def load_plan(export_dir, *, stage: str = "motion") -> PartitionPlan:
    """The plan ``write_parts`` wrote (parts as file names, no ONNX loaded); ExportError when missing/damaged."""
    path = Path(export_dir) / plan_file(stage)
    fix = f"write it with gimm_trt.export.write_parts({str(export_dir)!r})"
    if not path.is_file():
        raise ExportMissingError(f"{path} is missing; {fix}")
    try:
        data = json.loads(path.read_text())
        if data.get("schema") != PLAN_SCHEMA:
            raise ValueError(f"schema is not {PLAN_SCHEMA}")
        plan = PartitionPlan.from_dict(data)
    except (ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError) as err:
        raise ExportError(f"{path} is not a partition plan ({err}); {fix}") from None
    for part in plan.parts:
        export_file(export_dir, part.file, f"{path}: the file of part {part.index}")
    _check_order(plan, str(path))
    return plan


# --- running --------------------------------------------------------------------------------------------------


def run_partitioned(
    plan: PartitionPlan,
    run_part: Callable,
    splat: Optional[Callable],
    inputs: dict,
) -> dict:
    """Run the plan's steps in order on tensors; returns the graph's outputs by name.

    Args:
        run_part: ``run_part(step, feeds) -> {name: tensor}``: runs one ``PartStep`` on ``feeds`` (its
            inputs by name) and returns at least its outputs (an ONNX Runtime session, a TensorRT engine).
        splat: ``splat(x, flow, metric, mode) -> acc``, what the graph's splat node computes ([N,C,H,W] ->
            [N,CO,H,W] float32); None: ``gimm_trt.plugins.accumulate`` (Triton on CUDA, torch on the CPU).
        inputs: the graph's inputs by name (for motion: flow01, flow10 [1,2,h,w], t [T]).

    A tensor is dropped as soon as no later step reads it, so peak memory is that of the parts, not the sum.
    """
    if splat is None:
        from ..plugins import accumulate as splat
    missing = [name for name in plan.inputs if name not in inputs]
    if missing:
        raise ExportError(f"{plan.source}: the partitioned graph needs input {missing[0]}; pass it by name")
    last_read = _last_reads(plan)
    env = {name: inputs[name] for name in plan.inputs}
    for k, step in enumerate(plan.steps):
        if step.kind == "part":
            made = run_part(step, {name: env[name] for name in step.inputs})
            env.update({name: made[name] for name in step.outputs})
        else:
            env[step.output] = splat(*(env[name] for name in step.inputs), step.mode)
        for name in [n for n in env if last_read.get(n, len(plan.steps)) <= k]:
            del env[name]
    return {name: env[name] for name in plan.outputs}


def _last_reads(plan: PartitionPlan) -> dict:
    """tensor -> index of the last step that reads it (graph outputs are never dropped)."""
    last = {}
    for k, step in enumerate(plan.steps):
        for name in step.inputs:
            last[name] = k
    for name in plan.outputs:
        last.pop(name, None)
    return last
