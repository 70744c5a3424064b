"""What the doctor's checks share: the ``Context`` they run in, ``Skip``, the doctor's pair, export and reference
frames (each made once per run), and how frames are judged against the reference."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import torch

from ..core import deps
from ..core.errors import MissingDependency
from ..core.metrics import psnr

__all__ = [
    "DOCTOR_VARIANT",
    "DOCTOR_RESOLUTION",
    "TIMESTEPS",
    "Context",
    "Skip",
    "need",
    "need_cuda",
    "need_tensorrt",
    "doctor_pair",
    "doctor_export",
    "torch_interp",
    "export_interp",
    "reference_frames",
    "judge_frames",
    "db_text",
]

DOCTOR_VARIANT = "R-P"
DOCTOR_RESOLUTION = "256x256"
TIMESTEPS = (0.25, 0.5, 0.75)


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


def _no_cuda(ctx: Context) -> Optional[str]:
    if ctx.cuda:
        return None
    why = "no CUDA GPU here" if not torch.cuda.is_available() else f"running on {ctx.device}"
    return f"needs a CUDA device ({why})"


def need_cuda(ctx: Context) -> None:
    reason = _no_cuda(ctx)
    if reason:
        raise Skip(reason)


def need(module: str) -> None:
    if not deps.installed(module):
        raise Skip(f"{module} is not installed: {deps.install_hint(module)}")


def need_tensorrt(ctx: Context) -> None:
    """Skip where TensorRT is missing or there is no CUDA device; raise (a fail) where a TensorRT that is installed
    does not import on a CUDA device: that install is what the GPU would run, so it is broken, not absent."""
    from ..core.trt import probe
    from ..runtime.registry import unavailable

    state = probe()
    if state.broken:
        if ctx.cuda:
            raise MissingDependency(state.error)
        # without a GPU nothing here could run TensorRT (and an import may fail for want of the driver alone):
        # said, not failed
        raise Skip(f"{_no_cuda(ctx)}; the installed TensorRT is broken as well: {state.error}")
    need_cuda(ctx)
    reason = unavailable("tensorrt", ctx.device)
    if reason:
        raise Skip(reason)


def doctor_pair(index: int = 0):
    """Pair ``index`` of the doctor's seeded series: [1,3,256,256] float32 frames; each index another texture."""
    from ..core.sizes import parse_resolution
    from ..model.synthetic import synthetic_pair

    res = parse_resolution(DOCTOR_RESOLUTION)
    return synthetic_pair(res.height, res.width, seed=0, index=index)


def doctor_export(ctx: Context, precision: str = "fp32") -> Path:
    """The R-P 256x256 plugin export (``precision``: its graphs' type) of seeded random weights, in ``ctx.work``
    (reused when there)."""
    key = f"export-{precision}"
    if key not in ctx.made:
        from ..export.exporter import ExportOptions, export
        from ..model.spec import ModelSpec

        model = ModelSpec(variant=DOCTOR_VARIANT, random_weights=True, precision=precision)
        options = ExportOptions(model=model, resolution=DOCTOR_RESOLUTION, splat="plugin")
        ctx.log(
            f"doctor: the {precision} export of GIMM-VFI-{DOCTOR_VARIANT} (random weights) at {DOCTOR_RESOLUTION} "
            f"in {ctx.work / 'exports'} (made once, in minutes; reused after)"
        )
        ctx.made[key] = export(options, ctx.work / "exports", log=ctx.log)
    return ctx.made[key]


def torch_interp(ctx: Context, precision: str = "fp32"):
    from ..runtime import Interpolator

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "random weights": the doctor says so once in its table
        return Interpolator.from_checkpoint(
            None, variant=DOCTOR_VARIANT, backend="torch", device=ctx.device, precision=precision, random_weights=True
        )


def export_interp(ctx: Context, backend: str, options=None, precision: str = "fp32"):
    """The doctor's ``precision`` export run by ``backend`` on ``ctx.device``."""
    from ..runtime import Interpolator

    export_dir = doctor_export(ctx, precision)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "random weights": the doctor says so once in its table
        return Interpolator.from_export(export_dir, backend=backend, device=ctx.device, options=options)


def reference_frames(ctx: Context) -> torch.Tensor:
    """torch fp32 frames of the doctor's pair on ``ctx.device`` (computed once)."""
    if "reference" not in ctx.made:
        img0, img1 = doctor_pair()
        with torch.inference_mode():
            ctx.made["reference"] = torch_interp(ctx).interpolate(img0, img1, TIMESTEPS).cpu()
    return ctx.made["reference"]


def db_text(value: Optional[float]) -> str:
    return "inf" if value is None else f"{value:.1f}"


def judge_frames(what: str, got: torch.Tensor, want: torch.Tensor, floor: float) -> tuple:
    db = psnr(got, want)
    max_abs = (got.double().cpu() - want.double().cpu()).abs().max().item()
    status = "pass" if db is None or db >= floor else "fail"
    return (
        status,
        f"{what}: PSNR {db_text(db)} dB (>= {floor:g}), max |d| {max_abs:.1e}",
        {"psnr_db": db, "max_abs": max_abs},
    )
