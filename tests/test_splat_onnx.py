"""The splat op in ONNX: the custom node (with its ONNX Runtime kernel) and the portable graph, both exporters."""

import io

import numpy as np
import pytest
import torch

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

from gimm_trt import plugins  # noqa: E402
from gimm_trt.core.errors import InputError  # noqa: E402
from gimm_trt.plugins import onnx_node, schema  # noqa: E402

C, H, W = 16, 10, 12


class Splat(torch.nn.Module):
    """What the model does around the op: x [T,16,H,W], flow [T,2,H,W], metric [T,1,H,W]."""

    def __init__(self, mode=schema.DEFAULT_MODE):
        super().__init__()
        self.mode = mode

    def forward(self, x, flow, metric):
        return plugins.splat(x, flow, metric, mode=self.mode) * 2.0


def inputs(t, seed, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(t, C, H, W, generator=g)
    flow = torch.randn(t, 2, H, W, generator=g) * 3.0
    flow[0, 0, 0, :3] = torch.tensor([float("nan"), float("inf"), 40.0])  # skipped, skipped, off the image
    flow[-1, :, 4, 5] = torch.tensor([1.0, -2.0])  # an exact integer landing
    metric = torch.rand(t, 1, H, W, generator=g)
    metric[0, 0, 5:] = 0.0
    return tuple(a.to(dtype) for a in (x, flow, metric))


def export(model, args, form, dynamo=True):
    names = list(schema.INPUTS)
    with onnx_node.export_splat_mode(form) as table:
        if dynamo:
            steps = torch.export.Dim("T", max=8)
            program = torch.onnx.export(
                model.eval(),
                args,
                dynamo=True,
                custom_translation_table=table,
                opset_version=18,
                dynamic_shapes=tuple({0: steps} for _ in args),
                verbose=False,
            )
            return program.model_proto
        buf = io.BytesIO()
        torch.onnx.export(
            model.eval(),
            args,
            buf,
            dynamo=False,
            opset_version=18,
            input_names=names,
            output_names=["y"],
            dynamic_axes={n: {0: "T"} for n in names},
        )
        return onnx.load_from_string(buf.getvalue())


def session(model, custom):
    if custom:
        model = onnx_node.for_onnxruntime(model)
        options = onnx_node.session_options()
    else:
        options = ort.SessionOptions()
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def run(sess, args):
    feed = {i.name: a.numpy() for i, a in zip(sess.get_inputs(), args)}
    return sess.run(None, feed)[0]


def splat_nodes(model):
    return [n for n in model.graph.node if n.op_type == schema.OP_NAME]


def check_against_reference(sess, model_mode, steps, dtype=torch.float32):
    for t, seed in zip(steps, range(10, 20)):
        args = inputs(t, seed, dtype)
        got = run(sess, args)
        want = plugins.splat(*args, mode=model_mode, impl="torch") * 2.0
        assert got.shape == (t, C, H, W) and got.dtype == np.float32
        np.testing.assert_allclose(got, want.numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dynamo", [True, False], ids=["dynamo", "torchscript"])
def test_plugin_node(dynamo):
    model = export(Splat(), inputs(2, 0), "plugin", dynamo)
    (node,) = splat_nodes(model)
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    assert node.domain == schema.NAMESPACE and list(node.input) == list(schema.INPUTS)
    assert attrs == {"mode": b"linear-zeroeps", "plugin_namespace": b"gimm_trt", "plugin_version": b"1", "aot": 1}
    assert {(o.domain, o.version) for o in model.opset_import} >= {("", 18), (schema.NAMESPACE, schema.VERSION)}
    assert not [n for n in model.graph.node if n.op_type.startswith("Scatter")]
    check_against_reference(session(model, custom=True), "linear-zeroeps", steps=(2, 1, 5))


@pytest.mark.parametrize("dynamo", [True, False], ids=["dynamo", "torchscript"])
def test_portable_graph(dynamo):
    model = export(Splat(), inputs(2, 0), "portable", dynamo)
    ops = [n.op_type for n in model.graph.node]
    assert not splat_nodes(model) and all(n.domain in ("", "ai.onnx") for n in model.graph.node)
    assert "ScatterND" not in ops
    scatters = [n for n in model.graph.node if n.op_type == "ScatterElements"]
    assert scatters and all(
        onnx.helper.get_attribute_value(a) == b"add" for n in scatters for a in n.attribute if a.name == "reduction"
    )
    check_against_reference(session(model, custom=False), "linear-zeroeps", steps=(2, 3))


def test_fp16_inputs_and_other_modes():
    # fp16 latents, flow and metric reach the node through Casts to float32: it takes float32 only
    model = export(Splat("softmax-zeroeps"), inputs(2, 0, torch.float16), "plugin")
    (node,) = splat_nodes(model)
    types = {i.name: i.type.tensor_type.elem_type for i in model.graph.input}
    assert set(types.values()) == {onnx.TensorProto.FLOAT16}
    producers = {out: n for n in model.graph.node for out in n.output}
    casts = [producers[name] for name in node.input]
    assert [(n.op_type, onnx.helper.get_attribute_value(n.attribute[0])) for n in casts] == [
        ("Cast", onnx.TensorProto.FLOAT)
    ] * 3
    check_against_reference(session(model, custom=True), "softmax-zeroeps", steps=(2, 4), dtype=torch.float16)
    model = export(Splat("sum"), inputs(2, 0), "portable", dynamo=False)
    check_against_reference(session(model, custom=False), "sum", steps=(3,))


@pytest.mark.parametrize("mode", schema.MODES)
def test_hand_built_node(mode):
    """``make_node`` gives the accumulation (C+1 channels for the weighted modes), checked by onnx's checker."""
    onnx_node.register_onnx_schema()
    t, co = 2, schema.out_channels(C, mode)
    vi = onnx.helper.make_tensor_value_info
    graph = onnx.helper.make_graph(
        [onnx_node.make_node(schema.INPUTS, schema.OUTPUTS, mode, name="splat0")],
        "g",
        [
            vi("x", onnx.TensorProto.FLOAT, ["T", C, H, W]),
            vi("flow", onnx.TensorProto.FLOAT, ["T", 2, H, W]),
            vi("metric", onnx.TensorProto.FLOAT, ["T", 1, H, W]),
        ],
        [vi("acc", onnx.TensorProto.FLOAT, ["T", co, H, W])],
    )
    model = onnx.helper.make_model(
        graph, opset_imports=[onnx.helper.make_opsetid("", 18), onnx.helper.make_opsetid(schema.NAMESPACE, 1)]
    )
    onnx.checker.check_model(model, full_check=True)
    args = inputs(t, 3)
    got = run(session(model, custom=True), args)
    want = plugins.accumulate(*args, mode=mode, impl="torch")
    assert got.shape == (t, co, H, W)
    np.testing.assert_allclose(got, want.numpy(), rtol=1e-6, atol=1e-6)


def test_for_onnxruntime_rewrites_only_our_node():
    node = onnx_node.make_node(["a", "b", "c"], ["d"], "sum")
    vi = onnx.helper.make_tensor_value_info
    graph = onnx.helper.make_graph(
        [node],
        "g",
        [vi(n, onnx.TensorProto.FLOAT, [1, 1, 2, 2]) for n in "abc"],
        [vi("d", onnx.TensorProto.FLOAT, [1, 1, 2, 2])],
    )
    model = onnx.helper.make_model(
        graph, opset_imports=[onnx.helper.make_opsetid("", 18), onnx.helper.make_opsetid(schema.NAMESPACE, 1)]
    )
    out = onnx_node.for_onnxruntime(model)
    assert [n.op_type for n in out.graph.node] == ["Cast", "Cast", "Cast", schema.OP_NAME]
    assert out.graph.node[-1].domain == onnx_node.ORT_DOMAIN
    assert [a.name for a in out.graph.node[-1].attribute] == ["mode"]
    assert {o.domain for o in out.opset_import} == {"", onnx_node.ORT_DOMAIN}
    assert model.graph.node[0].domain == schema.NAMESPACE  # the input is left alone
    with pytest.raises(InputError, match="no gimm_trt::splat node"):
        onnx_node.for_onnxruntime(out)


def test_export_without_a_form_is_an_error():
    x, flow, metric = inputs(1, 0)
    with pytest.raises(RuntimeError, match="export_splat_mode"):
        onnx_node.splat_for_export(x, flow, metric, "linear-zeroeps")
    with pytest.raises(InputError, match="form"):
        with onnx_node.export_splat_mode("cuda"):
            pass
