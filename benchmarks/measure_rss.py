#!/usr/bin/env python3
"""Peak RSS of one real pair (torch backend, CPU, R-P random weights) above the process's RSS just before it.

    python benchmarks/measure_rss.py W H T [TILE]   # prints one JSON line; TILE: motion and synthesis tile
"""
import json
import resource
import sys
import warnings

import torch

from gimm_trt import Interpolator
from gimm_trt.model.synthetic import synthetic_pair


def rss() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) * 1024
    return 0


def main(w: int, h: int, n: int, tile: int = 0) -> None:
    warnings.simplefilter("ignore")
    torch.set_num_threads(2)
    interp = Interpolator.from_checkpoint(variant="R-P", random_weights=True, device="cpu")
    interp.budget = None  # all T timesteps in one batch, at the tile asked for: nothing planned
    interp.backend.tile = tile or None
    a, b = synthetic_pair(h, w, seed=0, index=0)
    base = rss()
    interp.interpolate(a, b, [i / (n + 1) for i in range(1, n + 1)])
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"width": w, "height": h, "timesteps": n, "tile": tile or None, "baseline_rss_mib": base / 2**20,
                      "peak_rss_mib": peak / 2**20, "peak_above_baseline_mib": (peak - base) / 2**20}))


if __name__ == "__main__":
    main(*(int(v) for v in sys.argv[1:5]))
