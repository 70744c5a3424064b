"""The splat op in ONNX: one custom node, its torch export hook, an ONNX Runtime kernel, a portable form.

Export::

    from gimm_trt.plugins import onnx_node

    with onnx_node.export_splat_mode("plugin") as table:     # or "portable"
        torch.onnx.export(model, args, path, dynamo=True, opset_version=18,
                          custom_translation_table=table, dynamic_shapes=...)
    # the TorchScript exporter works too: torch.onnx.export(..., dynamo=False) inside the same block

Inside the block every ``gimm_trt.plugins.splat(...)`` call of the traced model becomes

* ``"plugin"``: one node ``gimm_trt::splat(x, flow, metric) -> acc`` (domain ``gimm_trt``, version 1;
  attributes ``mode``, ``plugin_namespace="gimm_trt"``, ``plugin_version="1"``, ``aot=1``) followed by the
  normalise ops (Slice, Equal, Where, Div). TensorRT's parser maps the node to the plugin of
  ``trt_plugin.py`` by op type + ``plugin_namespace``; ``aot=1`` asks for the compiled Triton kernel
  (``export_splat_mode("plugin", aot=False)`` asks for the Python JIT one).
* ``"portable"``: the same arithmetic in standard ops only (``ScatterElements(reduction="add")`` on
  flattened indices with one dump slot for dropped contributions; never ``ScatterND``), runnable by stock
  ONNX Runtime and TensorRT. It materialises int64 indices of the size of the updates
  (``N * (C+1) * 4 * H * W``), so it costs memory the plugin does not.

``table`` is the ``custom_translation_table`` of the dynamo exporter (empty for "portable"). Outside export
the block also routes eager calls, so the exported forms can be checked in PyTorch. Exporting a model that
calls ``splat`` outside such a block raises.

ONNX Runtime: ``for_onnxruntime(model)`` returns a copy whose splat nodes run as an onnxruntime-extensions
Python op (domain ``ai.onnx.contrib``; inputs cast to float32 first), and ``session_options()`` registers the
library::

    sess = onnxruntime.InferenceSession(onnx_node.for_onnxruntime(model).SerializeToString(),
                                        onnx_node.session_options(), providers=["CPUExecutionProvider"])

``make_node(...)`` builds the node by hand (e.g. for graph surgery); ``register_onnx_schema()`` makes
``onnx.checker`` accept it.
"""

import contextlib

import torch

from ..core.errors import InputError
from . import _export_state, schema
from .ops import accumulate, normalise, weighted_input

__all__ = [
    "export_splat_mode",
    "splat_for_export",
    "translation_table",
    "portable_accumulate",
    "make_node",
    "node_attributes",
    "register_onnx_schema",
    "for_onnxruntime",
    "session_options",
    "ORT_DOMAIN",
    "FORMS",
]

FORMS = schema.FORMS
ONNX_DOMAIN = schema.NAMESPACE
OP_TYPE = schema.OP_NAME  # TensorRT's parser finds the plugin by op type: never a standard ONNX op name
ORT_DOMAIN = "ai.onnx.contrib"  # where onnxruntime-extensions serves Python ops
TRT_ONLY_ATTRS = ("plugin_namespace", "plugin_version", "aot")


# --- the torch op the exporter sees ---------------------------------------------------------------------------


@torch.library.custom_op(schema.PLUGIN_ID, mutates_args=())
def _splat_op(x: torch.Tensor, flow: torch.Tensor, metric: torch.Tensor, mode: str) -> torch.Tensor:
    return accumulate(x, flow, metric, mode)


@_splat_op.register_fake
def _(x, flow, metric, mode):
    n, c, h, w = x.shape
    return x.new_empty((n, schema.out_channels(c, mode), h, w), dtype=torch.float32)


def splat_for_export(x, flow, metric, mode: str) -> torch.Tensor:
    """``splat`` in the form chosen by ``export_splat_mode``: [N,C,H,W] float32."""
    if _export_state.form is None:
        raise RuntimeError(
            "gimm_trt.plugins.splat is being exported without a splat form: wrap the export in "
            "`with gimm_trt.plugins.onnx_node.export_splat_mode('plugin' | 'portable') as table:` "
            "and pass custom_translation_table=table"
        )
    if _export_state.form == "portable":
        return normalise(portable_accumulate(x, flow, metric, mode), mode)
    if metric is None:
        metric = flow[:, :1]  # the node always has three inputs; "sum" never reads this one
    # the node takes float32 (schema.INPUT_DTYPES); no Cast where it already is one (TorchScript would record it)
    x, flow, metric = (t if t.dtype == torch.float32 else t.float() for t in (x, flow, metric))
    return normalise(torch.ops.gimm_trt.splat(x, flow, metric, mode), mode)


@contextlib.contextmanager
def export_splat_mode(form: str, aot: bool = True):
    """Make ``splat`` export as the custom node (``"plugin"``) or as standard ops (``"portable"``).

    Yields the dynamo exporter's ``custom_translation_table``; also registers the TorchScript exporter's
    symbolic for the block. Not reentrant with a different form.
    """
    if form not in FORMS:
        raise InputError(f"splat export form must be one of {FORMS}, got {form!r}")
    saved = (_export_state.form, _export_state.aot, _export_state.emit)
    _export_state.form, _export_state.aot, _export_state.emit = form, bool(aot), splat_for_export
    symbolic = form == "plugin"
    if symbolic:
        register_onnx_schema()
        torch.onnx.register_custom_op_symbolic(schema.PLUGIN_ID, _torchscript_symbolic, 1)
    try:
        yield translation_table() if symbolic else {}
    finally:
        _export_state.form, _export_state.aot, _export_state.emit = saved
        if symbolic:
            torch.onnx.unregister_custom_op_symbolic(schema.PLUGIN_ID, 1)


def node_attributes(mode: str, aot: bool = True) -> dict:
    """The node's attributes: the op's own (``mode``) and what TensorRT's ONNX parser reads."""
    return {
        schema.MODE_ATTR: schema.check_mode(mode),
        "plugin_namespace": schema.NAMESPACE,
        "plugin_version": str(schema.VERSION),
        "aot": int(aot),
    }


def translation_table() -> dict:
    """``custom_translation_table`` for ``torch.onnx.export(..., dynamo=True)``: the op -> our node."""
    from onnxscript import values

    register_onnx_schema()
    opset = values.Opset(ONNX_DOMAIN, schema.VERSION)

    def splat_node(x, flow, metric, mode: str):
        return getattr(opset, OP_TYPE)(x, flow, metric, **node_attributes(mode, _export_state.aot))

    return {torch.ops.gimm_trt.splat.default: splat_node}


def _torchscript_symbolic(g, x, flow, metric, mode):
    from torch.onnx import symbolic_helper

    mode = symbolic_helper._maybe_get_const(mode, "s")
    attrs = node_attributes(mode, _export_state.aot)
    kwargs = {f"{k}_{'i' if isinstance(v, int) else 's'}": v for k, v in attrs.items()}
    out = g.op(f"{ONNX_DOMAIN}::{OP_TYPE}", x, flow, metric, **kwargs)
    sizes = symbolic_helper._get_tensor_sizes(x)  # the output type must say CO channels, or later ops misfold
    if sizes is not None and sizes[1] is not None:
        sizes[1] = schema.out_channels(sizes[1], mode)
        return out.setType(x.type().with_dtype(torch.float32).with_sizes(sizes))
    return out.setType(x.type().with_dtype(torch.float32))


# --- the portable decomposition -------------------------------------------------------------------------------


def portable_accumulate(x, flow, metric, mode: str) -> torch.Tensor:
    """``accumulate`` with tensor ops that export to standard ONNX (``ScatterElements`` add, no ScatterND).

    x [N,C,H,W], flow [N,2,H,W], metric [N,1,H,W] -> [N,CO,H,W] float32 (CO as in ``schema.out_channels``).
    """
    from .reference import corners

    n, _, h, w = x.shape
    values = weighted_input(x, metric, mode).float()  # [N,CO,H,W]
    co = values.shape[1]
    weights, index, inside = corners(flow, h, w)  # [N,4,H,W] each
    index = torch.where(inside, index, torch.full_like(index, h * w))  # dropped -> the dump slot at h*w
    updates = (values.unsqueeze(2) * weights.unsqueeze(1)).reshape(n, co, 4 * h * w)
    index = index.reshape(n, 1, 4 * h * w).expand(n, co, 4 * h * w)
    out = torch.zeros(n, co, h * w + 1, device=x.device, dtype=torch.float32).scatter_add(2, index, updates)
    return out[:, :, : h * w].reshape(n, co, h, w)


# --- the node itself ------------------------------------------------------------------------------------------


def make_node(inputs, outputs, mode: str = schema.DEFAULT_MODE, name: str = None, aot: bool = True):
    """An ``onnx.NodeProto`` of the op: inputs (x, flow, metric) names, outputs (acc,) name."""
    import onnx

    if len(inputs) != len(schema.INPUTS) or len(outputs) != len(schema.OUTPUTS):
        raise InputError(f"the splat node takes inputs {schema.INPUTS} and outputs {schema.OUTPUTS}")
    return onnx.helper.make_node(
        OP_TYPE, list(inputs), list(outputs), name=name, domain=ONNX_DOMAIN, **node_attributes(mode, aot)
    )


def register_onnx_schema() -> None:
    """Register the op's ``onnx.defs.OpSchema`` once per process (onnxscript and the checker need it)."""
    import onnx
    from onnx.defs import OpSchema

    if onnx.defs.has(OP_TYPE, ONNX_DOMAIN):
        return
    floats = [{"float32": "tensor(float)", "float16": "tensor(float16)"}[d] for d in schema.INPUT_DTYPES]
    param = OpSchema.FormalParameter
    attr = OpSchema.Attribute
    string, integer = OpSchema.AttrType.STRING, OpSchema.AttrType.INT
    onnx.defs.register_schema(
        OpSchema(
            OP_TYPE,
            ONNX_DOMAIN,
            schema.VERSION,
            doc="Forward summation splatting; see gimm_trt.plugins.schema.",
            inputs=[param("x", "T"), param("flow", "U"), param("metric", "V")],
            outputs=[param("acc", "F")],
            type_constraints=[
                ("T", floats, "x"),
                ("U", floats, "flow"),
                ("V", floats, "metric"),
                ("F", ["tensor(float)"], "always float32"),
            ],
            attributes=[
                attr(schema.MODE_ATTR, string, "one of " + ", ".join(schema.MODES), required=True),
                attr("plugin_namespace", string, "TensorRT plugin namespace", required=False),
                attr("plugin_version", string, "TensorRT plugin version", required=False),
                attr("aot", integer, "1: TensorRT uses the ahead-of-time kernel", required=False),
            ],
        )
    )


# --- ONNX Runtime ---------------------------------------------------------------------------------------------

_ort_registered = False


def _register_ort_op() -> None:
    global _ort_registered
    if _ort_registered:
        return
    from onnxruntime_extensions import PyCustomOpDef, onnx_op

    @onnx_op(
        op_type=OP_TYPE,
        inputs=[PyCustomOpDef.dt_float] * 3,
        outputs=[PyCustomOpDef.dt_float],
        attrs={schema.MODE_ATTR: PyCustomOpDef.dt_string},
    )
    def _ort_splat(x, flow, metric, **attrs):
        mode = attrs[schema.MODE_ATTR]
        acc = accumulate(torch.from_numpy(x), torch.from_numpy(flow), torch.from_numpy(metric), mode, impl="torch")
        return acc.numpy()

    _ort_registered = True


def session_options(options=None):
    """``onnxruntime.SessionOptions`` (new or given) with the onnxruntime-extensions library and our op."""
    import onnxruntime
    from onnxruntime_extensions import get_library_path

    _register_ort_op()
    options = options or onnxruntime.SessionOptions()
    options.register_custom_ops_library(get_library_path())
    return options


def for_onnxruntime(model):
    """A copy of ``model`` (``onnx.ModelProto``) whose splat nodes run in ONNX Runtime with ``session_options()``.

    The nodes of the main graph (the exporters inline everything there) move to the ``ai.onnx.contrib`` domain,
    lose the TensorRT-only attributes and get float32 inputs (a ``Cast`` in front of each: the Python op is
    declared float32, and the kernel computes in float32 anyway).
    """
    import onnx

    model = onnx.ModelProto.FromString(model.SerializeToString())
    found = 0
    nodes = []
    for node in model.graph.node:
        if node.domain == ONNX_DOMAIN and node.op_type == OP_TYPE:
            found += 1
            cast_names = []
            for name, role in zip(node.input, schema.INPUTS):
                cast_names.append(f"{node.output[0]}__{role}_f32")
                nodes.append(
                    onnx.helper.make_node(
                        "Cast",
                        [name],
                        [cast_names[-1]],
                        to=onnx.TensorProto.FLOAT,
                        name=f"{node.name or node.output[0]}/cast_{role}",
                    )
                )
            keep = [a for a in node.attribute if a.name not in TRT_ONLY_ATTRS]
            del node.attribute[:]
            node.attribute.extend(keep)
            del node.input[:]
            node.input.extend(cast_names)
            node.domain = ORT_DOMAIN
        nodes.append(node)
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    if not found:
        raise InputError(f"no {ONNX_DOMAIN}::{OP_TYPE} node in the model")
    imports = [o for o in model.opset_import if o.domain not in (ONNX_DOMAIN, ORT_DOMAIN)]
    del model.opset_import[:]
    model.opset_import.extend(imports + [onnx.helper.make_opsetid(ORT_DOMAIN, 1)])
    return model
