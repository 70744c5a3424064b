from pathlib import Path

import numpy as np
import pytest
import torch

FIXTURES = Path(__file__).parent / "fixtures"
CASES = {  # fixture -> (variant, synthetic seed), see fixtures/README.md
    "r_s0_128x224_n4_ds1": ("R", 0),
    "r_s1_147x225_n2_ds1": ("R", 1),
    "f_s2_128x224_n3_ds1": ("F", 2),
}


def load_case(name: str) -> dict:
    with np.load(FIXTURES / f"{name}.npz") as d:
        return {k: d[k] for k in d.files}


def robust_stats(a, b) -> dict:
    """|a - b| summarised so that a few flipped splat pixels (inherent, see fixtures/README.md) do not dominate."""
    a = torch.as_tensor(a, dtype=torch.float64).flatten()
    b = torch.as_tensor(b, dtype=torch.float64).flatten()
    assert a.shape == b.shape, (a.shape, b.shape)
    d = (a - b).abs()
    return {
        "mean": d.mean().item(),
        "p99": torch.quantile(d[torch.randperm(d.numel(), generator=torch.Generator().manual_seed(0))[:1_000_000]], 0.99).item(),
        "max": d.max().item(),
        "frac": lambda thr: (d > thr).double().mean().item(),
    }


def assert_close_robust(name, a, b, *, mean, p99, thr, frac=0.005):
    s = robust_stats(a, b)
    above = s["frac"](thr)
    msg = f"{name}: mean {s['mean']:.2e} (<= {mean}), p99 {s['p99']:.2e} (<= {p99}), {above:.3%} above {thr} (<= {frac:.1%}), max {s['max']:.2e}"
    assert s["mean"] <= mean and s["p99"] <= p99 and above <= frac, msg
