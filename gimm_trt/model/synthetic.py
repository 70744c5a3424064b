"""Seeded synthetic weights in the official checkpoint layout (for tests and speed work without weights).

The rules (ours, shared with ``shared/reference/make_checkpoint.py`` that made the parity fixtures): one
``numpy.random.default_rng(seed)`` walks the manifest entries in order; weights get N(0,1)/sqrt(fan_in),
biases 0.01 N(0,1), norms 1 + 0.1 N(0,1), fixed values for filters, alphas, PReLU slopes and the GMA gamma,
and the residual heads listed in ``SMALL_HEADS`` a gain of 0.1 so recurrent refinements stay in range.
"""
import collections
import json
import math
from pathlib import Path

import numpy as np
import torch

MANIFESTS = Path(__file__).parent / "manifests"

SMALL_HEADS = frozenset({
    "flow_estimator.update_block.flow_head.conv2.weight",
    "flow_estimator.memory_decoder.update_block.flow_head.conv2.weight",
    "amt_init_decoder.convblock.4.weight",
    "amt_update4_low.flow_head.2.weight",
    "amt_update4_high.flow_head.2.weight",
    "amt_final_decoder.convblock.4.weight",
    "amt_comb_block.2.weight",
})


def manifest(arch: str) -> dict:
    """The official state_dict layout of GIMM-VFI-R (``arch="r"``) or -F (``"f"``): ordered entries."""
    with open(MANIFESTS / f"gimmvfi_{arch}.json") as f:
        return json.load(f)


def _value(entry: dict, rng, done: dict) -> np.ndarray:
    key, shape, module = entry["key"], tuple(entry["shape"]), entry.get("module", "")
    last = key.rsplit(".", 1)[-1]
    if "alias_of" in entry:
        return done[entry["alias_of"]]
    if last == "num_batches_tracked":
        return np.zeros(shape, np.int64)
    if last == "running_mean":
        return np.zeros(shape)
    if last == "running_var":
        return np.ones(shape)
    if last == "rel_ind":
        p = shape[0]
        return np.arange(p)[None, :] - np.arange(p)[:, None] + p - 1
    if key == "g_filter":
        return (np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]], np.float64) / 16.0).reshape(shape)
    if key in ("alpha_v", "alpha_fe"):
        return np.ones(shape)
    if module == "PReLU":
        return np.full(shape, 0.25)
    if module == "Aggregate" and last == "gamma":
        return np.full(shape, 0.5)
    if module in ("BatchNorm2d", "LayerNorm") and last == "weight":
        return 1.0 + 0.1 * rng.standard_normal(shape)
    if last == "bias":
        return 0.01 * rng.standard_normal(shape)
    if key.startswith("hyponet.params_dict.linear_wb"):
        return rng.standard_normal(shape) / math.sqrt(shape[0] - 1)
    if last == "latent_tokens":
        return rng.standard_normal(shape)
    if len(shape) >= 2 and not entry["dtype"].startswith("int"):
        gain = 0.1 if key in SMALL_HEADS else 1.0
        return rng.standard_normal(shape) / math.sqrt(int(np.prod(shape[1:]))) * gain
    raise ValueError(f"no synthetic rule for {key} {shape} ({module})")


def synthetic_state_dict(arch: str, seed: int = 0) -> "collections.OrderedDict[str, torch.Tensor]":
    """Official-layout state_dict (official key names) with seeded synthetic values."""
    rng = np.random.default_rng(seed)
    done = {}
    out = collections.OrderedDict()
    for entry in manifest(arch)["entries"]:
        value = np.asarray(_value(entry, rng, done))
        done[entry["key"]] = value
        out[entry["key"]] = torch.from_numpy(np.array(value, dtype=np.dtype(entry["dtype"]), order="C"))
    return out
