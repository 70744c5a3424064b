"""gimm-doctor on this machine (no GPU): the real command in a subprocess, its table, JSON and exit status.

One full run (``--json``) makes the doctor's export; ``--export DIR`` then checks that export as it is (exit 0)
and a copy with a node TensorRT's parser would change (exit 1, naming the node).
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import onnx
import pytest
import torch

from gimm_trt.diagnostics import doctor

ROOT = Path(__file__).resolve().parents[1]
GPU_CHECKS = (
    "splat_triton_cuda",
    "splat_cupy_cuda",
    "torch_fp16",
    "onnxruntime_cuda",
    "trt_plugin",
    "trt_engines",
    "rtx_engines",
    "cuda_graph",
)
VERSION_KEYS = (
    "driver",
    "cuda",
    "torch",
    "triton",
    "cupy",
    "onnxruntime",
    "onnxruntime_providers",
    "tensorrt",
    "tensorrt_rtx",
    "polygraphy",
)


def run_doctor(*args, cwd, env=None) -> subprocess.CompletedProcess:
    env = dict(os.environ if env is None else env)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in [env.get("PYTHONPATH")] if p])
    return subprocess.run(
        [sys.executable, "-c", "from gimm_trt.cli import doctor; doctor()", *map(str, args)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )


@pytest.fixture(scope="module")
def cpu_run(tmp_path_factory):
    if torch.cuda.is_available():
        pytest.skip("checks what a machine without a GPU reports")
    root = tmp_path_factory.mktemp("doctor")
    env = dict(os.environ, GIMM_TRT_CACHE=str(root / "cache"))
    proc = run_doctor("--json", root / "doctor.json", cwd=root, env=env)
    doc = json.loads((root / "doctor.json").read_text()) if (root / "doctor.json").is_file() else None
    return proc, doc, root


@pytest.mark.slow
def test_cpu_run_passes_and_skips(cpu_run):
    proc, doc, root = cpu_run
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    assert doc["schema"] == doctor.SCHEMA and doc["device"] == "cpu" and doc["ok"] is True
    assert all(key in doc["versions"] for key in VERSION_KEYS)
    assert doc["versions"]["torch"] == torch.__version__
    assert "CPUExecutionProvider" in doc["versions"]["onnxruntime_providers"]
    checks = {c["name"]: c for c in doc["checks"]}
    assert list(checks) == list(doctor.CHECKS)
    for c in doc["checks"]:
        assert set(c) == {"name", "status", "detail", "seconds", "data"} and c["status"] in doctor.STATUSES
    for name in GPU_CHECKS:
        assert checks[name]["status"] == "skip" and "CUDA" in checks[name]["detail"], checks[name]
    for name in ("splat_triton_interpreter", "parser_static", "onnxruntime_cpu", "rtx_build"):
        assert checks[name]["status"] == "pass", checks[name]
    # TensorRT-RTX built every engine ahead of time on this CPU: the motion stage as its two parts
    plans = checks["rtx_build"]["data"]["plans"]
    assert list(plans) == ["flow", "motion.0", "motion.1", "synthesis"]
    assert all(".rtx" in Path(p).name and Path(p).stat().st_size > 0 for p in plans.values())
    # the numbers behind the verdicts
    modes = checks["splat_triton_interpreter"]["data"]["modes"]
    assert set(modes) == {"sum", "linear-zeroeps", "softmax-zeroeps"}
    assert all(0 < m["ref_max_abs"] and m["max_abs"] <= doctor.SPLAT_REL_TOL * m["ref_max_abs"] for m in modes.values())
    frames = checks["onnxruntime_cpu"]["data"]["stages"]["synthesis"]["frames"]
    assert frames["psnr_db"] is None or frames["psnr_db"] >= doctor.ORT_MIN_DB
    assert checks["parser_static"]["data"]["findings"] == [] and checks["parser_static"]["data"]["nodes"] > 1000
    assert doc["summary"] == {"pass": 4, "fail": 0, "skip": len(GPU_CHECKS)}
    # the table on stdout
    assert "PASS  parser_static" in proc.stdout and "SKIP  trt_plugin" in proc.stdout
    assert f"4 passed, 0 failed, {len(GPU_CHECKS)} skipped" in proc.stdout


def _export_dir(root: Path) -> Path:
    found = list((root / "cache" / "doctor" / "exports").glob("R-P-fp32-256x256"))
    assert found, "the doctor's export is missing"
    return found[0]


@pytest.mark.slow
def test_export_option_good_and_doctored(cpu_run, tmp_path):
    _, _, root = cpu_run
    good = _export_dir(root)
    proc = run_doctor("--export", good, "--json", tmp_path / "good.json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-2000:]
    doc = json.loads((tmp_path / "good.json").read_text())
    assert [c["name"] for c in doc["checks"]] == ["parser_static"] and doc["ok"]
    assert set(doc["export"]["graphs"]) == {"flow", "motion", "synthesis"}
    assert "gimm_trt::splat" in doc["export"]["graphs"]["motion"]["ops"]

    bad = shutil.copytree(good, tmp_path / "doctored", ignore=shutil.ignore_patterns("engines", "*.lock"))
    model = onnx.load(str(bad / "synthesis.onnx"))
    node = next(n for n in model.graph.node if n.op_type == "GridSample")
    next(a for a in node.attribute if a.name == "mode").s = b"linear"
    model.graph.node.append(onnx.helper.make_node("Unique", [model.graph.input[0].name], ["u"], name="injected_unique"))
    onnx.save(model, str(bad / "synthesis.onnx"))
    proc = run_doctor("--export", bad, cwd=tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr[-2000:]
    assert f"node '{node.name}' (GridSample): mode 'linear'" in proc.stdout
    assert "node 'injected_unique' (Unique): the parser lists Unique as unsupported" in proc.stdout
    assert "FAIL  parser_static" in proc.stdout and "0 passed, 1 failed, 0 skipped" in proc.stdout


def test_missing_export_directory_is_one_line(tmp_path):
    proc = run_doctor("--export", tmp_path / "nope", cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr.startswith("error: ") and len(proc.stderr.splitlines()) == 1
    assert "not a gimm-export directory" in proc.stderr


def test_failing_check_is_reported_and_others_run(tmp_path, monkeypatch):
    def broken(ctx):
        raise RuntimeError("kernel produced NaN")

    def skipped(ctx):
        raise doctor.Skip("not here")

    monkeypatch.setitem(doctor.CHECKS, "broken", broken)
    monkeypatch.setitem(doctor.CHECKS, "skipped", skipped)
    doc = doctor.run_checks(device="cpu", work=tmp_path, checks=("broken", "skipped"))
    assert [(c["name"], c["status"]) for c in doc["checks"]] == [("broken", "fail"), ("skipped", "skip")]
    assert doc["checks"][0]["detail"] == "RuntimeError: kernel produced NaN" and doc["ok"] is False
    assert doc["summary"] == {"pass": 0, "fail": 1, "skip": 1}
    table = doctor.format_table(doc)
    assert "FAIL  broken" in table and "SKIP  skipped" in table and "see the FAIL lines" in table
    path = doctor.write_json(doc, tmp_path / "d.json")
    assert json.loads(path.read_text())["checks"][0]["detail"] == "RuntimeError: kernel produced NaN"
    with pytest.raises(ValueError, match="unknown check"):
        doctor.run_checks(device="cpu", checks=("nope",))
