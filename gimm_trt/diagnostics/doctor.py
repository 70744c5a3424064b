"""gimm-doctor: what is installed here and whether each path computes what the PyTorch reference does.

    from gimm_trt.diagnostics import doctor

    doc = doctor.run_checks()                      # device=None: CUDA if present, else the CPU
    print(doctor.format_table(doc))                # versions, then one line per check
    doctor.write_json(doc, "doctor.json")          # the gimm-doctor/1 document
    doc = doctor.run_checks(export_dir="exports/R-P-fp16-4k")   # versions + the parser check of one export
    doc = doctor.run_checks(export_dir="exports/R-fp32-4k", engine="tensorrt-rtx")   # the real TensorRT-RTX parser

Each check passes, fails, or is skipped with the reason (a missing package, no GPU; a TensorRT that is installed
but does not import fails on a CUDA device, with its import error). Everywhere: the torch backend against the
model's own forward (torch alone is enough), the Triton kernel under its interpreter (CPU only), ONNX Runtime on
the CPU, TensorRT's parser (static) on the export the engines are built from, and TensorRT-RTX's ahead-of-time
build of it (no GPU needed). On a CUDA device: the splat op in Triton and CuPy against the torch reference (three
modes), torch fp16 against fp32, ONNX Runtime's CUDA provider against torch, the TensorRT plugin (registered, one
single-node engine with the AOT kernel against torch, and that plan loaded by a process with TensorRT alone), R-P
engine sets (256x256, fp32 and fp16) against torch fp32, CUDA-graph replay on another pair than captured against
eager, and the TensorRT-RTX engines against torch fp32. The exports and the engines are cached in
``$GIMM_TRT_CACHE/doctor`` (or ``work``): a second run reuses them.

Every check is a small function of a ``Context``; ``CHECKS`` lists them in order, so one can be run alone::

    doctor.run_checks(checks=("splat_triton_cuda",))
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Optional

import torch

from ..benchmarks.env import environment
from ..core import deps, files
from ..core.cuda import driver_cuda_version
from ..core.errors import InputError
from ..core.trt import probe
from . import rtx_parser
from .context import DOCTOR_RESOLUTION, DOCTOR_VARIANT, Context, Skip
from .frame_checks import (
    ORT_MIN_DB,
    check_cuda_graph,
    check_onnxruntime_cpu,
    check_onnxruntime_cuda,
    check_torch_fp16,
    check_torch_model,
    check_trt_engines,
    check_trt_engines_fp16,
    ort_providers,
)
from .parser_checks import ENGINES, check_parser_static, export_check
from .rtx_checks import check_rtx_build, check_rtx_engines
from .splat_checks import (
    SPLAT_REL_TOL,
    aot_ptx_isa,
    check_splat_cupy_cuda,
    check_splat_triton_cuda,
    check_splat_triton_interpreter,
    check_trt_plan_python_free,
    check_trt_plugin,
    splat_diffs,
)

__all__ = [
    "SCHEMA",
    "STATUSES",
    "CHECKS",
    "ENGINES",
    "Context",
    "Skip",
    "run_checks",
    "versions",
    "format_table",
    "write_json",
    "splat_diffs",
    "DOCTOR_RESOLUTION",
    "DOCTOR_VARIANT",
    "SPLAT_REL_TOL",
    "ORT_MIN_DB",
]

SCHEMA = "gimm-doctor/1"
STATUSES = ("pass", "fail", "skip")


def versions(device: torch.device) -> dict:
    """``benchmarks.env.environment`` plus what the doctor's checks use: Triton, CuPy, Polygraphy, ONNX Runtime's
    providers, whether TensorRT is usable (not just importable) and why not where it is installed but broken,
    the CUDA release the driver supports, the PTX ISA the splat kernel is compiled to for TensorRT on ``device``,
    and TensorRT-RTX's version or why it does not import."""
    env = environment(device)
    tensorrt = probe("tensorrt")
    env.update(
        triton=deps.version("triton"),
        cupy=deps.version("cupy"),
        polygraphy=deps.version("polygraphy"),
        onnxruntime_providers=ort_providers(),
        tensorrt_usable=tensorrt.usable,
        tensorrt_broken=tensorrt.error if tensorrt.broken else None,
        cuda_driver=driver_cuda_version(),
        ptx_isa=aot_ptx_isa(device),
        tensorrt_rtx=rtx_parser.version(),
        tensorrt_rtx_unavailable=rtx_parser.unavailable(),
    )
    return env


CHECKS = {  # name -> check; in the order they run
    "torch_model": check_torch_model,
    "splat_triton_interpreter": check_splat_triton_interpreter,
    "splat_triton_cuda": check_splat_triton_cuda,
    "splat_cupy_cuda": check_splat_cupy_cuda,
    "torch_fp16": check_torch_fp16,
    "parser_static": check_parser_static,
    "onnxruntime_cpu": check_onnxruntime_cpu,
    "onnxruntime_cuda": check_onnxruntime_cuda,
    "trt_plugin": check_trt_plugin,
    "trt_plan_python_free": check_trt_plan_python_free,
    "trt_engines": check_trt_engines,
    "trt_engines_fp16": check_trt_engines_fp16,
    "rtx_build": check_rtx_build,
    "rtx_engines": check_rtx_engines,
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
    return {"name": name, "status": status, "detail": detail, "seconds": seconds, "data": data}


def _resolve(device) -> torch.device:
    from ..runtime.backend import resolve_device

    return resolve_device(device)


def _work_dir(work) -> Path:
    if work is not None:
        return Path(work)
    from ..runtime.on_demand import cache_root

    return cache_root() / "doctor"


def run_checks(
    device=None,
    export_dir=None,
    *,
    engine: str = "tensorrt",
    work=None,
    checks=None,
    log: Optional[Callable[[str], None]] = None,
    show: Optional[Callable[[str], None]] = None,
) -> dict:
    """Versions and checks as a ``gimm-doctor/1`` document; ``doc["ok"]`` is False when any check failed.

    Args:
        device: ``"cpu"``, ``"cuda"``, ``"cuda:N"``; None: CUDA when present, else the CPU.
        export_dir: check only this gimm-export directory against ``engine``'s parser (plus the versions); its
            op inventory is ``doc["export"]``.
        engine: with ``export_dir``: ``"tensorrt"`` (the static table check, 10.9+ and 11.x) or
            ``"tensorrt-rtx"`` (the real TensorRT-RTX parser when ``tensorrt_rtx`` imports, else its column
            of the table).
        work: where the doctor's export and engines go (default ``$GIMM_TRT_CACHE/doctor``).
        checks: names from ``CHECKS`` to run (default all).
        log: called with progress lines (what is being made; never a check's result).
        show: called with the parts of ``format_table``'s table as they are known (the versions, each check's
            line as it ends, the closing lines), so that a long run shows each result once, when it is in.
    """
    if engine not in ENGINES:
        raise InputError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    if engine != ENGINES[0] and export_dir is None:
        raise InputError(f"engine {engine!r} applies to the check of an export directory (--export DIR)")
    log = log or (lambda message: None)
    show = show or (lambda text: None)
    names = tuple(CHECKS) if checks is None else tuple(checks)
    unknown = [n for n in names if n not in CHECKS]
    if unknown:  # before the versions, which start subprocesses and import TensorRT and Triton
        raise InputError(f"unknown check(s) {', '.join(unknown)}: choose from {', '.join(CHECKS)}")
    dev = _resolve(device)
    doc = {
        "schema": SCHEMA,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "device": str(dev),
        "versions": versions(dev),
        "checks": [],
    }
    show(_head(doc))
    if export_dir is not None:
        entry = export_check(Path(export_dir), doc, log, engine)
        doc["checks"].append(entry)
        show(_check_line(entry, _width([entry["name"]])))
    else:
        ctx = Context(device=dev, work=_work_dir(work), log=log)
        for name in names:
            doc["checks"].append(_run_one(name, CHECKS[name], ctx))
            show(_check_line(doc["checks"][-1], _width(names)))
    doc["summary"] = {s: sum(c["status"] == s for c in doc["checks"]) for s in STATUSES}
    doc["ok"] = doc["summary"]["fail"] == 0
    show(_tail(doc))
    return doc


# --- output --------------------------------------------------------------------------------------------------------

_SHOWN = (
    "gimm_trt",
    "python",
    "torch",
    "cuda",
    "cudnn",
    "driver",
    "cuda_driver",
    "ptx_isa",
    "gpu",
    "triton",
    "cupy",
    "onnxruntime",
    "onnxruntime_providers",
    "tensorrt",
    "tensorrt_usable",
    "tensorrt_rtx",
    "polygraphy",
    "git_commit",
)


def _shown(v: dict, key: str) -> str:
    value = v.get(key)
    if key == "tensorrt_rtx" and value is None:
        return f"- ({v.get('tensorrt_rtx_unavailable')})"
    if key == "tensorrt" and value is None and v.get("tensorrt_broken"):
        return f"- (installed but broken: {v['tensorrt_broken']})"
    if isinstance(value, list):
        value = ", ".join(value)
    return "-" if value is None else str(value)


def _head(doc: dict) -> str:
    lines = [f"gimm-doctor on {doc['device']}"]
    lines += [f"  {key:<22} {_shown(doc['versions'], key)}" for key in _SHOWN]
    return "\n".join(lines) + "\n"


def _width(names) -> int:
    return max([len(n) for n in names] + [5])


def _check_line(c: dict, width: int) -> str:
    return f"  {c['status'].upper():<5} {c['name']:<{width}} {c['seconds']:>6.1f} s  {c['detail']}"


def _tail(doc: dict) -> str:
    lines = []
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


def format_table(doc: dict) -> str:
    """Versions, then one line per check: status, name, seconds, detail; then the export's findings, if any, and
    the counts. ``run_checks(show=...)`` hands out the same text in parts as the run goes."""
    width = _width([c["name"] for c in doc["checks"]])
    return "\n".join([_head(doc), *(_check_line(c, width) for c in doc["checks"]), _tail(doc)])


def write_json(doc: dict, path) -> Path:
    """The document at ``path``, atomically (a reader never sees half of it); values JSON lacks as text."""
    return files.write_json(doc, path, default=str)
