"""``estimate_peak``: predicted peak memory of a configuration, from the model's fake-tensor run (no GPU needed).

from gimm_trt.benchmarks.memory import estimate_peak
estimate_peak("R-P", "1080p", ds=1.0, precision="fp16", timesteps_per_batch=7, device="cuda")
"""

from __future__ import annotations

from typing import Optional

from ..core.sizes import padded_size, parse_resolution, processing_size
from ..model.checkpoint import Weights
from ..model.memory import estimate

MIB = 2.0**20


def estimate_peak(
    variant: str = "R-P",
    resolution="1080p",
    *,
    ds: Optional[float] = None,
    precision: str = "fp32",
    timesteps_per_batch: int = 1,
    tile: Optional[int] = None,
    device: str = "cuda",
) -> dict:
    """One JSON-ready row: ``estimated_peak_mib`` (one pair, torch backend) and ``stages_mib`` (the peak while
    each stage runs, everything alive then included) for frames of ``resolution`` (``"4k"``, ``"WxH"``).

    ``ds=None`` is the official guidance for the size; ``tile`` the synthesis tile (None: untiled).
    """
    weights = Weights.verify(variant)
    res = parse_resolution(resolution)
    ds = float(ds) if ds is not None else res.default_ds_scale
    processing_size(res.height, res.width, ds)
    hp, wp = padded_size(res.height, res.width)
    est = estimate(
        weights.value.arch, hp, wp, ds, precision=precision, timesteps=timesteps_per_batch, tile=tile, device=device
    )
    return {
        "variant": weights.value.variant,
        "resolution": res.name,
        "width": res.width,
        "height": res.height,
        "ds_scale": ds,
        "precision": precision,
        "device": device,
        "timesteps_per_batch": timesteps_per_batch,
        "tile": tile,
        "estimated_peak_mib": est.total / MIB,
        "weights_mib": est.weights / MIB,
        "stages_mib": {k: v / MIB for k, v in est.stages.items()},
    }
