"""The parser table's TensorRT-RTX column held against the real TensorRT-RTX parser, and gimm-doctor's
``--engine tensorrt-rtx``.

Every node of our R graphs (plugin fp32 and fp16, portable fp32; F, slow) is either parsed by the real parser or
rejected by it (``rtx_parser`` cuts a rejected node out and parses on), and the table must flag exactly the
rejected ones. Where they differ the parser is right and the table is fixed.
"""

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from test_doctor import run_doctor  # the doctor in a subprocess, as its own tests run it

from gimm_trt.diagnostics import doctor, rtx_parser
from gimm_trt.export import trt_support

pytestmark = pytest.mark.skipif(rtx_parser.unavailable() is not None, reason=str(rtx_parser.unavailable()))
RTX = (trt_support.RTX,)


def _signature(node) -> str:
    """What the table tells apart for a node: op, the attributes its rules read, the input types."""
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    picked = {k: v for k, v in attrs.items() if k in ("reduction", "mode", "padding_mode")}
    return f"{node.domain + '::' if node.domain else ''}{node.op_type} {picked}"


def _compare(path: Path, stage: str) -> tuple:
    """(nodes the parser rejects, nodes the table flags, signatures where they disagree) of one graph."""
    model = onnx.load(str(path))
    rejected = {(r.node, r.op) for r in rtx_parser.parse_model(model, graph=stage)}
    flagged = {(f.node, f.op) for f in trt_support.check_model(model, graph=stage, targets=RTX).findings}
    by_name = {n.name: n for n in model.graph.node}
    differ = sorted({_signature(by_name[name]) for name, _ in rejected ^ flagged if name in by_name})
    return rejected, flagged, differ


@pytest.mark.parametrize("key", ["plugin-fp32", "plugin-fp16", "portable-fp32"])
@pytest.mark.parametrize("stage", ["flow", "motion", "synthesis"])
def test_table_agrees_with_the_parser_on_r(r_export_forms, key, stage):
    rejected, flagged, differ = _compare(r_export_forms[key] / f"{stage}.onnx", stage)
    assert rejected == flagged, f"table and parser disagree on: {differ}"
    if stage != "motion":
        assert rejected == set()
    elif key.startswith("plugin"):
        assert rejected == {("node_splat", "gimm_trt::splat"), ("node_splat_1", "gimm_trt::splat")}
    else:
        assert {op for _, op in rejected} == {"ScatterElements"} and len(rejected) == 2


@pytest.mark.slow
def test_table_agrees_with_the_parser_on_f(shared_export):
    path = shared_export("F")
    for stage in ("flow", "motion", "synthesis"):
        rejected, flagged, differ = _compare(path / f"{stage}.onnx", stage)
        assert rejected == flagged, f"{stage}: table and parser disagree on: {differ}"
        assert {op for _, op in rejected} == ({"gimm_trt::splat"} if stage == "motion" else set())


# --- the parser wrapper on small graphs ----------------------------------------------------------------------------


def _model(nodes, inits=()):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8])
    graph = helper.make_graph(nodes, "g", [x], [y], initializer=[numpy_helper.from_array(v, n) for n, v in inits])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def test_every_rejected_node_is_named_and_the_rest_parsed():
    idx = ("idx", np.zeros((1, 4, 8, 8), np.int64))
    nodes = [
        helper.make_node("Relu", ["x"], ["a"], name="ok0"),
        helper.make_node("ScatterElements", ["a", "idx", "a"], ["b"], name="scatter", reduction="add"),
        helper.make_node("Relu", ["b"], ["c"], name="ok1"),
        helper.make_node("ScatterElements", ["c", "idx", "c"], ["d"], name="plain", reduction="none"),
        helper.make_node("ScatterElements", ["d", "idx", "d"], ["y"], name="scatter_max", reduction="max"),
    ]
    rejected = rtx_parser.parse_model(_model(nodes, [idx]), graph="g")
    assert [(r.node, r.op) for r in rejected] == [("scatter", "ScatterElements"), ("scatter_max", "ScatterElements")]
    assert all("Unsupported reduction type" in r.reason for r in rejected)
    assert str(rejected[0]).startswith("g: node 'scatter' (ScatterElements): Unsupported reduction type")
    fs = trt_support.check_model(_model(nodes, [idx]), graph="g", targets=trt_support.COLUMNS).findings
    assert {f.node: f.versions for f in fs} == {"scatter": RTX, "scatter_max": RTX}
    assert rtx_parser.parse_model(_model([helper.make_node("Relu", ["x"], ["y"], name="r")])) == []


# --- gimm-doctor --engine tensorrt-rtx -----------------------------------------------------------------------------


def test_doctor_runs_the_real_parser(r_export_forms, tmp_path):
    import tensorrt_rtx

    proc = run_doctor(
        "--export", r_export_forms["portable-fp32"], "--engine", "tensorrt-rtx", "--json", "d.json", cwd=tmp_path
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr[-2000:]
    assert "motion: node 'node_scatter_add' (ScatterElements): Unsupported reduction type" in proc.stdout
    assert f"tensorrt_rtx           {tensorrt_rtx.__version__}" in proc.stdout
    doc = json.loads((tmp_path / "d.json").read_text())
    assert (
        doc["versions"]["tensorrt_rtx"] == tensorrt_rtx.__version__
        and doc["versions"]["tensorrt_rtx_unavailable"] is None
    )
    assert doc["export"]["engine"] == "tensorrt-rtx"
    (check,) = doc["checks"]
    assert check["name"] == "parser_rtx" and check["status"] == "fail"
    assert {(r["node"], r["op"]) for r in check["data"]["rejections"]} == {
        ("node_scatter_add", "ScatterElements"),
        ("node_scatter_add_1", "ScatterElements"),
    }
    # the default engine keeps the static check of TensorRT 10.9+/11.x, which takes this export
    proc = run_doctor("--export", r_export_forms["portable-fp32"], cwd=tmp_path)
    assert proc.returncode == 0 and "PASS  parser_static" in proc.stdout, proc.stdout + proc.stderr[-2000:]


def test_doctor_checks_what_tensorrt_rtx_builds(r_export_forms):
    """A plugin-form export: TensorRT-RTX builds its motion stage as the parts around the splat nodes, and the
    real parser takes every node of them."""
    doc = doctor.run_checks(device="cpu", export_dir=r_export_forms["plugin-fp32"], engine="tensorrt-rtx")
    (check,) = doc["checks"]
    assert check["name"] == "parser_rtx" and check["status"] == "pass", check
    assert set(doc["export"]["graphs"]) == {"flow", "motion.0", "motion.1", "synthesis"}


def test_doctor_falls_back_to_the_table_without_tensorrt_rtx(r_export_forms, monkeypatch):
    monkeypatch.setattr(rtx_parser, "unavailable", lambda: "tensorrt_rtx is not installed (pip install tensorrt-rtx)")
    doc = doctor.run_checks(device="cpu", export_dir=r_export_forms["portable-fp32"], engine="tensorrt-rtx")
    (check,) = doc["checks"]
    assert check["name"] == "parser_static" and check["status"] == "fail"
    assert {f["node"] for f in check["data"]["findings"]} == {"node_scatter_add", "node_scatter_add_1"}
    doc = doctor.run_checks(device="cpu", export_dir=r_export_forms["plugin-fp32"], engine="tensorrt-rtx")
    assert doc["checks"][0]["status"] == "pass"  # the table on the parts: no splat node left
    assert doc["versions"]["tensorrt_rtx"] is None
    assert "- (tensorrt_rtx is not installed" in doctor.format_table(doc)
    with pytest.raises(ValueError, match="applies to the check of an export directory"):
        doctor.run_checks(device="cpu", engine="tensorrt-rtx")
