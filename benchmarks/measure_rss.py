#!/usr/bin/env python3
"""Peak RSS of one real pair (torch backend, CPU) above the process's RSS just before it."""
import json, resource, sys, warnings
import torch
warnings.simplefilter("ignore")
from gimm_trt import Interpolator
from gimm_trt.model.synthetic import synthetic_pair
w, h, T = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
torch.set_num_threads(2)
interp = Interpolator.from_checkpoint(variant="R-P", random_weights=True, device="cpu")
a, b = synthetic_pair(h, w, seed=0, index=0)
def rss():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) * 1024
base = rss()
out = interp.interpolate(a, b, [i / (T + 1) for i in range(1, T + 1)])
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"width": w, "height": h, "timesteps": T, "baseline_rss_mib": base / 2**20, "peak_rss_mib": peak / 2**20,
                  "peak_above_baseline_mib": (peak - base) / 2**20}))
