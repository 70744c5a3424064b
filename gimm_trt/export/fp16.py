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
    from onnx_ir.passes.common import TopologicalSortPass

    TopologicalSortPass()(model)  # producers first: the forward pass sees every input decided before its consumer
    conversion = _Conversion(model.graph)
    conversion.choose_half_nodes(islands)
    conversion.halve_inputs_and_outputs()
    conversion.cast_back_for_fp32_consumers()
    conversion.keep_graph_outputs_fp32()
    return conversion.report()


class _Conversion:
    """One graph's conversion in its steps; every Cast and fp16 initializer it adds is made once."""

    def __init__(self, graph):
        import onnx_ir as ir

        self.ir, self.graph = ir, graph
        self.FLOAT, self.HALF = ir.DataType.FLOAT, ir.DataType.FLOAT16
        self.half = set()  # the nodes that run in fp16
        self.seeds = self.fp32_seed_ops = 0
        self.casts = {}  # (value, dtype) -> cast output
        self.halved = {}  # fp32 initializer -> its fp16 copy

    def choose_half_nodes(self, islands) -> None:
        """The seeds, then the followers whose float inputs are all fp16 (or constants fp16 represents), in one
        forward pass over the sorted graph."""
        for node in self.graph:
            floats = [v for v in node.inputs if v is not None and v.dtype == self.FLOAT]
            if _is_seed(node, islands):
                self.half.add(node)
                self.seeds += 1
            elif node.op_type in SEED_OPS:
                self.fp32_seed_ops += 1
            elif node.op_type in FOLLOWERS and node.domain in ("", "ai.onnx") and floats:
                from_half = [v.producer() in self.half for v in floats]
                if any(from_half) and all(h or self._fp16_const(v) for v, h in zip(floats, from_half)):
                    self.half.add(node)

    def halve_inputs_and_outputs(self) -> None:
        """The fp16 nodes' float inputs become fp16 (weights converted, activations cast), their outputs fp16."""
        for node in list(self.half):
            for i, value in enumerate(node.inputs):
                if value is None or value.dtype != self.FLOAT or value.producer() in self.half:
                    continue
                node.replace_input_with(
                    i, self._half_const(value) if self._is_const(value) else self._cast(value, self.HALF)
                )
            for out in node.outputs:
                if out.dtype == self.FLOAT:
                    out.dtype = self.HALF

    def cast_back_for_fp32_consumers(self) -> None:
        """Each fp32 node reading an fp16 tensor reads a Cast of it back to float32 (Shape/Size/Cast read any
        type and need none)."""
        for node in list(self.graph):
            if node in self.half or node.op_type in ANY_TYPE and node.domain in ("", "ai.onnx"):
                continue
            for i, value in enumerate(node.inputs):
                if value is not None and value.dtype == self.HALF and value.producer() in self.half:
                    node.replace_input_with(i, self._cast(value, self.FLOAT))

    def keep_graph_outputs_fp32(self) -> None:
        """An fp16 graph output becomes a float32 Cast of it under the output's name, so callers see no change."""
        graph = self.graph
        for i, value in enumerate(list(graph.outputs)):
            if value.dtype == self.HALF:
                name = value.name
                value.name = f"{name}__f16out"
                out = self._cast(value, self.FLOAT)
                out.name = name
                graph.outputs[i] = out

    def report(self) -> Fp16Report:
        """The counts of what the steps did."""
        return Fp16Report(
            half_nodes=len(self.half),
            seeds=self.seeds,
            casts=len(self.casts),
            fp32_nodes=len(self.graph) - len(self.half) - len(self.casts),
            fp32_seed_ops=self.fp32_seed_ops,
        )

    def _is_const(self, value) -> bool:
        """A value known at conversion: a constant or initializer that is not a graph input."""
        return value.const_value is not None and value.producer() is None and value not in self.graph.inputs

    def _fp16_const(self, value) -> bool:
        """A constant whose values fp16 represents (finite, no non-zero value rounding to zero)."""
        return self._is_const(value) and _fits_fp16(value)

    def _cast(self, value, dtype):
        """``value`` cast to ``dtype``: one Cast node per value and type, right after its producer (first in the
        graph for graph inputs and initializers)."""
        key = (value, dtype)
        if key not in self.casts:
            node = self.ir.node("Cast", [value], {"to": dtype}, name=f"{value.name}/cast_{dtype.name.lower()}")
            out = node.outputs[0]
            out.name = f"{value.name}__{'f16' if dtype == self.HALF else 'f32'}"
            out.dtype, out.shape = dtype, value.shape
            producer = value.producer()
            if producer is not None:
                self.graph.insert_after(producer, node)
            else:
                self.graph.insert_before(next(iter(self.graph)), node)
            self.casts[key] = out
        return self.casts[key]

    def _half_const(self, value):
        """The fp16 copy of initializer ``value``, registered in the graph once."""
        import numpy as np

        ir = self.ir
        if value not in self.halved:
            data = value.const_value.numpy().astype(np.float16)
            copy = ir.Value(
                name=f"{value.name}__f16",
                type=ir.TensorType(self.HALF),
                shape=value.shape,
                const_value=ir.tensor(data, name=f"{value.name}__f16"),
            )
            self.graph.register_initializer(copy)
            self.halved[value] = copy
        return self.halved[value]
