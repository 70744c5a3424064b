#!/usr/bin/env python3
"""Peak RSS of one real pair (torch backend, CPU, R-P random weights) above the process's RSS just before it,
after one 128x128 warm-up pair.

    PYTHONPATH=. python scripts/measure_rss.py W H T [TILE]   # prints one JSON line; TILE: motion and synthesis tile

Linux only (it reads /proc/self/status and resets the peak through /proc/self/clear_refs). The printed line is
what benchmarks/results/cpu-memory-model.json records per row.
"""

import argparse
import json
import warnings


def status(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return 0


def rss() -> int:
    return status("VmRSS")


def main(w: int, h: int, n: int, tile: int = 0) -> None:
    import torch

    from gimm_trt import Interpolator
    from gimm_trt.model.synthetic import synthetic_pair

    warnings.simplefilter("ignore")
    torch.set_num_threads(2)
    interp = Interpolator.from_checkpoint(variant="R-P", random_weights=True, device="cpu")
    interp.budget = None  # all T timesteps in one batch, at the tile asked for: nothing planned
    interp.backend.use_tile(tile or None)
    # one small pair first: oneDNN's JIT kernels, OpenMP's threads and the allocator's first arenas are the
    # process's, made once, not the pair's
    interp.interpolate(*synthetic_pair(128, 128, seed=0, index=1), [0.5])
    a, b = synthetic_pair(h, w, seed=0, index=0)
    base = rss()
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets the peak (VmHWM) to the current RSS: the warm-up's peak is not this pair's
    interp.interpolate(a, b, [i / (n + 1) for i in range(1, n + 1)])
    peak = status("VmHWM")
    print(
        json.dumps(
            {
                "width": w,
                "height": h,
                "timesteps": n,
                "tile": tile or None,
                "baseline_rss_mib": base / 2**20,
                "peak_rss_mib": peak / 2**20,
                "peak_above_baseline_mib": (peak - base) / 2**20,
            }
        )
    )


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("width", type=int, help="frame width W")
    parser.add_argument("height", type=int, help="frame height H")
    parser.add_argument("timesteps", type=int, help="T timesteps between the two frames, in one batch")
    parser.add_argument("tile", type=int, nargs="?", default=0, help="motion and synthesis tile (default: untiled)")
    return parser.parse_args(argv)


if __name__ == "__main__":
    args = parse_args()
    main(args.width, args.height, args.timesteps, args.tile)
