"""The splat op: Triton and CuPy against the torch reference, the Triton kernel under its interpreter, and the
TensorRT plugin (registered, one single-node engine against torch)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch

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


def check_trt_plugin(ctx: Context) -> tuple:
    """The plugin is registered, and one engine of a single splat node matches torch."""
    need_tensorrt(ctx)
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
