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
    ds = res.ds(ds)
    processing_size(res.height, res.width, ds)
    hp, wp = padded_size(res.height, res.width, ds)
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


def tile_throughput(
    variant: str = "R-P",
    resolution="720p",
    *,
    ds: Optional[float] = None,
    tiles=(512, 256),
    timesteps: int = 1,
    repeats: int = 3,
    device: str = "cpu",
    seed: int = 0,
) -> dict:
    """What tiles cost in speed: the motion and synthesis stages of one seeded pair (random weights), untiled
    and at each tile, on the same flows. Rows: ``seconds`` (median of ``repeats``, after one untimed run),
    ``relative_throughput`` (untiled seconds / tiled seconds: the same frames, so the same useful work) and
    ``max_abs_vs_untiled``."""
    import time

    import torch

    from ..model.checkpoint import load_model
    from ..model.synthetic import synthetic_pair
    from ..runtime.torch_backend import TorchBackend
    from .measure import synchronize

    weights = Weights.verify(variant)
    res = parse_resolution(resolution)
    ds = res.ds(ds)
    processing_size(res.height, res.width, ds)
    hp, wp = padded_size(res.height, res.width, ds)
    backend = TorchBackend(load_model(variant=weights.value.variant, random_weights=True, seed=seed), device=device)
    img0, img1 = (torch.as_tensor(x).to(backend.device) for x in synthetic_pair(hp, wp, seed=seed))
    t = torch.linspace(0.5 / timesteps, 1 - 0.5 / timesteps, timesteps, device=backend.device)
    feats = backend.flow(img0, img1, ds)

    def run():
        flowt = backend.motion(feats["flow01"], feats["flow10"], t)
        return backend.synthesis(img0, img1, feats, flowt, t, ds)

    rows, whole, base = [], None, None
    for tile in (None, *tiles):
        backend.use_tile(tile)
        out = run()
        seconds = []
        for _ in range(repeats):
            synchronize(backend.device)
            start = time.perf_counter()
            run()
            synchronize(backend.device)
            seconds.append(time.perf_counter() - start)
        median = sorted(seconds)[len(seconds) // 2]
        if tile is None:
            whole, base = out, median
        rows.append(
            {
                "tile": tile,
                "seconds": median,
                "relative_throughput": base / median,
                "max_abs_vs_untiled": float((out - whole).abs().max()),
            }
        )
    return {
        "schema": "gimm-bench-tiles/1",
        "variant": weights.value.variant,
        "resolution": res.name,
        "padded_size": [hp, wp],
        "ds_scale": ds,
        "timesteps": timesteps,
        "device": str(backend.device),
        "threads": torch.get_num_threads(),
        "rows": rows,
    }
