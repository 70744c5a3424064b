"""TensorRT-RTX on this machine: its ahead-of-time build of the doctor's export, which needs no GPU, and, on a
CUDA GPU, its engines (the motion stage as parts around our splat kernel) against the torch reference."""

from __future__ import annotations

import time

from ..core.errors import MissingDependency
from .context import (
    DOCTOR_RESOLUTION,
    DOCTOR_VARIANT,
    TIMESTEPS,
    Context,
    Skip,
    doctor_export,
    doctor_pair,
    export_interp,
    judge_frames,
    need,
    need_cuda,
    reference_frames,
)

__all__ = ["RTX_MIN_DB", "check_rtx_build", "check_rtx_engines"]

RTX_MIN_DB = 40.0  # TensorRT-RTX fp32 engines (TF32 off) vs torch fp32 frames, as for TensorRT's


def _need_rtx() -> None:
    """Skip without TensorRT-RTX; raise (a fail) where it is installed but does not import: it builds on a CPU,
    so nothing excuses that here."""
    from ..core.trt import family, probe

    need("onnx")
    state = probe("tensorrt-rtx")
    if state.broken:
        raise MissingDependency(state.error)
    if not state.usable:
        raise Skip(f"TensorRT-RTX is not installed: {family('tensorrt-rtx').install_hint}")


def check_rtx_build(ctx: Context) -> tuple:
    """Every engine of the doctor's export built by TensorRT-RTX ahead of time, here (a CPU is enough)."""
    _need_rtx()
    from ..engines.build import build_engines

    start = time.perf_counter()
    plans = build_engines(doctor_export(ctx), family="tensorrt-rtx")
    sizes = {name: path.stat().st_size for name, path in plans.items()}
    detail = (
        f"{len(plans)} plans ({', '.join(plans)}), {sum(sizes.values()) / 2**20:.0f} MiB, "
        f"{time.perf_counter() - start:.0f} s (built, or found built)"
    )
    return "pass", detail, {"plans": {name: str(path) for name, path in plans.items()}, "bytes": sizes}


def check_rtx_engines(ctx: Context) -> tuple:
    """The tensorrt-rtx backend on the doctor's pair against torch fp32 (its JIT step runs on this GPU)."""
    _need_rtx()
    need_cuda(ctx)
    frames = export_interp(ctx, "tensorrt-rtx").interpolate(*doctor_pair(), TIMESTEPS).cpu()
    return judge_frames(
        f"TensorRT-RTX {DOCTOR_VARIANT} engines fp32 vs torch fp32, {DOCTOR_RESOLUTION}",
        frames,
        reference_frames(ctx),
        RTX_MIN_DB,
    )
