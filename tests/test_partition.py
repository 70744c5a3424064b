"""The motion graph cut at its splat nodes: ONNX Runtime parts + the torch splat between them == the whole graph."""

import json
import math

import numpy as np
import pytest
import torch

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")
pytest.importorskip("onnxruntime_extensions")

from gimm_trt.core.errors import ExportError, ExportMissingError  # noqa: E402
from gimm_trt.core.files import sha256_file  # noqa: E402
from gimm_trt.export import partition as part_mod  # noqa: E402
from gimm_trt.export.ort import ort_session, part_runner  # noqa: E402
from gimm_trt.plugins import accumulate, onnx_node  # noqa: E402

CPU = ["CPUExecutionProvider"]
H, W = 128, 256  # the processing size of a 256x128 export at ds 1


@pytest.fixture(scope="module")
def exports(r_exports):
    """The session's R exports (fp32, and fp16 converted from its graphs) at 256x128."""
    return r_exports


def torch_splat(x, flow, metric, mode):
    return accumulate(x, flow, metric, mode, impl="torch")


def flow_pair(h=H, w=W):
    """A smooth synthetic pair: a rotation and zoom about the centre plus a shift (some pixels land outside),
    the backward flow nearly its negative."""
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    cy, cx = (h - 1) / 2, (w - 1) / 2
    a, zoom = math.radians(4.0), 1.03
    fx = zoom * (math.cos(a) * (xs - cx) - math.sin(a) * (ys - cy)) + cx - xs + 2.3
    fy = zoom * (math.sin(a) * (xs - cx) + math.cos(a) * (ys - cy)) + cy - ys - 1.7
    flow01 = torch.stack([fx, fy]).unsqueeze(0)
    ripple = 0.4 * torch.sin(xs / 9.0) * torch.cos(ys / 7.0)
    flow10 = -flow01 + ripple
    return flow01.contiguous(), flow10.contiguous()


def motion_inputs(steps: int) -> dict:
    flow01, flow10 = flow_pair()
    return {"flow01": flow01, "flow10": flow10, "t": torch.linspace(0.2, 0.8, steps)}


def whole(export_dir, inputs: dict) -> np.ndarray:
    """flowt of the whole plugin-form graph in ONNX Runtime (the splat node as our registered custom op)."""
    session = ort_session(export_dir / "motion.onnx", providers=CPU)
    (flowt,) = session.run(None, {k: v.numpy() for k, v in inputs.items()})
    return flowt


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
@pytest.mark.parametrize("steps", [1, 3])
def test_parts_with_torch_splat_equal_the_whole_graph(exports, precision, steps):
    export_dir = exports[precision]
    part_mod.write_parts(export_dir)
    plan = part_mod.load_plan(export_dir)
    inputs = motion_inputs(steps)
    got = part_mod.run_partitioned(plan, part_runner(plan, export_dir, providers=CPU), torch_splat, inputs)
    ref = whole(export_dir, inputs)
    assert got["flowt"].shape == (steps, 2, H, W) == ref.shape
    assert np.abs(ref).max() > 1.0  # a flow field, not zeros that would match anything
    diff = np.abs(got["flowt"].numpy() - ref).max()
    print(f"{precision} T={steps}: max |parts - whole| = {diff:.3g}")
    assert diff <= 1e-6


def test_motion_plan_structure(exports):
    """part0 -> two splats side by side -> part1; parts hold standard ops only and pass the checks."""
    for precision, export_dir in exports.items():
        source = onnx.load(str(export_dir / "motion.onnx"))
        plan = part_mod.partition_graph(source)
        assert [s.kind for s in plan.steps] == ["part", "splat", "splat", "part"], precision
        assert [p.file for p in plan.parts] == ["motion.part0.onnx", "motion.part1.onnx"]
        assert {s.mode for s in plan.splats} == {"linear-zeroeps"}
        splat_nodes = [n for n in source.graph.node if n.domain == "gimm_trt"]
        assert [(tuple(n.input), n.output[0]) for n in splat_nodes] == [(s.inputs, s.output) for s in plan.splats]
        assert plan.inputs == ("flow01", "flow10", "t") and plan.outputs == ("flowt",)
        assert set(plan.parts[1].inputs) >= {s.output for s in plan.splats}
        used = set()
        for step in plan.parts:
            model = step.model
            assert all(n.domain in ("", "ai.onnx") for n in model.graph.node), step.file
            assert not any(n.op_type in ("splat", "ScatterElements", "ScatterND") for n in model.graph.node)
            onnx.checker.check_model(model, full_check=True)
            onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True, data_prop=True)
            read = {name for n in model.graph.node for name in n.input}
            inits = {i.name for i in model.graph.initializer}
            assert inits <= read, f"{step.file} keeps initializers it does not read"
            used |= inits
        assert used == {i.name for i in source.graph.initializer}  # every weight lands in some part
        for name, desc in plan.tensors.items():  # T stays symbolic, and only float tensors cross
            assert desc["dtype"] in ("float32", "float16"), (name, desc)
            assert [d for d in desc["shape"] if isinstance(d, str)] in ([], ["T"]), (name, desc)
        assert plan.tensors["splat"]["shape"] == ["T", 17, H, W]
        kept = {n.name for p in plan.parts for n in p.model.graph.node}
        assert kept == {n.name for n in source.graph.node if n.domain != "gimm_trt"}  # no node lost


def test_in_memory_plan_runs_like_the_files(exports):
    export_dir = exports["fp32"]
    plan = part_mod.partition_graph(onnx.load(str(export_dir / "motion.onnx")))
    inputs = motion_inputs(2)
    got = part_mod.run_partitioned(plan, part_runner(plan, providers=CPU), torch_splat, inputs)["flowt"]
    assert np.abs(got.numpy() - whole(export_dir, inputs)).max() <= 1e-6


def test_write_parts_reuses_and_repairs(exports, monkeypatch):
    export_dir = exports["fp32"]
    paths = part_mod.write_parts(export_dir)
    assert [p.name for p in paths] == ["motion.part0.onnx", "motion.part1.onnx", "motion.parts.json"]
    data = json.loads(paths[-1].read_text())
    assert data["source_sha256"] == sha256_file(export_dir / "motion.onnx")
    written = []
    real = part_mod.atomic_write
    monkeypatch.setattr(part_mod, "atomic_write", lambda path, data: written.append(path.name) or real(path, data))
    assert part_mod.write_parts(export_dir) == paths and written == []  # up to date: nothing written
    paths[1].write_bytes(b"damaged")
    part_mod.write_parts(export_dir)
    assert written == ["motion.part0.onnx", "motion.part1.onnx", "motion.parts.json"]
    onnx.checker.check_model(onnx.load(str(paths[1])), full_check=True)


def test_load_plan_errors_are_one_line(tmp_path):
    with pytest.raises(ExportMissingError, match="motion.parts.json is missing; write it with") as missing:
        part_mod.load_plan(tmp_path)
    (tmp_path / "motion.parts.json").write_text("{not json")
    with pytest.raises(ExportError, match="is not a partition plan") as damaged:
        part_mod.load_plan(tmp_path)
    with pytest.raises(ExportMissingError, match="motion.onnx is missing; run gimm-export first"):
        part_mod.write_parts(tmp_path)
    assert "\n" not in str(missing.value) + str(damaged.value)


# --- small hand-made graphs: no splat, and splats in series ---------------------------------------------------


def _value(name, shape, dtype=onnx.TensorProto.FLOAT):
    return onnx.helper.make_tensor_value_info(name, dtype, shape)


def _model(nodes, inputs, outputs, initializers=()):
    graph = onnx.helper.make_graph(nodes, "g", inputs, outputs, initializer=list(initializers))
    opsets = [onnx.helper.make_opsetid("", 18), onnx.helper.make_opsetid("gimm_trt", 1)]
    model = onnx.helper.make_model(graph, opset_imports=opsets, ir_version=9)
    onnx_node.register_onnx_schema()
    return onnx.shape_inference.infer_shapes(model)


def _run_whole(model, feeds: dict) -> np.ndarray:
    custom = any(n.domain == "gimm_trt" for n in model.graph.node)
    options = onnx_node.session_options() if custom else ort.SessionOptions()
    source = onnx_node.for_onnxruntime(model) if custom else model
    session = ort.InferenceSession(source.SerializeToString(), options, providers=CPU)
    return session.run(None, {k: v.numpy() for k, v in feeds.items()})[0]


def test_graph_without_splat_is_one_part():
    scale = onnx.numpy_helper.from_array(np.array([1.5], dtype=np.float32), "scale")
    nodes = [
        onnx.helper.make_node("Mul", ["x", "scale"], ["y"]),
        onnx.helper.make_node("Relu", ["y"], ["z"]),
        onnx.helper.make_node("Shape", ["z"], ["s"]),  # an unused side branch is dropped
    ]
    model = _model(nodes, [_value("x", ["T", 4])], [_value("z", ["T", 4])], [scale])
    plan = part_mod.partition_graph(model, stage="flow")
    assert [s.kind for s in plan.steps] == ["part"] and plan.parts[0].file == "flow.part0.onnx"
    part = plan.parts[0]
    assert (part.inputs, part.outputs) == (("x",), ("z",))
    assert [n.op_type for n in part.model.graph.node] == ["Mul", "Relu"]
    x = torch.randn(5, 4)
    got = part_mod.run_partitioned(plan, part_runner(plan, providers=CPU), torch_splat, {"x": x})["z"]
    assert np.array_equal(got.numpy(), _run_whole(model, {"x": x}))


def test_splats_in_series_and_shape_arithmetic():
    """Two splat levels (three parts), a sum-mode splat, and T read off an input in two parts: recomputed in
    each, never passed between them."""
    consts = {"one": [1], "two": [2], "dims": [1, 1, 1]}
    inits = [onnx.numpy_helper.from_array(np.array(v, dtype=np.int64), k) for k, v in consts.items()]
    inits.append(onnx.numpy_helper.from_array(np.array([0.5], dtype=np.float32), "half"))
    nodes = [
        onnx.helper.make_node("Relu", ["x"], ["xr"]),
        onnx.helper.make_node("Slice", ["flow", "one", "two", "one"], ["metric"]),  # channel 1 as the metric
        onnx.helper.make_node("Abs", ["metric"], ["w"]),
        onnx_node.make_node(["xr", "flow", "w"], ["acc0"], mode="linear-zeroeps", name="first"),
        onnx.helper.make_node("Shape", ["x"], ["shape"], start=0, end=1),  # [T]
        onnx.helper.make_node("Concat", ["shape", "dims"], ["tshape"], axis=0),  # [T,1,1,1]
        onnx.helper.make_node("Reshape", ["t", "tshape"], ["tt"]),
        onnx.helper.make_node("Mul", ["acc0", "tt"], ["acc0t"]),
        onnx.helper.make_node("Neg", ["flow"], ["back"]),
        onnx_node.make_node(["acc0t", "back", "w"], ["acc1"], mode="sum", name="second"),
        onnx.helper.make_node("Expand", ["half", "tshape"], ["hv"]),
        onnx.helper.make_node("Mul", ["acc1", "hv"], ["out"]),
        onnx.helper.make_node("Add", ["acc0", "hv"], ["side"]),
    ]
    inputs = [_value("x", ["T", 3, 6, 7]), _value("flow", ["T", 2, 6, 7]), _value("t", ["T"])]
    outputs = [_value("out", ["T", 4, 6, 7]), _value("side", ["T", 4, 6, 7])]
    model = _model(nodes, inputs, outputs, inits)
    plan = part_mod.partition_graph(model, stage="toy")
    assert [s.kind for s in plan.steps] == ["part", "splat", "part", "splat", "part"]
    assert [(s.name, s.mode) for s in plan.splats] == [("first", "linear-zeroeps"), ("second", "sum")]
    assert [p.inputs for p in plan.parts] == [("x", "flow"), ("x", "flow", "t", "acc0"), ("x", "acc0", "acc1")]
    assert [p.outputs for p in plan.parts] == [("xr", "w"), ("acc0t", "back"), ("out", "side")]
    shape_ops = [[n.op_type for n in p.model.graph.node if n.op_type in ("Shape", "Concat")] for p in plan.parts]
    assert shape_ops == [[], ["Shape", "Concat"], ["Shape", "Concat"]]
    assert not {"shape", "tshape"} & set(plan.tensors)
    g = torch.Generator().manual_seed(1)
    feeds = {"x": torch.randn(2, 3, 6, 7, generator=g), "flow": 2 * torch.randn(2, 2, 6, 7, generator=g)}
    feeds["t"] = torch.tensor([0.25, 0.75])
    got = part_mod.run_partitioned(plan, part_runner(plan, providers=CPU), torch_splat, feeds)
    ref = _run_whole(model, feeds)
    assert np.abs(ref).max() > 0.1
    assert np.abs(got["out"].numpy() - ref).max() <= 1e-6
