"""ONNX export: graphs run in ONNX Runtime against the official outputs, fp16 accuracy, manifest reuse, gimm-export.

Exports are slow (the flow graph unrolls 20-32 refinements), so each is made once per module and shared; later
exports into the same tree reuse stages (a new splat form re-traces only motion, fp16 converts the fp32 graphs).
"""

import json
import re
import shutil
import tempfile
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from click.testing import CliRunner
from conftest import CASES, assert_close_robust, load_case
from fakes import write_manifest

from gimm_trt import Interpolator
from gimm_trt.cli import export as export_cli
from gimm_trt.core.metrics import psnr
from gimm_trt.core.stages import (
    FLOW_INPUTS,
    FLOW_OUTPUTS,
    MOTION_INPUTS,
    MOTION_OUTPUTS,
    STAGES,
    SYNTHESIS_INPUTS,
    SYNTHESIS_OUTPUTS,
)
from gimm_trt.engines import compat
from gimm_trt.export import exporter, graphs
from gimm_trt.export.exporter import ExportOptions, export
from gimm_trt.model.spec import ModelSpec

IMGT = dict(mean=2e-4, p99=1e-3, thr=1e-2)  # test_model.py's bounds for imgt_pred
FP16_MIN_PSNR_DB = 60.0  # fp16 vs fp32 frames in ONNX Runtime CPU (measured 75 dB on r_s0)


F_CASES = [c for c, (v, _) in CASES.items() if v == "F"]


def _options(case: str, precision: str = "fp32", **kwargs) -> ExportOptions:
    variant, seed = CASES[case]
    h, w = load_case(case)["padded_hw"].tolist()
    model = ModelSpec(variant=variant, random_weights=True, seed=seed, precision=precision)
    return ExportOptions(model=model, resolution=f"{w}x{h}", **kwargs)


def _run(export_dir, case: dict, timesteps=None):
    interp = Interpolator.from_export(export_dir, backend="onnxruntime")
    ts = case["timesteps"].tolist() if timesteps is None else timesteps
    return interp.interpolate(case["img0"], case["img1"], ts)


class Log(list):
    def __call__(self, message):
        self.append(message)

    def traced(self):
        return [m.split(":")[0] for m in self if "tracing" in m]


@pytest.fixture(scope="module")
def r0(tmp_path_factory):
    """R (seed 0) at 224x128, fp32, splat plugin: export, then all three timesteps in ONNX Runtime."""
    out = tmp_path_factory.mktemp("exports")
    log = Log()
    export_dir = export(_options("r_s0_128x224_n4_ds1"), out, log=log)
    case = load_case("r_s0_128x224_n4_ds1")
    frames = _run(export_dir, case, [0.25, 0.75])  # T=2 (a batch); t=0.5 runs in the portable and fp16 tests
    return {"out": out, "dir": export_dir, "log": log, "case": case, "frames": frames}


def test_r_plugin_matches_official(r0):
    official = r0["case"]["imgt_pred"][[0, 2]]
    assert r0["frames"].shape == official.shape
    assert_close_robust("r_s0 onnxruntime plugin", r0["frames"], official, **IMGT)
    assert r0["log"].traced() == ["flow", "motion", "synthesis"]


def test_graphs_names_axes_opset(r0):
    expected = {
        "flow": (FLOW_INPUTS, FLOW_OUTPUTS),
        "motion": (MOTION_INPUTS, MOTION_OUTPUTS),
        "synthesis": (SYNTHESIS_INPUTS, SYNTHESIS_OUTPUTS),
    }
    for stage, (inputs, outputs) in expected.items():
        model = onnx.load(str(r0["dir"] / f"{stage}.onnx"))
        assert tuple(i.name for i in model.graph.input) == inputs
        assert tuple(o.name for o in model.graph.output) == outputs
        assert {o.domain: o.version for o in model.opset_import}[""] == 18
        dims = {
            v.name: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
            for v in [*model.graph.input, *model.graph.output]
        }
        for name, shape in dims.items():  # T is the only symbolic axis, first axis of t/flowt/frames
            assert [d for d in shape if isinstance(d, str)] == (["T"] if name in ("t", "flowt", "frames") else []), (
                stage,
                name,
                shape,
            )
        assert all(v.type.tensor_type.elem_type == onnx.TensorProto.FLOAT for v in model.graph.input)
    motion = onnx.load(str(r0["dir"] / "motion.onnx"))
    assert sum(n.op_type == "splat" and n.domain == "gimm_trt" for n in motion.graph.node) == 2
    assert all(n.op_type != "ScatterElements" for n in motion.graph.node)


def test_manifest(r0):
    data = json.loads((r0["dir"] / "manifest.json").read_text())
    assert r0["dir"].name == "R-fp32-224x128"
    assert data["max_timesteps"] == 8 and data["variant"] == "R" and data["precision"] == "fp32"
    assert data["checkpoint_sha256"] == "random weights (seed 0)"
    assert data["ds_scale"] == 1.0 and data["padded_size"] == [128, 224] and data["processing_size"] == [128, 224]
    assert data["opset"] == 18 and data["splat"]["form"] == "plugin"
    assert data["tools"]["torch"] and data["tools"]["onnxruntime"]
    assert [i["name"] for i in data["stages"]["synthesis"]["inputs"]] == list(SYNTHESIS_INPUTS)
    assert data["stages"]["motion"]["outputs"] == [{"name": "flowt", "shape": ["T", 2, 128, 224], "dtype": "float32"}]


def test_same_inputs_reuse_without_tracing(r0, monkeypatch):
    monkeypatch.setattr(graphs, "trace", _no_trace)

    def stamps():
        return {p.name: p.stat().st_mtime_ns for p in r0["dir"].iterdir() if not p.name.endswith(".lock")}

    before = stamps()
    log = Log()
    assert export(_options("r_s0_128x224_n4_ds1"), r0["out"], log=log) == r0["dir"]
    assert any("reusing" in m for m in log)
    assert stamps() == before


def test_max_timesteps_only_updates_the_manifest(r0, tmp_path, monkeypatch):
    monkeypatch.setattr(graphs, "trace", _no_trace)
    shutil.copytree(r0["dir"], tmp_path / r0["dir"].name)
    export_dir = export(_options("r_s0_128x224_n4_ds1", max_timesteps=4), tmp_path)
    data = json.loads((export_dir / "manifest.json").read_text())
    assert data["max_timesteps"] == 4 and data["dynamic_axis"]["profile"] == {"min": 1, "opt": 4, "max": 4}


def test_damaged_file_or_new_inputs_rebuild(r0, tmp_path, monkeypatch):
    out = tmp_path / "exports"
    shutil.copytree(r0["dir"], out / r0["dir"].name)
    target = out / r0["dir"].name
    # a damaged graph is traced again, the intact ones are kept
    (target / "flow.onnx").write_bytes(b"truncated")
    traced = []
    monkeypatch.setattr(graphs, "trace", lambda module, args, *, stage, **kw: traced.append(stage) or _no_trace())
    with pytest.raises(RuntimeError, match="no trace"):
        export(_options("r_s0_128x224_n4_ds1"), out)
    assert traced == ["flow"]
    assert not (target / "manifest.json").exists()  # an interrupted export never looks complete
    # other weights change every stage's inputs
    traced.clear()
    with pytest.raises(RuntimeError, match="no trace"):
        export(ExportOptions(model=ModelSpec(variant="R", random_weights=True, seed=5), resolution="224x128"), out)
    assert traced == ["flow"]  # the first stage already needs tracing


def _no_trace(*args, **kwargs):
    raise RuntimeError("no trace expected")


@pytest.fixture(scope="module")
def r0_portable(r0, tmp_path_factory):
    """The same export re-made with the portable splat: only motion is traced again."""
    out = tmp_path_factory.mktemp("portable")
    shutil.copytree(r0["dir"], out / r0["dir"].name)
    log = Log()
    export_dir = export(_options("r_s0_128x224_n4_ds1", splat="portable"), out, log=log)
    return {"dir": export_dir, "log": log}


def test_portable_splat_matches_official(r0, r0_portable):
    """Only motion differs between the forms: its flows against the official ones (the frames of the portable
    form are compared on the odd-size case in test_ort_backend.py)."""
    from gimm_trt.export.ort import ort_session

    assert r0_portable["log"].traced() == ["motion"]
    motion = onnx.load(str(r0_portable["dir"] / "motion.onnx"))
    assert any(n.op_type == "ScatterElements" for n in motion.graph.node)
    assert all(n.domain in ("", "ai.onnx") for n in motion.graph.node)  # stock ONNX only
    case = r0["case"]
    # the official estimator flows in ([1,2,2,h,w]: 0->1 then 1->0), so motion alone is compared
    feed = {
        "flow01": case["raft_flow"][:, :, 0],
        "flow10": case["raft_flow"][:, :, 1],
        "t": case["timesteps"].astype(np.float32),
    }
    for d in (r0_portable["dir"], r0["dir"]):
        (flowt,) = ort_session(d / "motion.onnx", providers=["CPUExecutionProvider"]).run(None, feed)
        assert_close_robust(f"r_s0 flowt ({d.parent.name})", flowt, case["flowt"], mean=1e-3, p99=1e-2, thr=0.1)


@pytest.fixture(scope="module")
def r0_fp16(r0):
    """fp16 next to the fp32 export: converted from its graphs, no tracing."""
    log = Log()
    export_dir = export(_options("r_s0_128x224_n4_ds1", precision="fp16"), r0["out"], log=log)
    return {"dir": export_dir, "log": log, "frames": _run(export_dir, r0["case"], [0.5])}


def test_fp16_graph_structure(r0_fp16):
    assert r0_fp16["log"].traced() == [] and sum("converting" in m for m in r0_fp16["log"]) == 3
    for stage in STAGES:
        model = onnx.load(str(r0_fp16["dir"] / f"{stage}.onnx"))
        io = [*model.graph.input, *model.graph.output]
        assert all(v.type.tensor_type.elem_type == onnx.TensorProto.FLOAT for v in io)  # callers do not change
        inferred = onnx.shape_inference.infer_shapes(model).graph.value_info
        types = {v.name: v.type.tensor_type.elem_type for v in inferred}
        types.update({i.name: i.data_type for i in model.graph.initializer})
        types.update({v.name: v.type.tensor_type.elem_type for v in io})
        convs = [n for n in model.graph.node if n.op_type == "Conv"]
        half = [n for n in convs if types.get(n.input[1]) == onnx.TensorProto.FLOAT16]
        assert len(half) >= 0.9 * len(convs), (stage, len(half), len(convs))
        for node in model.graph.node:  # fp32 islands: warps, resizes, splats, correlation
            if node.op_type in ("GridSample", "Resize", "splat") or (
                node.op_type == "MatMul"
                and not any(i in types and i in {x.name for x in model.graph.initializer} for i in node.input)
            ):
                assert types.get(node.input[0]) == onnx.TensorProto.FLOAT, (stage, node.op_type, node.name)
    data = json.loads((r0_fp16["dir"] / "manifest.json").read_text())
    assert data["precision"] == "fp16" and data["stages"]["flow"]["fp16"]["casts"] > 0


def test_fp16_accuracy_vs_fp32(r0, r0_fp16):
    # against the official fp32 frame (the fp32 export matches it to ~1e-7, see test_r_plugin_matches_official)
    fp32, fp16 = torch.from_numpy(r0["case"]["imgt_pred"][1:2]), r0_fp16["frames"]
    db = psnr(fp16, fp32)
    print(f"fp16 vs fp32 (r_s0, t=0.5): PSNR {db:.1f} dB, max |d| {(fp16 - fp32).abs().max():.2e}")
    assert db >= FP16_MIN_PSNR_DB


@pytest.mark.parametrize("case_name", F_CASES)
def test_f_flow_graph_matches_official(case_name):
    """The F-specific graph is the flow stage (motion and synthesis are the modules tested with R): traced,
    cleaned and checked like every export, run in ONNX Runtime against the official flows and features (F has
    no projections, so the stage outputs are the estimator's)."""
    from gimm_trt.export import passes
    from gimm_trt.export.ort import ort_session
    from gimm_trt.model.checkpoint import load_model

    case = load_case(case_name)
    variant, seed = CASES[case_name]
    module = graphs.stage_module(load_model(variant=variant, random_weights=True, seed=seed), "flow", 1.0)
    args = (torch.from_numpy(case["img0"]), torch.from_numpy(case["img1"]))
    proto = passes.to_proto(
        passes.clean(graphs.trace(module, args, stage="flow", opset=18, splat="plugin")), name="gimm_flow"
    )
    passes.validate(proto)
    path = Path(tempfile.mkdtemp()) / "flow.onnx"
    path.write_bytes(proto.SerializeToString())
    out = dict(
        zip(
            FLOW_OUTPUTS,
            ort_session(path, providers=["CPUExecutionProvider"]).run(
                None, {"img0": case["img0"], "img1": case["img1"]}
            ),
        )
    )
    flows = np.stack([out["flow01"], out["flow10"]], axis=2)  # the fixture's layout: [1,2,2,h,w]
    assert_close_robust(f"{case_name}/raft_flow", flows, case["raft_flow"], mean=1e-4, p99=1e-3, thr=1e-2)
    for ours, official in (
        ("corr0", "fe_fmap0"),
        ("corr1", "fe_fmap1"),
        ("feat4_0", "fe_feat4_0"),
        ("feat4_1", "fe_feat4_1"),
        ("feat8_0", "fe_feat8_0"),
        ("feat8_1", "fe_feat8_1"),
    ):
        assert_close_robust(
            f"{case_name}/{official}", out[ours], case[official], mean=1e-5, p99=1e-4, thr=1e-3, frac=0.0
        )


# --- gimm-export ----------------------------------------------------------------------------------------------


def _cli(*args, env=None):
    return CliRunner().invoke(export_cli, [str(a) for a in args], env=env)


def test_cli_reuses_and_prints_the_directory_last(r0, monkeypatch):
    monkeypatch.setattr(graphs, "trace", _no_trace)
    result = _cli("--variant", "R", "--random-weights", "--resolution", "224x128", "--out", r0["out"])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-1] == str(r0["dir"])
    assert "reusing" in result.stderr and "random weights" in result.stderr


@pytest.mark.parametrize(
    "args, expected",
    [
        (("--variant", "R-P"), "checkpoint not found"),
        (("--variant", "R", "--random-weights", "--resolution", "huge"), "resolution must be"),
        (("--variant", "R", "--random-weights", "--resolution", "224x128", "--ds-scale", "0.3"), "ds_scale=0.3"),
        (("--variant", "R", "--random-weights", "--resolution", "64x64"), "128"),
        (("--variant", "R", "--random-weights", "--opset", "20"), "opset"),
        (("--variant", "R", "--random-weights", "--checkpoint", "x.pt"), "not both"),
        (("--variant", "R", "--random-weights", "--build-engines"), "TensorRT"),
        (("--variant", "Q"), "variant"),
    ],
)
def test_cli_errors_are_one_line(args, expected, tmp_path, monkeypatch):
    monkeypatch.setattr(graphs, "trace", _no_trace)
    if "--build-engines" in args and compat.has_tensorrt():
        pytest.skip("TensorRT is installed here")
    result = _cli(*args, "--out", tmp_path / "exports", env={"GIMM_TRT_CHECKPOINTS": str(tmp_path / "none")})
    assert result.exit_code == 2, (result.exit_code, result.output)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and expected in lines[0], result.stderr
    assert not (tmp_path / "exports").exists() or not any((tmp_path / "exports").rglob("*.onnx"))


def test_options_validate():
    with pytest.raises(ValueError, match="opset"):
        ExportOptions(model=ModelSpec(variant="R", random_weights=True), opset=20)
    with pytest.raises(ValueError, match="splat"):
        ExportOptions(model=ModelSpec(variant="R", random_weights=True), splat="cuda")
    with pytest.raises(ValueError, match="precision must be one of fp32, fp16, got 'bf16'"):
        ExportOptions(model=ModelSpec(precision="bf16"))
    opts = ExportOptions(model=ModelSpec(variant="R-P", random_weights=True, precision="fp16"), resolution="4k")
    assert opts.name == "R-P-fp16-4k" and opts.ds == 0.25 and opts.sizes == ((2176, 3840), (544, 960))
    assert ExportOptions(resolution="2k").ds == 0.5 and ExportOptions(resolution="1080p").ds == 1.0
    assert ExportOptions(model=ModelSpec(ds_scale=0.5), resolution="4k").sizes == ((2176, 3840), (1088, 1920))
    assert (
        exporter.weights_of(ExportOptions(model=ModelSpec(variant="R", random_weights=True, seed=3))).identity
        == "random weights (seed 3)"
    )


# --- an export's files stay in its folder ------------------------------------------------------------------------
# Hand-written manifests: the checks under test run before any graph is opened, so no real export is needed.


def _graph_file(path: Path) -> Path:
    """A valid one-node ONNX graph at ``path``: what a foreign manifest could point at to have it run."""
    x = onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])
    y = onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])
    graph = onnx.helper.make_graph([onnx.helper.make_node("Identity", ["x"], ["y"])], "g", [x], [y])
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(onnx.helper.make_model(graph), str(path))
    return path


def _outside(tmp_path: Path, kind: str) -> tuple:
    """(export folder, the flow stage's file name as its manifest writes it) for a name leading out by ``kind``."""
    outside = _graph_file(tmp_path / "elsewhere" / "flow.onnx")
    folder = tmp_path / "export"
    folder.mkdir()
    if kind == "absolute":
        return folder, str(outside)
    if kind == "dotdot":
        return folder, "../elsewhere/flow.onnx"
    if kind == "dotdot-inside":
        (folder / "sub").mkdir()
        return folder, "sub/../../elsewhere/flow.onnx"
    if kind == "backslash":
        return folder, "..\\elsewhere\\flow.onnx"
    if kind == "symlink":
        (folder / "flow.onnx").symlink_to(outside)
        return folder, "flow.onnx"
    (folder / "graphs").symlink_to(outside.parent, target_is_directory=True)  # a folder on the way leads out
    return folder, "graphs/flow.onnx"


OUTSIDE = ["absolute", "dotdot", "dotdot-inside", "backslash", "symlink", "symlinked-folder"]


@pytest.mark.parametrize("kind", OUTSIDE)
def test_manifest_paths_leading_out_are_refused_before_anything_is_read(tmp_path, monkeypatch, kind):
    from gimm_trt.core.errors import ExportError
    from gimm_trt.export import manifest

    folder, name = _outside(tmp_path, kind)
    write_manifest(folder, {"flow": name, "motion": "motion.onnx", "synthesis": "synthesis.onnx"})
    hashed, parsed = [], []
    monkeypatch.setattr(manifest, "sha256_file", lambda path, *a: hashed.append(path))
    monkeypatch.setattr(onnx, "load", lambda path, *a, **k: parsed.append(path))
    how = "leads" if "symlink" in kind else "lies"
    expected = f"{folder / 'manifest.json'}: the flow stage's file {name!r} {how} outside the export folder"
    with pytest.raises(ExportError, match="^" + re.escape(expected)) as e:
        Interpolator.from_export(folder, backend="onnxruntime", device="cpu")
    assert "\n" not in str(e.value)
    assert manifest.reuse_problem(folder, "any").startswith(expected)  # a re-export starts over, reading nothing
    assert hashed == [] and parsed == []


@pytest.mark.parametrize("kind", ["dotdot", "symlink"])
def test_doctor_export_refuses_a_graph_outside_the_folder(tmp_path, kind):
    from gimm_trt.cli import doctor

    folder, name = _outside(tmp_path, kind)
    write_manifest(folder, {"flow": name})
    result = CliRunner().invoke(doctor, ["--export", str(folder)])
    assert result.exit_code == 2, result.output
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"error: {folder / 'manifest.json'}: the flow stage's file {name!r} ")
    assert "outside the export folder" in line


def test_files_inside_the_folder_pass_symlinks_within_it_too(tmp_path):
    from gimm_trt.export.manifest import ExportInfo

    folder = tmp_path / "export"
    _graph_file(folder / "graphs" / "flow.onnx")
    (folder / "motion.onnx").symlink_to(folder / "graphs" / "flow.onnx")
    write_manifest(folder, {"flow": "graphs/flow.onnx", "motion": "motion.onnx", "synthesis": "./graphs/flow.onnx"})
    info = ExportInfo.read(folder)
    info.verify_files()
    assert info.onnx_path("motion") == folder / "motion.onnx"


def test_engine_graphs_and_parts_plans_stay_in_the_folder(tmp_path):
    from gimm_trt.core.errors import ExportError
    from gimm_trt.engines.build import graphs_to_build
    from gimm_trt.export.partition import PLAN_SCHEMA, load_plan

    folder, _ = _outside(tmp_path, "symlink")  # flow.onnx leads out: the engines would be built from it
    with pytest.raises(ExportError, match=r": the flow graph 'flow.onnx' leads outside the export folder"):
        graphs_to_build(folder, ("flow",), family="tensorrt-rtx")
    step = {"kind": "part", "index": 0, "file": "../elsewhere/flow.onnx", "inputs": [], "outputs": [], "sha256": None}
    plan = {"schema": PLAN_SCHEMA, "stage": "motion", "source": "motion.onnx", "source_sha256": None, "inputs": [],
            "outputs": [], "steps": [step], "tensors": {}}  # fmt: skip
    (folder / "motion.parts.json").write_text(json.dumps(plan))
    with pytest.raises(ExportError, match=r"motion\.parts\.json: the file of part 0 '\.\./elsewhere/flow\.onnx' lies"):
        load_plan(folder)


def test_an_export_run_as_another_variant_is_refused_naming_both(tmp_path):
    from gimm_trt.cli import interpolate
    from gimm_trt.core.errors import ExportMissingError, InputError

    folder = write_manifest(tmp_path / "R-fp32-224x128", {s: f"{s}.onnx" for s in STAGES}, variant="R")
    with pytest.raises(InputError, match=rf"^variant 'F' does not match the export {folder}, made from GIMM-VFI-R: "):
        Interpolator.from_spec(ModelSpec(export=folder, backend="onnxruntime", device="cpu", variant="F"))
    # its own variant, or none, goes on to open the export (whose graphs this one lacks)
    for variant in ("R", None):
        with pytest.raises(ExportMissingError, match="flow.onnx is missing from the export"):
            Interpolator.from_spec(ModelSpec(export=folder, backend="onnxruntime", device="cpu", variant=variant))
    args = ["--demo", str(tmp_path / "o"), "--export", str(folder), "--backend", "onnxruntime", "--device", "cpu"]
    result = CliRunner().invoke(interpolate, [*args, "--variant", "F-P"])
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"error: variant 'F-P' does not match the export {folder}, made from GIMM-VFI-R: leave the variant out "
        "(an export runs its own) or pass 'R'"
    ]
    assert not (tmp_path / "o").exists()
