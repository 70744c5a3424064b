"""fp32 graph -> fp16 graph with fp32 islands, fp32 inputs and outputs unchanged.

The rule mirrors what ``precision="fp16"`` does in PyTorch (autocast with the model's ``fp32`` islands):

* **seeds**: the convolutions and matrix products of learned layers (``Conv``/``ConvTranspose``/``MatMul``/
  ``Gemm`` nodes that the exporter attributes to an ``nn.Conv*``/``nn.Linear`` module), except inside an fp32
  island module (``ConvexUpsample``, ``CoordMLP``: flows and coordinates). ``F.conv2d``/``F.linear``/
  ``torch.matmul`` calls are not seeds, so the correlation volumes, attention maps, the splat-weight
  filter and the x8 convex upsampling stay fp32;
* **followers**: cheap elementwise and layout ops (activations, Add/Mul, Concat, Slice, Pad, ...) run in fp16
  when every float input comes from an fp16 node or is a constant that fp16 represents, and at least one
  comes from an fp16 node. Propagation is forward only, so an ``Add`` of an fp16 residual to an fp32 flow or
  coordinate is fp32: coordinates, warps (``GridSample``), resizes, splats, divides, reductions and
  normalisations are never fp16.

Casts go where the two meet (one per tensor and direction); weights of fp16 nodes become fp16 initializers.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

__all__ = ["Fp16Report", "to_fp16", "island_classes", "SEED_OPS", "FOLLOWERS", "LEARNED_LAYERS", "DEFAULT_ISLANDS"]

SEED_OPS = frozenset({"Conv", "ConvTranspose", "MatMul", "Gemm"})
LEARNED_LAYERS = frozenset(
    {
        "torch.nn.modules.conv.Conv1d",
        "torch.nn.modules.conv.Conv2d",
        "torch.nn.modules.conv.Conv3d",
        "torch.nn.modules.conv.ConvTranspose2d",
        "torch.nn.modules.linear.Linear",
    }
)
FOLLOWERS = frozenset(
    {
        "Relu",
        "LeakyRelu",
        "PRelu",
        "Sigmoid",
        "Tanh",
        "Elu",
        "HardSigmoid",
        "Clip",
        "Add",
        "Sub",
        "Mul",
        "Neg",
        "Concat",
        "Split",
        "Slice",
        "Reshape",
        "Transpose",
        "Squeeze",
        "Unsqueeze",
        "Expand",
        "Flatten",
        "Identity",
        "Pad",
        "DepthToSpace",
        "SpaceToDepth",
        "BatchNormalization",
        "MaxPool",
        "Tile",
        "Gather",
    }
)
ANY_TYPE = frozenset({"Shape", "Size", "Cast"})  # consume an fp16 tensor as readily as an fp32 one
# island modules whose ``forward`` the model marks fp32 (``model._utils.fp32``); found on the model too
DEFAULT_ISLANDS = frozenset({"gimm_trt.model.flow._utils.ConvexUpsample", "gimm_trt.model.motion.CoordMLP"})


@dataclass(frozen=True, kw_only=True)
class Fp16Report:
    """What the conversion did: fp16 nodes (seeds = convolutions/matmuls), Casts added, fp32 nodes left."""

    half_nodes: int
    seeds: int
    casts: int
    fp32_nodes: int
    fp32_seed_ops: int  # Conv/MatMul nodes kept fp32 (islands, correlation, attention)

    def as_dict(self) -> dict:
        return {
            "half_nodes": self.half_nodes,
            "seeds": self.seeds,
            "casts": self.casts,
            "fp32_nodes": self.fp32_nodes,
            "fp32_conv_matmul": self.fp32_seed_ops,
        }


def island_classes() -> frozenset:
    """``DEFAULT_ISLANDS`` plus every gimm_trt module class whose ``forward`` the model marks fp32
    (wrapped by ``model._utils.fp32``), so a new island in the model code is an island here too."""
    import importlib

    import torch

    for name in ("flow.raft", "flow.flowformer", "motion", "synthesis"):  # load every class the graphs name
        try:
            importlib.import_module(f"gimm_trt.model.{name}")
        except ImportError:
            pass
    found = set(DEFAULT_ISLANDS)
    todo = [torch.nn.Module]
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        forward = cls.__dict__.get("forward")
        code = getattr(forward, "__code__", None)  # functools.wraps copies names; the code keeps its own
        if (
            cls.__module__.startswith("gimm_trt.")
            and getattr(forward, "__wrapped__", None) is not None
            and getattr(code, "co_qualname", "").startswith("fp32.")
        ):
            found.add(f"{cls.__module__}.{cls.__qualname__}")
    return frozenset(found)


def _hierarchy(node) -> list:
    text = node.metadata_props.get("pkg.torch.onnx.class_hierarchy")
    if not text:
        return []
    try:
        return list(ast.literal_eval(text))
    except (ValueError, SyntaxError):
        return []


def _is_seed(node, islands) -> bool:
    if node.op_type not in SEED_OPS or node.domain not in ("", "ai.onnx"):
        return False
    classes = _hierarchy(node)
    modules = [c for c in classes if not c.startswith("aten.")]
    if not modules or modules[-1] not in LEARNED_LAYERS:  # the op must come from the layer itself
        return False
    return not any(c in islands for c in classes)


def _fits_fp16(value) -> bool:
    import numpy as np

    array = value.const_value.numpy()
    if array.dtype != np.float32:
        return False
    half = array.astype(np.float16)
    return bool(np.isfinite(half).all() and not ((array != 0) & (half == 0)).any())


def to_fp16(model, *, islands=DEFAULT_ISLANDS) -> Fp16Report:
    """Convert ``model`` (``onnx_ir.Model``, fp32) in place; graph inputs and outputs stay float32."""
    import numpy as np
    import onnx_ir as ir
    from onnx_ir.passes.common import TopologicalSortPass

    FLOAT, HALF = ir.DataType.FLOAT, ir.DataType.FLOAT16
    graph = model.graph
    TopologicalSortPass()(model)

    def is_const(value) -> bool:
        return value.const_value is not None and value.producer() is None and value not in graph.inputs

    half = set()
    seeds = fp32_seed_ops = 0
    for node in graph:
        floats = [v for v in node.inputs if v is not None and v.dtype == FLOAT]
        if _is_seed(node, islands):
            half.add(node)
            seeds += 1
        elif node.op_type in SEED_OPS:
            fp32_seed_ops += 1
        elif node.op_type in FOLLOWERS and node.domain in ("", "ai.onnx") and floats:
            from_half = [v.producer() in half for v in floats]
            if any(from_half) and all(h or (is_const(v) and _fits_fp16(v)) for v, h in zip(floats, from_half)):
                half.add(node)

    casts = {}  # (value, dtype) -> cast output

    def cast(value, dtype):
        key = (value, dtype)
        if key not in casts:
            node = ir.node("Cast", [value], {"to": dtype}, name=f"{value.name}/cast_{dtype.name.lower()}")
            out = node.outputs[0]
            out.name = f"{value.name}__{'f16' if dtype == HALF else 'f32'}"
            out.dtype, out.shape = dtype, value.shape
            producer = value.producer()
            if producer is not None:
                graph.insert_after(producer, node)
            else:
                graph.insert_before(next(iter(graph)), node)
            casts[key] = out
        return casts[key]

    halved = {}  # fp32 initializer -> its fp16 copy

    def half_const(value):
        if value not in halved:
            data = value.const_value.numpy().astype(np.float16)
            copy = ir.Value(
                name=f"{value.name}__f16",
                type=ir.TensorType(HALF),
                shape=value.shape,
                const_value=ir.tensor(data, name=f"{value.name}__f16"),
            )
            graph.register_initializer(copy)
            halved[value] = copy
        return halved[value]

    # 1. fp16 nodes: their float inputs become fp16 (weights converted, activations cast), outputs fp16
    for node in list(half):
        for i, value in enumerate(node.inputs):
            if value is None or value.dtype != FLOAT or value.producer() in half:
                continue
            node.replace_input_with(i, half_const(value) if is_const(value) else cast(value, HALF))
        for out in node.outputs:
            if out.dtype == FLOAT:
                out.dtype = HALF
    # 2. fp32 consumers of fp16 tensors get a Cast back (Shape/Size/Cast read any type)
    for node in list(graph):
        if node in half or node.op_type in ANY_TYPE and node.domain in ("", "ai.onnx"):
            continue
        for i, value in enumerate(node.inputs):
            if value is not None and value.dtype == HALF and value.producer() in half:
                node.replace_input_with(i, cast(value, FLOAT))
    # 3. graph outputs stay float32 under their names
    for i, value in enumerate(list(graph.outputs)):
        if value.dtype == HALF:
            name = value.name
            value.name = f"{name}__f16out"
            out = cast(value, FLOAT)
            out.name = name
            graph.outputs[i] = out
    return Fp16Report(
        half_nodes=len(half),
        seeds=seeds,
        casts=len(casts),
        fp32_nodes=len(graph) - len(half) - len(casts),
        fp32_seed_ops=fp32_seed_ops,
    )
