"""The splat op: Triton and CuPy against the torch reference, the Triton kernel under its interpreter, and the
TensorRT plugin (registered, one single-node engine with the AOT kernel against torch, and that plan loaded by a
process with TensorRT alone)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Optional

import torch

from ..core import deps
from ..core.files import atomic_write
from ..plugins import schema
from .context import Context, Skip, need, need_cuda, need_tensorrt

__all__ = [
    "SPLAT_REL_TOL",
    "splat_diffs",
    "check_splat_triton_cuda",
    "check_splat_cupy_cuda",
    "check_splat_triton_interpreter",
    "check_trt_plugin",
    "check_trt_plan_python_free",
    "aot_ptx_isa",
]

SPLAT_REL_TOL = 1e-4  # fp32 atomics add in any order; a wrong kernel is off by O(1)


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


def check_splat_triton_cuda(ctx: Context) -> tuple:
    need_cuda(ctx)
    need("triton")
    return _judge_splat("triton", splat_diffs("triton", ctx.device))


def check_splat_cupy_cuda(ctx: Context) -> tuple:
    need_cuda(ctx)
    need("cupy")
    return _judge_splat("cupy", splat_diffs("cupy", ctx.device))


_INTERPRETER_CODE = (
    "import json; from gimm_trt.diagnostics.splat_checks import splat_diffs; "
    "print('DIFFS ' + json.dumps(splat_diffs('triton', 'cpu')))"
)


def check_splat_triton_interpreter(ctx: Context) -> tuple:
    """The Triton kernel on CPU tensors under ``TRITON_INTERPRET=1``, which must be set before triton is first
    imported: so in a fresh interpreter."""
    if ctx.cuda:
        raise Skip("a CUDA device is checked instead (splat_triton_cuda)")
    need("triton")
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


def aot_ptx_isa(device: torch.device) -> Optional[str]:
    """``"8.7"``: the PTX ISA the splat kernel is compiled to for a TensorRT engine on ``device`` (the lower of what
    Triton's ptxas and the driver take, ``triton_kernel.aot_ptx_version``); None without a CUDA device or Triton."""
    if device.type != "cuda" or not deps.installed("triton"):
        return None
    try:
        from ..plugins.triton_kernel import aot_ptx_version
    except ImportError:  # a Triton that does not import: its own version line says so
        return None
    major, minor = torch.cuda.get_device_capability(device)
    isa = aot_ptx_version(major * 10 + minor)
    return None if isa is None else f"{isa // 10}.{isa % 10}"


def _splat_plan(ctx: Context) -> dict:
    """The engine of one splat node with the ahead-of-time kernel (the node's ``aot=1``), built once per run: its
    plan file, inputs on ``ctx.device`` and torch's output for them."""
    if "splat_plan" not in ctx.made:
        from ..engines.build import EngineBytesFromOnnx
        from ..plugins.ops import accumulate

        mode = schema.DEFAULT_MODE
        x, flow, metric = _splat_case(ctx.device, small=False)
        stem = ctx.work / "splat_node" / f"splat-{mode}-{'x'.join(map(str, x.shape))}"
        _single_splat_graph(stem.with_suffix(".onnx"), tuple(x.shape), mode)
        with torch.cuda.device(ctx.device):
            plan = atomic_write(stem.with_suffix(".plan"), EngineBytesFromOnnx(stem.with_suffix(".onnx"))())
        ctx.made["splat_plan"] = {
            "plan": plan,
            "mode": mode,
            "inputs": {"x": x, "flow": flow, "metric": metric},
            "want": accumulate(x, flow, metric, mode, impl="torch"),
        }
    return ctx.made["splat_plan"]


def check_trt_plugin(ctx: Context) -> tuple:
    """The plugin is registered, and the engine of one splat node with the AOT kernel, built here for this GPU and
    driver, matches torch: a PTX ISA newer than the driver takes fails here, not in a whole model."""
    need_tensorrt(ctx)
    from ..core.trt import import_trt
    from ..engines.runner import TrtStage
    from ..plugins import trt_plugin  # noqa: F401  registers gimm_trt::splat on import

    trt = import_trt()
    creator = trt.get_plugin_registry().get_creator(schema.OP_NAME, str(schema.VERSION), schema.NAMESPACE)
    if creator is None:
        return "fail", f"{schema.PLUGIN_ID} v{schema.VERSION} is not in TensorRT's plugin registry", {}
    built = _splat_plan(ctx)
    with torch.cuda.device(ctx.device):
        got = TrtStage(built["plan"], device=ctx.device)(built["inputs"])["acc"]
    want = built["want"]
    status, detail, data = _judge_splat(
        "TensorRT engine of one AOT splat node",
        {
            built["mode"]: {
                "max_abs": (got.double() - want.double()).abs().max().item(),
                "ref_max_abs": want.abs().max().item(),
            }
        },
    )
    isa = aot_ptx_isa(ctx.device)
    return status, f"plugin registered; PTX ISA {isa or '-'}; {detail}", {**data, "ptx_isa": isa}


# Run by a fresh interpreter that imports TensorRT and nothing of ours: loads a plan as a C++ program or trtexec
# would, where the splat plugin's Python definitions do not exist. Prints one PLAN line of JSON.
_TRT_ONLY_CODE = """
import json, sys
import tensorrt as trt

class Log(trt.ILogger):
    def __init__(self):
        trt.ILogger.__init__(self)
        self.errors = []

    def log(self, severity, message):
        if severity in (trt.ILogger.Severity.INTERNAL_ERROR, trt.ILogger.Severity.ERROR):
            self.errors.append(message)

log = Log()
trt.init_libnvinfer_plugins(log, "")  # NVIDIA's own plugins, as a C++ program would initialise them
runtime = trt.Runtime(log)  # kept: a runtime must outlive its engines
with open(sys.argv[1], "rb") as f:
    engine = runtime.deserialize_cuda_engine(f.read())
context = None if engine is None else engine.create_execution_context()
creator = trt.get_plugin_registry().get_creator(*sys.argv[2:5])
print("PLAN " + json.dumps({
    "engine": engine is not None,
    "context": context is not None,
    "layers": None if engine is None else engine.num_layers,
    "errors": log.errors,
    "plugin_registered": creator is not None,
    "imported": sorted(m for m in ("gimm_trt", "torch", "triton") if m in sys.modules),
}))
"""


def _visible_device(device: torch.device) -> str:
    """``CUDA_VISIBLE_DEVICES`` for a child process whose device 0 is ``device``."""
    index = torch.cuda.current_device() if device.index is None else device.index
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    return visible.split(",")[index].strip() if visible else str(index)


def check_trt_plan_python_free(ctx: Context) -> tuple:
    """The AOT splat plan deserialized, with an execution context, by a process that imports TensorRT alone (no
    gimm_trt, Triton or torch, no splat plugin registered from Python): what a C++ deployment needs of it."""
    need_tensorrt(ctx)
    plan = _splat_plan(ctx)["plan"]
    env = dict(os.environ, CUDA_VISIBLE_DEVICES=_visible_device(ctx.device))
    argv = [sys.executable, "-c", _TRT_ONLY_CODE, str(plan), schema.OP_NAME, str(schema.VERSION), schema.NAMESPACE]
    run = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600)
    line = next((s for s in run.stdout.splitlines() if s.startswith("PLAN ")), None)
    if run.returncode != 0 or line is None:
        tail = " ".join((run.stderr or run.stdout).strip().splitlines()[-3:])
        return "fail", f"the TensorRT-only process failed (exit {run.returncode}): {tail[-400:]}", {}
    got = json.loads(line[len("PLAN ") :])
    problems = []
    if got["imported"]:
        problems.append(f"it imported {', '.join(got['imported'])}")
    if got["plugin_registered"]:
        problems.append("a splat plugin was registered in it")
    if not got["engine"]:
        problems.append(f"no engine: {' '.join(got['errors'])[:400]}")
    elif not got["context"]:
        problems.append(f"no execution context: {' '.join(got['errors'])[:400]}")
    if problems:
        return "fail", f"{plan.name} in a process with TensorRT alone: {'; '.join(problems)}", got
    return "pass", f"{plan.name} ({got['layers']} layers) loads and gets a context with TensorRT alone", got
