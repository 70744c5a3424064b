"""gimm-doctor: what is installed here and whether each path computes what the PyTorch reference does.

    from gimm_trt.benchmarks import doctor

    doc = doctor.run_checks()                      # device=None: CUDA if present, else the CPU
    print(doctor.format_table(doc))                # versions, then one line per check
    doctor.write_json(doc, "doctor.json")          # the gimm-doctor/1 document
    doc = doctor.run_checks(export_dir="exports/R-P-fp16-4k")   # versions + the parser check of one export

Each check passes, fails, or is skipped with the reason (a missing package, no GPU). On a CUDA device: the
splat op in Triton and CuPy against the torch reference (three modes), torch fp16 against fp32, ONNX Runtime's
CUDA provider against torch, the TensorRT plugin (registered, one single-node engine against torch), an R-P
engine set (256x256) against torch fp32, and CUDA-graph replay against eager. Everywhere: the Triton kernel
under its interpreter (CPU only), ONNX Runtime on the CPU and TensorRT's parser (static) on the export those
engines are built from. The export and the engines are cached in ``$GIMM_TRT_CACHE/doctor`` (or ``work``): a
second run reuses them.

Every check is a small function of a ``Context``; ``CHECKS`` lists them in order, so one can be run alone::

    doctor.run_checks(checks=("splat_triton_cuda",))
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import torch

from ..core import deps
from ..core.errors import InputError
from ..core.files import atomic_write
from ..core.metrics import psnr_from_mse
from ..plugins import schema
from .env import environment

__all__ = [
    "SCHEMA",
    "CHECKS",
    "Context",
    "Skip",
    "run_checks",
    "versions",
    "format_table",
    "write_json",
    "splat_diffs",
    "DOCTOR_RESOLUTION",
    "DOCTOR_VARIANT",
]

SCHEMA = "gimm-doctor/1"
STATUSES = ("pass", "fail", "skip")
DOCTOR_VARIANT = "R-P"
DOCTOR_RESOLUTION = "256x256"
TIMESTEPS = (0.25, 0.5, 0.75)
# pass thresholds (frames in [0,1]; splat accumulations relative to their largest value)
SPLAT_REL_TOL = 1e-4  # fp32 atomics add in any order; a wrong kernel is off by O(1)
FP16_MIN_DB = 30.0  # torch fp16 vs fp32 frames
ORT_MIN_DB = 60.0  # ONNX Runtime fp32 vs torch fp32 frames
TRT_MIN_DB = 40.0  # TensorRT fp32 engines (TF32 off) vs torch fp32 frames
GRAPH_MIN_DB = 60.0  # CUDA-graph replay vs eager, same engines (only the splat's atomics may reorder sums)


class Skip(Exception):
    """A check that cannot run here; the message says why."""


@dataclass
class Context:
    """What the checks share: the device, where the export and engines go, the log, and what was made once."""

    device: torch.device
    work: Path
    log: Callable[[str], None] = lambda message: None
    made: dict = field(default_factory=dict)

    @property
    def cuda(self) -> bool:
        return self.device.type == "cuda"


# --- versions ------------------------------------------------------------------------------------------------------


def versions(device: torch.device) -> dict:
    """``benchmarks.env.environment`` plus what the doctor's checks use: Triton, CuPy, Polygraphy, ONNX Runtime's
    providers and whether TensorRT is usable (not just importable)."""
    env = environment(device)
    env.update(
        triton=deps.version("triton"),
        cupy=deps.version("cupy"),
        polygraphy=deps.version("polygraphy"),
        onnxruntime_providers=_ort_providers(),
        tensorrt_usable=deps.usable("tensorrt"),
    )
    return env


def _ort_providers() -> Optional[list]:
    if not deps.installed("onnxruntime"):
        return None
    try:
        import onnxruntime

        return list(onnxruntime.get_available_providers())
    except Exception:  # a broken install is reported as absent
        return None


# --- the splat op -----------------------------------------------------------------------------------------------


def _splat_case(device, small: bool):
    """x, flow, metric: seeded, with sources piling up on shared targets and some leaving the frame."""
    n, c, h, w = (1, 3, 12, 20) if small else (2, 8, 67, 120)
    g = torch.Generator().manual_seed(7)
    x = torch.randn(n, c, h, w, generator=g)
    flow = torch.randn(n, 2, h, w, generator=g) * (3 if small else 6)
    metric = torch.randn(n, 1, h, w, generator=g)
    return x.to(device), flow.to(device), metric.to(device)


def splat_diffs(impl: str, device="cpu") -> dict:
    """mode -> {max_abs, ref_max_abs}: ``accumulate`` by ``impl`` against the torch reference on ``device``."""
    from ..plugins.ops import accumulate

    device = torch.device(device)
    x, flow, metric = _splat_case(device, small=device.type == "cpu")
    out = {}
    for mode in schema.MODES:
        want = accumulate(x, flow, metric, mode, impl="torch")
        got = accumulate(x, flow, metric, mode, impl=impl)
        if got.shape != want.shape:
            raise AssertionError(f"{impl} {mode}: shape {tuple(got.shape)}, want {tuple(want.shape)}")
        out[mode] = {
            "max_abs": (got.double() - want.double()).abs().max().item(),
            "ref_max_abs": want.abs().max().item(),
        }
    return out


def _judge_splat(impl: str, diffs: dict) -> tuple:
    worst = max(d["max_abs"] / max(d["ref_max_abs"], 1e-30) for d in diffs.values())
    detail = f"{impl} vs torch ({', '.join(diffs)}): max |d| / max |ref| = {worst:.1e} (<= {SPLAT_REL_TOL:g})"
    return ("pass" if worst <= SPLAT_REL_TOL else "fail"), detail, {"modes": diffs, "worst_rel": worst}


def _need_cuda(ctx: Context) -> None:
    if not ctx.cuda:
        why = "no CUDA GPU here" if not torch.cuda.is_available() else f"running on {ctx.device}"
        raise Skip(f"needs a CUDA device ({why})")


def _need(module: str) -> None:
    if not deps.installed(module):
        raise Skip(f"{module} is not installed: {deps.install_hint(module)}")


def check_splat_triton_cuda(ctx: Context) -> tuple:
    _need_cuda(ctx)
    _need("triton")
    return _judge_splat("triton", splat_diffs("triton", ctx.device))


def check_splat_cupy_cuda(ctx: Context) -> tuple:
    _need_cuda(ctx)
    _need("cupy")
    return _judge_splat("cupy", splat_diffs("cupy", ctx.device))


_INTERPRETER_CODE = (
    "import json; from gimm_trt.benchmarks.doctor import splat_diffs; "
    "print('DIFFS ' + json.dumps(splat_diffs('triton', 'cpu')))"
)


def check_splat_triton_interpreter(ctx: Context) -> tuple:
    """The Triton kernel on CPU tensors under ``TRITON_INTERPRET=1``, which must be set before triton is first
    imported: so in a fresh interpreter."""
    if ctx.cuda:
        raise Skip("a CUDA device is checked instead (splat_triton_cuda)")
    _need("triton")
    root = str(Path(__file__).resolve().parents[2])  # the directory holding this gimm_trt
    env = dict(
        os.environ,
        TRITON_INTERPRET="1",
        PYTHONPATH=os.pathsep.join([root] + [p for p in [os.environ.get("PYTHONPATH")] if p]),
    )
    run = subprocess.run(
        [sys.executable, "-c", _INTERPRETER_CODE], env=env, capture_output=True, text=True, timeout=600
    )
    line = next((s for s in run.stdout.splitlines() if s.startswith("DIFFS ")), None)
    if run.returncode != 0 or line is None:
        tail = " ".join((run.stderr or run.stdout).strip().splitlines()[-3:])
        return "fail", f"the interpreter run failed (exit {run.returncode}): {tail[-400:]}", {}
    return _judge_splat("triton (interpreter)", json.loads(line[len("DIFFS ") :]))


# --- models and frames ----------------------------------------------------------------------------------------------


def _pair():
    from ..core.sizes import parse_resolution
    from ..model.synthetic import synthetic_pair

    res = parse_resolution(DOCTOR_RESOLUTION)
    return synthetic_pair(res.height, res.width, seed=0)


def _psnr(a: torch.Tensor, b: torch.Tensor) -> Optional[float]:
    return psnr_from_mse((a.detach().double().cpu() - b.detach().double().cpu()).pow(2).mean().item())


def _db(value: Optional[float]) -> str:
    return "inf" if value is None else f"{value:.1f}"


def _torch_interp(ctx: Context, precision: str = "fp32"):
    from ..runtime import Interpolator

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "random weights": the doctor says so once in its table
        return Interpolator.from_checkpoint(
            None, variant=DOCTOR_VARIANT, backend="torch", device=ctx.device, precision=precision, random_weights=True
        )


def _reference_frames(ctx: Context) -> torch.Tensor:
    """torch fp32 frames of the doctor's pair on ``ctx.device`` (computed once)."""
    if "reference" not in ctx.made:
        img0, img1 = _pair()
        with torch.inference_mode():
            ctx.made["reference"] = _torch_interp(ctx).interpolate(img0, img1, TIMESTEPS).cpu()
    return ctx.made["reference"]


def _judge_frames(what: str, got: torch.Tensor, want: torch.Tensor, floor: float) -> tuple:
    db = _psnr(got, want)
    max_abs = (got.double().cpu() - want.double().cpu()).abs().max().item()
    status = "pass" if db is None or db >= floor else "fail"
    return (
        status,
        f"{what}: PSNR {_db(db)} dB (>= {floor:g}), max |d| {max_abs:.1e}",
        {"psnr_db": db, "max_abs": max_abs},
    )


def check_torch_fp16(ctx: Context) -> tuple:
    _need_cuda(ctx)
    img0, img1 = _pair()
    with torch.inference_mode():
        fp16 = _torch_interp(ctx, "fp16").interpolate(img0, img1, TIMESTEPS).cpu()
    return _judge_frames(f"torch fp16 vs fp32, {DOCTOR_RESOLUTION}", fp16, _reference_frames(ctx), FP16_MIN_DB)


def _doctor_export(ctx: Context) -> Path:
    """The R-P 256x256 fp32 plugin export of seeded random weights, in ``ctx.work`` (reused when there)."""
    if "export" not in ctx.made:
        from ..export.exporter import ExportOptions, export

        options = ExportOptions(
            variant=DOCTOR_VARIANT, random_weights=True, resolution=DOCTOR_RESOLUTION, splat="plugin", precision="fp32"
        )
        ctx.log(
            f"doctor: the export of GIMM-VFI-{DOCTOR_VARIANT} (random weights) at {DOCTOR_RESOLUTION} in "
            f"{ctx.work / 'exports'} (made once, in minutes; reused after)"
        )
        ctx.made["export"] = export(options, ctx.work / "exports", log=ctx.log)
    return ctx.made["export"]


def check_onnxruntime_cpu(ctx: Context) -> tuple:
    """Each graph of the export in ONNX Runtime's CPU provider against torch, stage by stage."""
    _need("onnxruntime")
    for module in ("onnx", "onnxscript", "onnx_ir", "onnxruntime_extensions"):
        _need(module)
    from ..export.compare import compare_export
    from ..model.checkpoint import load_model

    export_dir = _doctor_export(ctx)
    model = load_model(None, variant=DOCTOR_VARIANT, random_weights=True)
    report = compare_export(export_dir, model, timesteps=TIMESTEPS)
    frames = report["synthesis"]["frames"]
    db = frames["psnr_db"]
    status = "pass" if db is None or db >= ORT_MIN_DB else "fail"
    return (
        status,
        (
            f"onnxruntime CPU vs torch fp32, {DOCTOR_RESOLUTION}: frames PSNR {_db(db)} dB "
            f"(>= {ORT_MIN_DB:g}), max |d| {frames['max_abs']:.1e}"
        ),
        {"stages": report},
    )


def check_parser_static(ctx: Context) -> tuple:
    """TensorRT's ONNX parser, statically, on the export the engines are built from."""
    for module in ("onnx", "onnxscript", "onnx_ir"):
        _need(module)
    from ..export import trt_support

    reports = trt_support.check_export(_doctor_export(ctx))
    found = trt_support.findings(reports)
    nodes = sum(e["count"] for r in reports.values() for e in r.ops.values())
    data = {"findings": [f.as_dict() for f in found], "nodes": nodes}
    if found:
        return "fail", f"{len(found)} finding(s): {found[0]}" + (" ..." if len(found) > 1 else ""), data
    return "pass", f"{nodes} nodes in 3 graphs: nothing TensorRT 10.9+/11.x's parser rejects or changes", data


def check_onnxruntime_cuda(ctx: Context) -> tuple:
    """The doctor's export on ONNX Runtime's CUDA provider (its splat nodes run as the onnxruntime-extensions
    op) against torch: the same export as the TensorRT checks, so one export serves all."""
    _need_cuda(ctx)
    _need("onnxruntime")
    providers = _ort_providers() or []
    if "CUDAExecutionProvider" not in providers:
        raise Skip(
            f"this onnxruntime has no CUDA provider (providers: {', '.join(providers)}): install onnxruntime-gpu"
        )
    _need("onnxruntime_extensions")
    from ..runtime import Interpolator

    img0, img1 = _pair()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        interp = Interpolator.from_export(_doctor_export(ctx), backend="onnxruntime", device=ctx.device)
    frames = interp.interpolate(img0, img1, TIMESTEPS).cpu()
    return _judge_frames(
        f"onnxruntime CUDA vs torch fp32, {DOCTOR_RESOLUTION}", frames, _reference_frames(ctx), ORT_MIN_DB
    )


# --- TensorRT ------------------------------------------------------------------------------------------------------


def _need_tensorrt(ctx: Context) -> None:
    from ..runtime.backend import unavailable

    _need_cuda(ctx)
    reason = unavailable("tensorrt", ctx.device)
    if reason:
        raise Skip(reason)


def _single_splat_graph(path: Path, shape: tuple, mode: str) -> None:
    import onnx
    from onnx import TensorProto, helper

    from ..plugins.onnx_node import make_node, register_onnx_schema

    register_onnx_schema()  # the checker validates the node against it
    n, c, h, w = shape
    inputs = [
        helper.make_tensor_value_info("x", TensorProto.FLOAT, [n, c, h, w]),
        helper.make_tensor_value_info("flow", TensorProto.FLOAT, [n, 2, h, w]),
        helper.make_tensor_value_info("metric", TensorProto.FLOAT, [n, 1, h, w]),
    ]
    out = helper.make_tensor_value_info("acc", TensorProto.FLOAT, [n, schema.out_channels(c, mode), h, w])
    graph = helper.make_graph(
        [make_node(["x", "flow", "metric"], ["acc"], mode=mode, name="splat")], "splat", inputs, [out]
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 18), helper.make_opsetid(schema.NAMESPACE, schema.VERSION)]
    )
    atomic_write(path, model.SerializeToString())
    onnx.checker.check_model(str(path))


def check_trt_plugin(ctx: Context) -> tuple:
    """The plugin is registered, and one engine of a single splat node matches torch."""
    _need_tensorrt(ctx)
    from ..core.trt import import_trt
    from ..engines.build import EngineBytesFromOnnx
    from ..engines.runner import TrtStage
    from ..plugins import trt_plugin  # noqa: F401  registers gimm_trt::splat on import
    from ..plugins.ops import accumulate

    trt = import_trt()
    creator = trt.get_plugin_registry().get_creator(schema.OP_NAME, str(schema.VERSION), schema.NAMESPACE)
    if creator is None:
        return "fail", f"{schema.PLUGIN_ID} v{schema.VERSION} is not in TensorRT's plugin registry", {}
    mode = schema.DEFAULT_MODE
    x, flow, metric = _splat_case(ctx.device, small=False)
    path = ctx.work / "splat_node" / f"splat-{mode}-{'x'.join(map(str, x.shape))}.onnx"
    _single_splat_graph(path, tuple(x.shape), mode)
    with torch.cuda.device(ctx.device):
        stage = TrtStage(EngineBytesFromOnnx(path)(), device=ctx.device)
        got = stage({"x": x, "flow": flow, "metric": metric})["acc"]
    want = accumulate(x, flow, metric, mode, impl="torch")
    status, detail, data = _judge_splat(
        "TensorRT engine of one splat node",
        {mode: {"max_abs": (got.double() - want.double()).abs().max().item(), "ref_max_abs": want.abs().max().item()}},
    )
    return status, f"plugin registered; {detail}", data


def _engine_interp(ctx: Context, cuda_graph: bool):
    from ..engines.build import build_engines
    from ..runtime import Interpolator
    from ..runtime.backend import TrtOptions

    export_dir = _doctor_export(ctx)
    if "plans" not in ctx.made:
        ctx.log("doctor: building TensorRT engines (minutes the first time; cached in the export after)")
        ctx.made["plans"] = build_engines(export_dir, device=ctx.device)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Interpolator.from_export(
            export_dir, backend="tensorrt", device=ctx.device, options=TrtOptions(cuda_graph=cuda_graph)
        )


def _engine_frames(ctx: Context) -> torch.Tensor:
    if "engine_frames" not in ctx.made:
        img0, img1 = _pair()
        ctx.made["engine_frames"] = _engine_interp(ctx, cuda_graph=False).interpolate(img0, img1, TIMESTEPS).cpu()
    return ctx.made["engine_frames"]


def check_trt_engines(ctx: Context) -> tuple:
    _need_tensorrt(ctx)
    return _judge_frames(
        f"TensorRT {DOCTOR_VARIANT} engines fp32 vs torch fp32, {DOCTOR_RESOLUTION}",
        _engine_frames(ctx),
        _reference_frames(ctx),
        TRT_MIN_DB,
    )


def check_cuda_graph(ctx: Context) -> tuple:
    """The same engines with CUDA graphs: the second call captures, the third replays; against eager."""
    _need_tensorrt(ctx)
    img0, img1 = _pair()
    interp = _engine_interp(ctx, cuda_graph=True)
    frames = [interp.interpolate(img0, img1, TIMESTEPS).cpu() for _ in range(3)]
    return _judge_frames("CUDA-graph replay vs eager (3rd call)", frames[-1], _engine_frames(ctx), GRAPH_MIN_DB)


CHECKS = {  # name -> check; in the order they run
    "splat_triton_interpreter": check_splat_triton_interpreter,
    "splat_triton_cuda": check_splat_triton_cuda,
    "splat_cupy_cuda": check_splat_cupy_cuda,
    "torch_fp16": check_torch_fp16,
    "parser_static": check_parser_static,
    "onnxruntime_cpu": check_onnxruntime_cpu,
    "onnxruntime_cuda": check_onnxruntime_cuda,
    "trt_plugin": check_trt_plugin,
    "trt_engines": check_trt_engines,
    "cuda_graph": check_cuda_graph,
}


# --- running -------------------------------------------------------------------------------------------------------


def _run_one(name: str, check: Callable, ctx: Context) -> dict:
    start = time.perf_counter()
    try:
        status, detail, data = check(ctx)
    except Skip as why:
        status, detail, data = "skip", str(why), {}
    except Exception as err:  # a crash, or a GimmError saying what to fix: reported, and the next check runs
        status, detail, data = "fail", f"{type(err).__name__}: {' '.join(str(err).split())[:500]}", {}
    seconds = round(time.perf_counter() - start, 2)
    ctx.log(f"doctor: {name}: {status} ({seconds:.1f} s) {detail}")
    return {"name": name, "status": status, "detail": detail, "seconds": seconds, "data": data}


def _resolve(device) -> torch.device:
    from ..runtime.backend import resolve_device

    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return resolve_device(device)


def _work_dir(work) -> Path:
    if work is not None:
        return Path(work)
    from ..runtime.on_demand import cache_root

    return cache_root() / "doctor"


def run_checks(
    device=None, export_dir=None, *, work=None, checks=None, log: Optional[Callable[[str], None]] = None
) -> dict:
    """Versions and checks as a ``gimm-doctor/1`` document; ``doc["ok"]`` is False when any check failed.

    Args:
        device: ``"cpu"``, ``"cuda"``, ``"cuda:N"``; None: CUDA when present, else the CPU.
        export_dir: check only this gimm-export directory against TensorRT's parser (plus the versions); its
            op inventory is ``doc["export"]``.
        work: where the doctor's export and engines go (default ``$GIMM_TRT_CACHE/doctor``).
        checks: names from ``CHECKS`` to run (default all).
        log: called with progress lines.
    """
    log = log or (lambda message: None)
    dev = _resolve(device)
    doc = {
        "schema": SCHEMA,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "device": str(dev),
        "versions": versions(dev),
        "checks": [],
    }
    if export_dir is not None:
        doc["checks"].append(_export_check(Path(export_dir), doc, log))
    else:
        names = tuple(CHECKS) if checks is None else tuple(checks)
        unknown = [n for n in names if n not in CHECKS]
        if unknown:
            raise InputError(f"unknown check(s) {', '.join(unknown)}: choose from {', '.join(CHECKS)}")
        ctx = Context(device=dev, work=_work_dir(work), log=log)
        doc["checks"] = [_run_one(name, CHECKS[name], ctx) for name in names]
    doc["summary"] = {s: sum(c["status"] == s for c in doc["checks"]) for s in STATUSES}
    doc["ok"] = doc["summary"]["fail"] == 0
    return doc


def _export_check(export_dir: Path, doc: dict, log) -> dict:
    """``--export DIR``: the static parser check of that directory; a missing or foreign one raises."""
    from ..export import trt_support

    start = time.perf_counter()
    reports = trt_support.check_export(export_dir)
    doc["export"] = {"path": str(export_dir), "graphs": {s: r.as_dict() for s, r in reports.items()}}
    found = trt_support.findings(reports)
    nodes = sum(e["count"] for r in reports.values() for e in r.ops.values())
    for f in found:
        log(f"doctor: finding: {f}")
    detail = (
        (
            f"{len(found)} finding(s) in {nodes} nodes: "
            + "; ".join(str(f) for f in found[:5])
            + (" ..." if len(found) > 5 else "")
        )
        if found
        else f"{nodes} nodes in {len(reports)} graphs: nothing TensorRT 10.9+/11.x's parser rejects or changes"
    )
    return {
        "name": "parser_static",
        "status": "fail" if found else "pass",
        "detail": detail,
        "seconds": round(time.perf_counter() - start, 2),
        "data": {"findings": [f.as_dict() for f in found], "nodes": nodes},
    }


# --- output --------------------------------------------------------------------------------------------------------

_SHOWN = (
    "gimm_trt",
    "python",
    "torch",
    "cuda",
    "cudnn",
    "driver",
    "gpu",
    "triton",
    "cupy",
    "onnxruntime",
    "onnxruntime_providers",
    "tensorrt",
    "tensorrt_usable",
    "polygraphy",
    "git_commit",
)


def format_table(doc: dict) -> str:
    """Versions, then one line per check: status, name, seconds, detail."""
    v = doc["versions"]
    lines = [f"gimm-doctor on {doc['device']}"]
    for key in _SHOWN:
        value = v.get(key)
        if isinstance(value, list):
            value = ", ".join(value)
        lines.append(f"  {key:<22} {'-' if value is None else value}")
    lines.append("")
    width = max([len(c["name"]) for c in doc["checks"]] + [5])
    for c in doc["checks"]:
        lines.append(f"  {c['status'].upper():<5} {c['name']:<{width}} {c['seconds']:>6.1f} s  {c['detail']}")
    if "export" in doc:
        from ..export.trt_support import Finding, GraphReport, format_reports

        reports = {
            s: GraphReport(
                graph=s,
                opsets=g["opsets"],
                ops=g["ops"],
                findings=[Finding(**{**f, "versions": tuple(f["versions"])}) for f in g["findings"]],
            )
            for s, g in doc["export"]["graphs"].items()
        }
        lines += ["", format_reports(reports)]
    s = doc["summary"]
    lines += [
        "",
        f"{s['pass']} passed, {s['fail']} failed, {s['skip']} skipped"
        + ("" if doc["ok"] else ": see the FAIL lines above"),
    ]
    return "\n".join(lines)


def write_json(doc: dict, path) -> Path:
    """The document at ``path``, atomically (a reader never sees half of it)."""
    # allow_nan=False: a NaN would make the file unreadable by strict JSON parsers; fail here instead
    return atomic_write(path, (json.dumps(doc, indent=2, allow_nan=False, default=str) + "\n").encode())
