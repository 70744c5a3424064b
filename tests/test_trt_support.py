"""The static check of exported graphs against TensorRT's ONNX parser (``gimm_trt.export.trt_support``).

Nodes the parser rejects or silently changes are injected into a small graph and each must be reported,
naming the node; graphs the parser takes must give nothing. Our own exports (R: plugin fp32, plugin fp16,
portable fp32; F, slow) must pass, and ``prepare`` (what gimm-export runs) must fail on a doctored one.
"""

import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from gimm_trt.core.errors import ExportError
from gimm_trt.export import trt_support
from gimm_trt.export.exporter import ExportOptions
from gimm_trt.model.spec import ModelSpec
from gimm_trt.plugins import onnx_node, schema

F32 = TensorProto.FLOAT


def make_model(nodes, *, inputs=(("x", F32, [1, 4, 8, 8]),), outputs=("y",), inits=(), opset=18, extra_opsets=()):
    """A model of ``nodes`` with typed graph inputs; outputs are declared without a type (inference fills in)."""
    graph = helper.make_graph(
        list(nodes),
        "g",
        [helper.make_tensor_value_info(n, t, s) for n, t, s in inputs],
        [helper.make_empty_tensor_value_info(n) for n in outputs],
        initializer=[numpy_helper.from_array(np.asarray(v), name) for name, v in inits],
    )
    opsets = [helper.make_opsetid("", opset), *(helper.make_opsetid(d, v) for d, v in extra_opsets)]
    return helper.make_model(graph, opset_imports=opsets)


def found(model, **kw) -> list:
    return trt_support.check_model(model, graph="g", **kw).findings


def only(model, node: str, *, versions=trt_support.TARGETS) -> trt_support.Finding:
    """The one finding of ``model``: it must name ``node`` and concern ``versions``."""
    fs = found(model)
    assert len(fs) == 1, [str(f) for f in fs]
    assert fs[0].node == node and fs[0].versions == tuple(versions), str(fs[0])
    assert f"node {node!r}" in str(fs[0])
    return fs[0]


AXES = ("axes", np.array([2, 3], np.int64))


# --- what the parser takes gives nothing -------------------------------------------------------------------------


def test_supported_graph_has_no_findings():
    grid = ("grid", np.zeros((1, 8, 8, 2), np.float32))
    scales = ("scales", np.array([1, 1, 2, 2], np.float32))
    nodes = [
        helper.make_node("Relu", ["x"], ["r"], name="relu"),
        helper.make_node(
            "GridSample", ["r", "grid"], ["s"], name="gs", mode="bilinear", padding_mode="border", align_corners=1
        ),
        helper.make_node("ReduceMean", ["s", "axes"], ["m"], name="mean", keepdims=1),
        helper.make_node(
            "Resize", ["m", "", "scales"], ["y"], name="up", mode="linear", coordinate_transformation_mode="half_pixel"
        ),
    ]
    report = trt_support.check_model(make_model(nodes, inits=[grid, AXES, scales]), graph="g")
    assert report.findings == []
    assert report.ops["GridSample"]["attributes"]["mode"] == ["bilinear"]
    assert report.ops["GridSample"]["input_types"] == ["FP32,FP32"]
    assert report.ops["Relu"] == {"count": 1, "opset": 18, "attributes": {}, "input_types": ["FP32"]}


# --- ops the parser lists as unsupported -------------------------------------------------------------------------


@pytest.mark.parametrize("op, inputs", [("Unique", ["x"]), ("Col2Im", ["x", "image_shape", "block_shape"])])
def test_unsupported_ops(op, inputs):
    inits = [("image_shape", np.array([4, 4], np.int64)), ("block_shape", np.array([2, 2], np.int64))]
    model = make_model([helper.make_node(op, inputs, ["y"], name="bad")], inits=inits)
    f = only(model, "bad")
    assert f"lists {op} as unsupported" in f.reason


def test_op_missing_from_the_table():
    f = only(make_model([helper.make_node("MadeUpOp", ["x"], ["y"], name="odd")]), "odd")
    assert "not in the parser's operator table" in f.reason


def test_op_added_after_10_9_concerns_10_only():
    # RMSNormalization (opset 23) came with TensorRT 10.15; the opset is also past 10.x's documented range
    model = make_model(
        [helper.make_node("RMSNormalization", ["x", "scale"], ["y"], name="rms")],
        inits=[("scale", np.ones(8, np.float32))],
        opset=23,
    )
    fs = found(model)
    assert {(f.node, f.versions) for f in fs} == {("rms", ("10",)), ("-", ("10",))}, [str(f) for f in fs]
    assert trt_support.check_model(model, targets=("11",)).findings == []


# --- attribute values and constant inputs -------------------------------------------------------------------------


def test_scatternd_with_a_reduction():
    inits = [("idx", np.array([[0]], np.int64)), ("upd", np.zeros((1, 4, 8, 8), np.float32))]
    bad = make_model(
        [helper.make_node("ScatterND", ["x", "idx", "upd"], ["y"], name="snd", reduction="add")], inits=inits
    )
    assert "reduction 'add'" in only(bad, "snd").reason
    ok = make_model(
        [helper.make_node("ScatterND", ["x", "idx", "upd"], ["y"], name="snd", reduction="none")], inits=inits
    )
    assert found(ok) == []


def test_scatter_elements_reduction_needs_int64_indices():
    idx32 = ("idx", np.zeros((1, 4, 8, 8), np.int32))
    upd = ("upd", np.zeros((1, 4, 8, 8), np.float32))
    model = make_model(
        [helper.make_node("ScatterElements", ["x", "idx", "upd"], ["y"], name="sct", axis=1, reduction="add")],
        inits=[idx32, upd],
    )
    assert "INT64 indices, got INT32" in only(model, "sct").reason
    idx64 = ("idx", np.zeros((1, 4, 8, 8), np.int64))
    model = make_model(
        [helper.make_node("ScatterElements", ["x", "idx", "upd"], ["y"], name="sct", axis=1, reduction="add")],
        inits=[idx64, upd],
    )
    assert found(model) == []


@pytest.mark.parametrize(
    "opset, mode, padding, expect",
    [
        (20, "linear", "zeros", "mode 'linear' (the opset-20 spelling)"),
        (20, "cubic", "zeros", "mode 'cubic' (the opset-20 spelling)"),
        (16, "bilinear", "mirror", "padding_mode 'mirror'"),
        (20, "nearest", "zeros", None),
        (16, "bicubic", "reflection", None),
    ],
)
def test_gridsample_modes_across_opsets(opset, mode, padding, expect):
    model = make_model(
        [helper.make_node("GridSample", ["x", "grid"], ["y"], name="gs", mode=mode, padding_mode=padding)],
        inits=[("grid", np.zeros((1, 8, 8, 2), np.float32))],
        opset=opset,
    )
    if expect is None:
        assert found(model) == []
    else:
        assert expect in only(model, "gs").reason


def test_gridsample_rank_5():
    model = make_model(
        [helper.make_node("GridSample", ["x", "grid"], ["y"], name="gs3d")],
        inputs=[("x", F32, [1, 2, 4, 8, 8])],
        inits=[("grid", np.zeros((1, 4, 8, 8, 3), np.float32))],
        opset=20,
    )
    assert "rank 4 only" in only(model, "gs3d").reason


@pytest.mark.parametrize(
    "attrs, expect",
    [
        ({"mode": "cubic"}, "mode 'cubic' is outside the parser's list"),
        (
            {"mode": "linear", "coordinate_transformation_mode": "tf_crop_and_resize"},
            "coordinate_transformation_mode 'tf_crop_and_resize'",
        ),
        (
            {"mode": "linear", "coordinate_transformation_mode": "half_pixel_symmetric"},
            "coordinate_transformation_mode 'half_pixel_symmetric'",
        ),
        ({"mode": "nearest", "nearest_mode": "bankers"}, "nearest_mode 'bankers'"),
        ({"mode": "linear", "antialias": 1}, "antialias=1"),
        ({"mode": "linear", "keep_aspect_ratio_policy": "not_larger"}, "keep_aspect_ratio_policy 'not_larger'"),
    ],
)
def test_resize_outside_the_list(attrs, expect):
    model = make_model(
        [helper.make_node("Resize", ["x", "", "scales"], ["y"], name="rs", **attrs)],
        inits=[("scales", np.array([1, 1, 2, 2], np.float32))],
        opset=19,
    )
    assert expect in only(model, "rs").reason


def test_resize_with_computed_scales_and_partial_axes():
    nodes = [
        helper.make_node("Mul", ["s", "two"], ["scales"], name="mul"),
        helper.make_node("Resize", ["x", "", "scales"], ["y"], name="rs", mode="linear", axes=[2, 3]),
    ]
    model = make_model(
        nodes,
        inputs=[("x", F32, [1, 4, 8, 8]), ("s", F32, [2])],
        inits=[("two", np.array([2.0], np.float32))],
        opset=19,
    )
    assert "iota vector" in only(model, "rs").reason


@pytest.mark.parametrize("op", ["ReduceMean", "ReduceSum", "ReduceMax"])
def test_reduce_axes_must_be_an_initializer(op):
    computed = make_model(
        [
            helper.make_node("Shape", ["x"], ["shp"], name="shape", start=2),
            helper.make_node(op, ["x", "shp"], ["y"], name="red"),
        ]
    )
    assert "input 1 (axes) must be an initializer or a Constant" in only(computed, "red").reason
    from_constant = make_model(
        [
            helper.make_node(
                "Constant", [], ["axes"], name="c", value=numpy_helper.from_array(np.array([2, 3], np.int64))
            ),
            helper.make_node(op, ["x", "axes"], ["y"], name="red"),
        ]
    )
    assert found(from_constant) == []


def test_unsqueeze_axes_from_an_input_value():
    model = make_model(
        [helper.make_node("Unsqueeze", ["x", "ax"], ["y"], name="unsq")],
        inputs=[("x", F32, [1, 4, 8, 8]), ("ax", TensorProto.INT64, [1])],
    )
    assert "must resolve to a constant" in only(model, "unsq").reason
    # computed from a shape only: resolvable when the engine is built
    shaped = make_model(
        [
            helper.make_node("Shape", ["x"], ["shp"], name="shape", start=0, end=1),
            helper.make_node("Unsqueeze", ["x", "shp"], ["y"], name="unsq"),
        ]
    )
    assert found(shaped) == []


def test_cumsum_axis_must_be_an_initializer():
    nodes = [
        helper.make_node("Shape", ["x"], ["shp"], name="shape", start=3),
        helper.make_node("Squeeze", ["shp"], ["ax"], name="sq"),
        helper.make_node("CumSum", ["x", "ax"], ["y"], name="cs"),
    ]
    assert "input 1 (axis) must be an initializer" in only(make_model(nodes), "cs").reason


def test_outputs_the_parser_does_not_make():
    nodes = [helper.make_node("LayerNormalization", ["x", "scale"], ["y", "mean"], name="ln", axis=-1)]
    model = make_model(nodes, inits=[("scale", np.ones(8, np.float32))], outputs=("y", "mean"))
    assert "uses output(s) 'mean': the parser makes only the first 1" in only(model, "ln").reason
    nodes = [helper.make_node("LayerNormalization", ["x", "scale"], ["y"], name="ln", axis=-1)]
    assert found(make_model(nodes, inits=[("scale", np.ones(8, np.float32))])) == []


def test_unsupported_input_type():
    model = make_model([helper.make_node("Floor", ["i"], ["y"], name="fl")], inputs=[("i", TensorProto.INT64, [4])])
    assert "INT64 input 'i': the parser supports Floor for FP32, FP16, BF16" in only(model, "fl").reason


# --- shapes and graph level ---------------------------------------------------------------------------------------


def test_input_without_a_shape_is_imported_as_a_scalar():
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"], name="relu")],
        "g",
        [helper.make_tensor_value_info("x", F32, None)],
        [helper.make_empty_tensor_value_info("y")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    f = only(model, "x")
    assert f.op == "input" and "adds it as a scalar" in f.reason


def test_opset_past_the_10_range():
    f = only(make_model([helper.make_node("Relu", ["x"], ["y"], name="relu")], opset=21), "-", versions=("10",))
    assert "opset 21 is outside the parser's range 9..20" in f.reason


# --- custom ops ------------------------------------------------------------------------------------------------------


def test_unknown_custom_op():
    model = make_model(
        [helper.make_node("FancySplat", ["x"], ["y"], name="fancy", domain="com.example")],
        extra_opsets=[("com.example", 1)],
    )
    assert "unknown custom op com.example::FancySplat" in only(model, "fancy").reason


def test_custom_op_with_a_standard_name():
    model = make_model(
        [helper.make_node("Gelu", ["x"], ["y"], name="msgelu", domain="com.microsoft")],
        extra_opsets=[("com.microsoft", 1)],
    )
    assert "imports it as the ONNX Gelu" in only(model, "msgelu").reason


def _splat_model(metric_type=F32, **attrs):
    node = onnx_node.make_node(["x", "flow", "metric"], ["y"], name="splat")
    for name, value in attrs.items():
        kept = [a for a in node.attribute if a.name != name]
        del node.attribute[:]
        node.attribute.extend(kept)
        if value is not None:
            node.attribute.append(helper.make_attribute(name, value))
    return make_model(
        [node],
        inputs=[("x", F32, [1, 4, 8, 8]), ("flow", F32, [1, 2, 8, 8]), ("metric", metric_type, [1, 1, 8, 8])],
        extra_opsets=[(schema.NAMESPACE, schema.VERSION)],
    )


def test_our_splat_node():
    report = trt_support.check_model(_splat_model(), graph="g")
    assert report.findings == []
    assert report.ops["gimm_trt::splat"]["input_types"] == ["FP32,FP32,FP32"]
    fp16 = _splat_model(metric_type=TensorProto.FLOAT16)
    assert "FP16 input 'metric': the plugin takes float32" in only(fp16, "splat").reason
    assert report.ops["gimm_trt::splat"]["attributes"]["mode"] == [schema.DEFAULT_MODE]
    # 10.9 finds the plugin by plugin_namespace only; 10.10+ also by the node's domain
    assert "plugin_namespace None" in only(_splat_model(plugin_namespace=None), "splat", versions=("10",)).reason
    assert "mode 'bilinear' is none of" in only(_splat_model(mode="bilinear"), "splat").reason
    assert "plugin_version '2'" in only(_splat_model(plugin_version="2"), "splat").reason


# --- the API an export uses ---------------------------------------------------------------------------------------


def _fake_export(path: Path, model) -> Path:
    import json

    path.mkdir(parents=True)
    onnx.save(model, str(path / "motion.onnx"))
    (path / "manifest.json").write_text(
        json.dumps({"schema": "gimm-export/1", "stages": {"motion": {"file": "motion.onnx"}}})
    )
    return path


def test_require_parsable_names_node_and_respects_targets(tmp_path):
    bad = make_model([helper.make_node("Unique", ["x"], ["y"], name="uniq")])
    with pytest.raises(ExportError, match=r"motion: node 'uniq' \(Unique\): the parser lists Unique as unsupported"):
        trt_support.require_parsable(_fake_export(tmp_path / "a", bad), targets=("11",))
    only10 = _splat_model(plugin_namespace=None)
    notes = []
    kept = trt_support.require_parsable(_fake_export(tmp_path / "b", only10), targets=("11",), log=notes.append)
    assert [f.versions for f in kept] == [("10",)] and "plugin_namespace" in notes[0]
    with pytest.raises(ExportError, match="plugin_namespace"):
        trt_support.require_parsable(tmp_path / "b", targets=("10", "11"))


def test_table_records_its_sources():
    table = trt_support.load_table()
    about = " ".join(table["about"])
    for commit in (
        "7c51a63a719180eb5160c874c111746f3fb46a6b",
        "fa5aa9f61e7781d2ca8f5351d42c1f19525a6124",
        "96e781103cfc4adf4a6bb557e94bac8e693f6f4c",
    ):
        assert commit in about
    ops = table["ops"]
    assert not ops["Unique"]["10"]["supported"] and not ops["Col2Im"]["11"]["supported"]
    assert "reduction" in ops["ScatterND"]["11"]["restrictions"]
    assert ops["Swish"]["11"]["supported"] and not ops["Swish"]["10"]["supported"]


# --- our own exports pass -----------------------------------------------------------------------------------------

R_MODEL = ModelSpec(variant="R", random_weights=True)


@pytest.mark.parametrize("key", ["plugin-fp32", "plugin-fp16", "portable-fp32"])
def test_our_r_exports_pass(r_export_forms, key):
    reports = trt_support.check_export(r_export_forms[key])
    assert trt_support.findings(reports) == [], trt_support.format_reports(reports)
    motion = reports["motion"].ops
    assert ("gimm_trt::splat" in motion) == key.startswith("plugin")
    if key.startswith("portable"):
        assert motion["ScatterElements"]["attributes"]["reduction"] == ["add"]
        assert "ScatterND" not in motion
    assert set(reports["flow"].ops["GridSample"]["attributes"]["mode"]) == {"bilinear"}
    if key.endswith("fp16"):
        assert any("FP16" in t for e in reports["flow"].ops.values() for t in e["input_types"])


def test_prepare_runs_the_check(r_export_forms, tmp_path, monkeypatch):
    """gimm-export's ``prepare``: an export the parser takes goes through; a doctored one is an ExportError
    naming the node (the export directory itself stays)."""
    from gimm_trt.engines import prepare as prepare_mod

    # the last export made in that directory: reused as it is
    good = prepare_mod.prepare(
        ExportOptions(model=R_MODEL, splat="portable", resolution="256x128"), r_export_forms["portable-fp32"].parent
    )
    assert good.parser_notes == []
    doctored = shutil.copytree(r_export_forms["plugin-fp32"], tmp_path / "doctored")
    model = onnx.load(str(doctored / "motion.onnx"))
    node = next(n for n in model.graph.node if n.op_type == "GridSample")
    for attr in node.attribute:
        if attr.name == "mode":
            attr.s = b"linear"
    onnx.save(model, str(doctored / "motion.onnx"))
    monkeypatch.setattr(prepare_mod, "export", lambda *a, **k: doctored)
    with pytest.raises(ExportError, match=rf"motion: node '{node.name}' \(GridSample\): mode 'linear'"):
        prepare_mod.prepare(ExportOptions(model=R_MODEL, resolution="256x128"), tmp_path / "unused")
    assert (doctored / "manifest.json").is_file()


@pytest.mark.slow
def test_our_f_export_passes(shared_export):
    path = shared_export("F")
    reports = trt_support.check_export(path)
    assert trt_support.findings(reports) == [], trt_support.format_reports(reports)
    assert reports["flow"].ops  # FlowFormer's graph was read
