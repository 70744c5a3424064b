"""gimm-doctor on this machine (no GPU): the real command in a subprocess, its table, JSON and exit status.

One full run (``--json``) makes the doctor's export; ``--export DIR`` then checks that export as it is (exit 0)
and a copy with a node TensorRT's parser would change (exit 1, naming the node).
"""

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import onnx
import pytest
import torch
from fakes import CrossFade, fake_driver

from gimm_trt import Interpolator
from gimm_trt.diagnostics import doctor

ROOT = Path(__file__).resolve().parents[1]
GPU_CHECKS = (
    "splat_triton_cuda",
    "splat_cupy_cuda",
    "torch_fp16",
    "onnxruntime_cuda",
    "trt_plugin",
    "trt_plan_python_free",
    "trt_engines",
    "trt_engines_fp16",
    "rtx_engines",
    "cuda_graph",
)
CPU_CHECKS = ("torch_model", "splat_triton_interpreter", "parser_static", "onnxruntime_cpu", "rtx_build")
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
    "cuda_driver",
    "ptx_isa",
    "tensorrt_broken",
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
    for name in CPU_CHECKS:
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
    assert doc["summary"] == {"pass": len(CPU_CHECKS), "fail": 0, "skip": len(GPU_CHECKS)}
    # the table on stdout
    assert "PASS  parser_static" in proc.stdout and "SKIP  trt_plugin" in proc.stdout
    assert f"{len(CPU_CHECKS)} passed, 0 failed, {len(GPU_CHECKS)} skipped" in proc.stdout


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


# ------------------------------------------------------------------------------- TensorRT: broken or missing
TRT_CHECKS = ("trt_plugin", "trt_plan_python_free", "trt_engines", "trt_engines_fp16", "cuda_graph")
IMPORT_ERROR = "libnvinfer.so.10: cannot open shared object file: No such file or directory"


def _forget(monkeypatch, module: str) -> None:
    """``module`` and its submodules out of ``sys.modules`` for this test, whatever an earlier test left there."""
    for name in [n for n in sys.modules if n == module or n.startswith(f"{module}.")]:
        monkeypatch.delitem(sys.modules, name)


def _break(monkeypatch, tmp_path, module: str):
    """A ``module`` package on the path whose import fails as one without its native libraries does."""
    _forget(monkeypatch, module)
    package = tmp_path / "site" / module
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(f"raise ImportError({IMPORT_ERROR!r})\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    return package


@pytest.fixture
def no_tensorrt(monkeypatch):
    """``tensorrt`` as this machine has it (absent), whatever an earlier test left in ``sys.modules``."""
    _forget(monkeypatch, "tensorrt")
    return monkeypatch


@pytest.fixture
def broken_tensorrt(no_tensorrt, tmp_path):
    """A ``tensorrt`` package on the path whose import fails as one without its native libraries does."""
    return _break(no_tensorrt, tmp_path, "tensorrt")


def _cuda_context(tmp_path) -> doctor.Context:
    """The context of a run on a CUDA device (only constructed: the TensorRT checks stop before using it)."""
    return doctor.Context(device=torch.device("cuda"), work=tmp_path)


def test_broken_tensorrt_fails_with_its_import_error_on_a_cuda_device(broken_tensorrt, tmp_path):
    from gimm_trt.core.trt import has_tensorrt, probe

    state = probe()
    assert state.found and state.broken and not state.usable and not has_tensorrt()
    assert IMPORT_ERROR in state.error
    for name in TRT_CHECKS:
        result = doctor._run_one(name, doctor.CHECKS[name], _cuda_context(tmp_path))
        assert result["status"] == "fail", result
        assert IMPORT_ERROR in result["detail"] and result["detail"].startswith("MissingDependency: "), result


def test_broken_tensorrt_is_reported_without_cuda(broken_tensorrt, tmp_path):
    doc = doctor.run_checks(device="cpu", work=tmp_path, checks=TRT_CHECKS)
    assert doc["ok"] and [c["status"] for c in doc["checks"]] == ["skip"] * len(TRT_CHECKS)
    for c in doc["checks"]:
        assert "needs a CUDA device" in c["detail"] and "TensorRT is broken" in c["detail"], c
        assert IMPORT_ERROR in c["detail"]
    v = doc["versions"]
    assert v["tensorrt"] is None and v["tensorrt_usable"] is False and IMPORT_ERROR in v["tensorrt_broken"]
    assert "tensorrt               - (installed but broken: " in doctor.format_table(doc)


def test_missing_tensorrt_is_a_skip_even_on_a_cuda_device(no_tensorrt, tmp_path):
    from gimm_trt.core.trt import probe

    if probe().found:
        pytest.skip("TensorRT is installed here")

    # type stubs alone leave an empty namespace package: TensorRT is still missing, not broken
    (tmp_path / "site" / "tensorrt").mkdir(parents=True)
    (tmp_path / "site" / "tensorrt" / "__init__.pyi").write_text("class Builder: ...\n")
    no_tensorrt.syspath_prepend(str(tmp_path / "site"))
    state = probe()
    assert not state.found and not state.broken and not state.usable
    for name in TRT_CHECKS:
        result = doctor._run_one(name, doctor.CHECKS[name], _cuda_context(tmp_path))
        assert result["status"] == "skip" and "needs tensorrt, which is not installed" in result["detail"], result
    doc = doctor.run_checks(device="cpu", work=tmp_path, checks=TRT_CHECKS)
    assert doc["versions"]["tensorrt_broken"] is None
    assert all(c["detail"].startswith("needs a CUDA device (") for c in doc["checks"]), doc["checks"]
    assert not any("broken" in c["detail"] for c in doc["checks"])


def test_broken_tensorrt_rtx_fails_its_checks_even_on_a_cpu(monkeypatch, tmp_path):
    """TensorRT-RTX builds without a GPU, so an install of it that does not import is a failure anywhere."""
    _break(monkeypatch, tmp_path, "tensorrt_rtx")
    doc = doctor.run_checks(device="cpu", work=tmp_path, checks=("rtx_build", "rtx_engines"))
    for c in doc["checks"]:
        assert c["status"] == "fail" and IMPORT_ERROR in c["detail"], c


# ------------------------------------------------------------------------------------ versions
def test_versions_name_triton_the_driver_cuda_and_the_ptx_isa(monkeypatch):
    triton = pytest.importorskip("triton")
    from gimm_trt.plugins import triton_kernel

    v = doctor.versions(torch.device("cpu"))
    assert v["triton"] == triton.__version__
    assert v["ptx_isa"] is None  # no GPU: no kernel is compiled for one
    # on a GPU: the ISA aot_ptx_version picks for the device's arch (how it picks: test_splat_trt), as major.minor
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (9, 0))
    monkeypatch.setattr(triton_kernel, "aot_ptx_version", lambda arch: 87 if arch == 90 else None)
    assert doctor.aot_ptx_isa(torch.device("cuda")) == "8.7"
    assert "ptx_isa" in doctor.format_table({**_empty_doc(), "versions": v})


def _empty_doc() -> dict:
    return {"device": "cpu", "checks": [], "summary": {"pass": 0, "fail": 0, "skip": 0}, "ok": True}


def test_driver_cuda_version(monkeypatch):
    from gimm_trt.core import cuda

    for version, status, want in ((12080, 0, "12.8"), (13010, 0, "13.1"), (12040, 3, None)):
        fake_driver(monkeypatch, version, status)
        assert cuda.driver_cuda_version() == want
    monkeypatch.undo()
    assert cuda.driver_cuda_version("libno-such-driver.so") is None


# ------------------------------------------------------------------ torch alone: a check runs, each shown once
@pytest.mark.slow
def test_without_the_onnx_and_triton_extras_the_torch_check_runs_and_each_check_shows_once(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from gimm_trt import cli
    from gimm_trt.core import deps

    gone = {m for m, extra in deps.EXTRAS.items() if extra in ("onnx", "triton")}
    real = deps.installed
    monkeypatch.setattr(deps, "installed", lambda module: module not in gone and real(module))
    result = CliRunner().invoke(cli.doctor, ["--device", "cpu", "--work", tmp_path, "--json", tmp_path / "d.json"])
    assert result.exit_code == 0, result.output
    doc = json.loads((tmp_path / "d.json").read_text())
    checks = {c["name"]: c for c in doc["checks"]}
    assert checks["torch_model"]["status"] == "pass", checks["torch_model"]
    assert checks["torch_model"]["data"]["psnr_db"] is None or checks["torch_model"]["data"]["psnr_db"] >= 60
    for name in ("splat_triton_interpreter", "parser_static", "onnxruntime_cpu", "rtx_build"):
        assert checks[name]["status"] == "skip" and "is not installed" in checks[name]["detail"], checks[name]
    assert doc["versions"]["triton"] is None and "triton" in doc["versions"]
    assert doc["summary"] == {"pass": 1, "fail": 0, "skip": len(doctor.CHECKS) - 1}
    # each check once, in the table (stdout), which is format_table's; the log (stderr) repeats none
    for name in doctor.CHECKS:
        assert (result.stdout + result.stderr).count(f" {name} ") == 1, (name, result.stdout, result.stderr)
    assert result.stdout == doctor.format_table(doc) + "\n"
    assert f"1 passed, 0 failed, {len(doctor.CHECKS) - 1} skipped" in result.stdout


# ---------------------------------------------- the TensorRT checks themselves, over stand-ins for engines and GPU
class GraphedCrossFade(CrossFade):
    """The cross-fade stand-in run as ``EngineRunner`` runs a stage with CUDA graphs: a shape set's first call runs
    eagerly, the second captures, later ones replay. ``stale``: a replay that gives the captured call's output,
    as one would that ignored its new inputs."""

    def __init__(self, stale: bool):
        super().__init__()
        self.stale, self.seen, self.graphs = stale, {}, {}
        self.stages = {"synthesis": self}

    @property
    def captured(self) -> int:
        return len(self.graphs)

    def synthesis(self, img0, img1, feats, flowt, t, ds):
        key = (tuple(img0.shape), tuple(t.shape))
        self.seen[key] = self.seen.get(key, 0) + 1
        if key in self.graphs:
            return self.graphs[key].clone() if self.stale else super().synthesis(img0, img1, feats, flowt, t, ds)
        out = super().synthesis(img0, img1, feats, flowt, t, ds)
        if self.seen[key] == 2:
            self.graphs[key] = out.clone()
        return out


def _stand_in_engines(monkeypatch, graphed) -> list:
    """``frame_checks`` with TensorRT present and engines that are stand-ins: ``graphed`` with CUDA graphs, the plain
    cross-fade without. Returns the (cuda_graph, precision) of each engine set asked for."""
    from gimm_trt import Interpolator
    from gimm_trt.diagnostics import frame_checks

    asked = []

    def engines(ctx, cuda_graph, precision="fp32"):
        asked.append((cuda_graph, precision))
        return Interpolator(graphed if cuda_graph else CrossFade(), variant="R-P", weights="stand-in")

    monkeypatch.setattr(frame_checks, "need_tensorrt", lambda ctx: None)
    monkeypatch.setattr(frame_checks, "_engine_interp", engines)
    return asked


@pytest.mark.parametrize("stale", [False, True])
def test_cuda_graph_check_replays_on_another_pair_than_captured(stale, monkeypatch, tmp_path):
    graphed = GraphedCrossFade(stale)
    asked = _stand_in_engines(monkeypatch, graphed)
    result = doctor._run_one("cuda_graph", doctor.CHECKS["cuda_graph"], doctor.Context(torch.device("cpu"), tmp_path))
    assert graphed.captured == 1 and max(graphed.seen.values()) == 3  # eager, capture, replay of one shape set
    assert asked == [(True, "fp32"), (False, "fp32")]
    assert result["data"]["graphs"] == 1
    if stale:  # pair 1 replayed with pair 0's frames: far from eager on pair 1
        assert result["status"] == "fail" and result["data"]["psnr_db"] < 30, result
    else:
        assert result["status"] == "pass" and result["data"]["psnr_db"] is None, result


def test_cuda_graph_check_fails_when_nothing_was_captured(monkeypatch, tmp_path):
    graphed = GraphedCrossFade(stale=False)
    graphed.stages = {}
    _stand_in_engines(monkeypatch, graphed)
    result = doctor._run_one("cuda_graph", doctor.CHECKS["cuda_graph"], doctor.Context(torch.device("cpu"), tmp_path))
    assert result["status"] == "fail" and "no stage captured a CUDA graph" in result["detail"]


@pytest.mark.parametrize("noise", [0.001, 0.1])
def test_fp16_engine_check_judges_the_fp16_export_against_torch_fp32(noise, monkeypatch, tmp_path):
    from gimm_trt.diagnostics import frame_checks

    asked = _stand_in_engines(monkeypatch, None)
    ctx = doctor.Context(torch.device("cpu"), tmp_path)
    img0, img1 = frame_checks.doctor_pair()
    engine = CrossFade()
    frames = Interpolator(engine, variant="R-P", weights="stand-in").interpolate(img0, img1, frame_checks.TIMESTEPS)
    # torch's fp32 frames as the reference: the stand-in's frames off by +-noise
    sign = torch.where(torch.rand(frames.shape, generator=torch.Generator().manual_seed(1)) < 0.5, -1.0, 1.0)
    ctx.made["reference"] = frames + noise * sign
    result = doctor._run_one("trt_engines_fp16", doctor.CHECKS["trt_engines_fp16"], ctx)
    assert asked == [(False, "fp16")]
    db = result["data"]["psnr_db"]
    assert abs(db - 20 * math.log10(1 / noise)) < 0.1, result
    assert result["status"] == ("pass" if db >= frame_checks.TRT_FP16_MIN_DB else "fail")
    assert result["status"] == ("pass" if noise < 0.01 else "fail") and "engines fp16 vs torch fp32" in result["detail"]


# A stand-in for the TensorRT runtime in the plan check's child process, keeping what TensorRT documents:
# deserialize_cuda_engine returns None and logs an ERROR when it cannot deserialize; get_creator returns None for
# a plugin nobody registered.
FAKE_TRT = """
import enum, sys
{extra}

class ILogger:
    class Severity(enum.IntEnum):
        INTERNAL_ERROR = 0
        ERROR = 1
        WARNING = 2

    def __init__(self):
        pass


class _Engine:
    num_layers = 1

    def create_execution_context(self):
        return object()


class Runtime:
    def __init__(self, logger):
        self.logger = logger

    def deserialize_cuda_engine(self, data):
        if data.startswith(b"plan:aot"):
            return _Engine()
        self.logger.log(ILogger.Severity.ERROR, "deserializeCudaEngine: plugin creator gimm_trt::splat not found")
        return None


class _Registry:
    def get_creator(self, name, version, namespace):
        return None


def get_plugin_registry():
    return _Registry()


def init_libnvinfer_plugins(logger, namespace):
    return True
"""


@pytest.mark.parametrize(
    "plan, extra, want",
    [
        (b"plan:aot", "", "pass"),
        (b"plan:jit", "", "plugin creator gimm_trt::splat not found"),
        (b"plan:aot", "import triton", "it imported triton"),
    ],
)
def test_python_free_plan_check_loads_the_plan_with_tensorrt_alone(plan, extra, want, monkeypatch, tmp_path):
    from gimm_trt.diagnostics import splat_checks

    site = tmp_path / "site" / "tensorrt"
    site.mkdir(parents=True)
    (site / "__init__.py").write_text(FAKE_TRT.format(extra=extra))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(site.parent), os.environ.get("PYTHONPATH", "")]))
    path = tmp_path / "splat.plan"
    path.write_bytes(plan)
    monkeypatch.setattr(splat_checks, "need_tensorrt", lambda ctx: None)
    monkeypatch.setattr(splat_checks, "_splat_plan", lambda ctx: {"plan": path})
    ctx = doctor.Context(torch.device("cuda", 0), tmp_path)
    result = doctor._run_one("trt_plan_python_free", doctor.CHECKS["trt_plan_python_free"], ctx)
    if want == "pass":
        assert result["status"] == "pass" and result["data"]["imported"] == [], result
        assert result["detail"] == "splat.plan (1 layers) loads and gets a context with TensorRT alone"
    else:
        assert result["status"] == "fail" and want in result["detail"], result
