"""Whole models against the torch fp32 frames of the doctor's pair: those frames against the model's own forward,
torch fp16, ONNX Runtime (CPU stage by stage, CUDA), the TensorRT engines (fp32 and fp16) and their CUDA-graph
replay."""

from __future__ import annotations

from typing import Optional

import torch

from .context import (
    DOCTOR_RESOLUTION,
    DOCTOR_VARIANT,
    TIMESTEPS,
    Context,
    Skip,
    db_text,
    doctor_export,
    doctor_pair,
    export_interp,
    judge_frames,
    need,
    need_cuda,
    need_tensorrt,
    reference_frames,
    torch_interp,
)

__all__ = [
    "TORCH_MIN_DB",
    "FP16_MIN_DB",
    "ORT_MIN_DB",
    "TRT_MIN_DB",
    "TRT_FP16_MIN_DB",
    "GRAPH_MIN_DB",
    "ort_providers",
    "check_torch_model",
    "check_torch_fp16",
    "check_onnxruntime_cpu",
    "check_onnxruntime_cuda",
    "check_trt_engines",
    "check_trt_engines_fp16",
    "check_cuda_graph",
]

# pass thresholds (frames in [0,1])
TORCH_MIN_DB = 60.0  # the torch backend vs the model's forward: the same fp32 ops, batched differently at most
FP16_MIN_DB = 30.0  # torch fp16 vs fp32 frames
ORT_MIN_DB = 60.0  # ONNX Runtime fp32 vs torch fp32 frames
TRT_MIN_DB = 40.0  # TensorRT fp32 engines (TF32 off) vs torch fp32 frames
TRT_FP16_MIN_DB = FP16_MIN_DB  # TensorRT fp16 engines vs torch fp32 frames: held to what torch fp16 must reach
GRAPH_MIN_DB = 60.0  # CUDA-graph replay vs eager, same engines (only the splat's atomics may reorder sums)


def ort_providers() -> Optional[list]:
    from ..core import deps

    if not deps.installed("onnxruntime"):
        return None
    try:
        import onnxruntime

        return list(onnxruntime.get_available_providers())
    except Exception:  # a broken install is reported as absent
        return None


def check_torch_model(ctx: Context) -> tuple:
    """The torch backend's fp32 frames of the doctor's pair (the Interpolator: batching, per-frame encoding; the
    reference of every other check) against the model's own forward, on ``ctx.device``: the check that needs
    torch alone."""
    from ..model.checkpoint import load_model
    from ..runtime.torch_backend import exact_fp32

    model = load_model(None, variant=DOCTOR_VARIANT, random_weights=True).to(ctx.device)
    img0, img1 = (img.to(ctx.device) for img in doctor_pair())  # 256x256: already a multiple of 32, no padding
    with torch.inference_mode(), exact_fp32(ctx.device):
        direct = model(img0, img1, torch.tensor(TIMESTEPS, device=ctx.device)).cpu()
    return judge_frames(
        f"torch backend vs the model's forward, fp32, {DOCTOR_RESOLUTION}", reference_frames(ctx), direct, TORCH_MIN_DB
    )


def check_torch_fp16(ctx: Context) -> tuple:
    need_cuda(ctx)
    img0, img1 = doctor_pair()
    with torch.inference_mode():
        fp16 = torch_interp(ctx, "fp16").interpolate(img0, img1, TIMESTEPS).cpu()
    return judge_frames(f"torch fp16 vs fp32, {DOCTOR_RESOLUTION}", fp16, reference_frames(ctx), FP16_MIN_DB)


def check_onnxruntime_cpu(ctx: Context) -> tuple:
    """Each graph of the export in ONNX Runtime's CPU provider against torch, stage by stage."""
    need("onnxruntime")
    for module in ("onnx", "onnxscript", "onnx_ir", "onnxruntime_extensions"):
        need(module)
    from ..export.compare import compare_export
    from ..model.checkpoint import load_model

    export_dir = doctor_export(ctx)
    model = load_model(None, variant=DOCTOR_VARIANT, random_weights=True)
    report = compare_export(export_dir, model, timesteps=TIMESTEPS)
    frames = report["synthesis"]["frames"]
    db = frames["psnr_db"]
    status = "pass" if db is None or db >= ORT_MIN_DB else "fail"
    return (
        status,
        (
            f"onnxruntime CPU vs torch fp32, {DOCTOR_RESOLUTION}: frames PSNR {db_text(db)} dB "
            f"(>= {ORT_MIN_DB:g}), max |d| {frames['max_abs']:.1e}"
        ),
        {"stages": report},
    )


def check_onnxruntime_cuda(ctx: Context) -> tuple:
    """The doctor's export on ONNX Runtime's CUDA provider (its splat nodes run as the onnxruntime-extensions
    op) against torch: the same export as the TensorRT checks, so one export serves all."""
    need_cuda(ctx)
    need("onnxruntime")
    providers = ort_providers() or []
    if "CUDAExecutionProvider" not in providers:
        raise Skip(
            f"this onnxruntime has no CUDA provider (providers: {', '.join(providers)}): install onnxruntime-gpu"
        )
    need("onnxruntime_extensions")
    frames = export_interp(ctx, "onnxruntime").interpolate(*doctor_pair(), TIMESTEPS).cpu()
    return judge_frames(
        f"onnxruntime CUDA vs torch fp32, {DOCTOR_RESOLUTION}", frames, reference_frames(ctx), ORT_MIN_DB
    )


def _engine_interp(ctx: Context, cuda_graph: bool, precision: str = "fp32"):
    from ..engines.build import build_engines
    from ..runtime import TrtOptions

    key = f"plans-{precision}"
    if key not in ctx.made:
        ctx.log(f"doctor: building {precision} TensorRT engines (minutes the first time; cached in the export after)")
        ctx.made[key] = build_engines(doctor_export(ctx, precision), device=ctx.device)
    return export_interp(ctx, "tensorrt", TrtOptions(cuda_graph=cuda_graph), precision)


def _engine_frames(ctx: Context) -> torch.Tensor:
    if "engine_frames" not in ctx.made:
        img0, img1 = doctor_pair()
        ctx.made["engine_frames"] = _engine_interp(ctx, cuda_graph=False).interpolate(img0, img1, TIMESTEPS).cpu()
    return ctx.made["engine_frames"]


def check_trt_engines(ctx: Context) -> tuple:
    need_tensorrt(ctx)
    return judge_frames(
        f"TensorRT {DOCTOR_VARIANT} engines fp32 vs torch fp32, {DOCTOR_RESOLUTION}",
        _engine_frames(ctx),
        reference_frames(ctx),
        TRT_MIN_DB,
    )


def check_trt_engines_fp16(ctx: Context) -> tuple:
    """The production setting: the engines of the fp16 export against torch fp32 frames."""
    need_tensorrt(ctx)
    frames = _engine_interp(ctx, cuda_graph=False, precision="fp16").interpolate(*doctor_pair(), TIMESTEPS).cpu()
    return judge_frames(
        f"TensorRT {DOCTOR_VARIANT} engines fp16 vs torch fp32, {DOCTOR_RESOLUTION}",
        frames,
        reference_frames(ctx),
        TRT_FP16_MIN_DB,
    )


def check_cuda_graph(ctx: Context) -> tuple:
    """CUDA graphs replayed on a pair they were not captured with, against the eager engines on that pair: pair 0
    runs eagerly and is then captured (a stage graphs the shapes it sees a second time), pair 1 replays. A replay
    that kept the captured inputs would give pair 0's frames."""
    need_tensorrt(ctx)
    captured_on, replayed_on = doctor_pair(0), doctor_pair(1)
    interp = _engine_interp(ctx, cuda_graph=True)
    for _ in range(2):
        interp.interpolate(*captured_on, TIMESTEPS)
    replayed = interp.interpolate(*replayed_on, TIMESTEPS).cpu()
    graphs = sum(stage.captured for stage in interp.backend.stages.values())
    if not graphs:
        return "fail", "no stage captured a CUDA graph: every call ran eagerly", {"graphs": 0}
    eager = _engine_interp(ctx, cuda_graph=False).interpolate(*replayed_on, TIMESTEPS).cpu()
    status, detail, data = judge_frames(
        "CUDA-graph replay on another pair than captured vs eager", replayed, eager, GRAPH_MIN_DB
    )
    return status, f"{detail}; {graphs} graphs", {**data, "graphs": graphs}
