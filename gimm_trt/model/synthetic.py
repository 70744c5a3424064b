"""Seeded synthetic weights in the official checkpoint layout, and seeded frame pairs (tests, speed work).

The weight rules (ours; the parity fixtures were made from checkpoints written by the same rules): one
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
import torch.nn.functional as F

MANIFESTS = Path(__file__).parent / "manifests"

SMALL_HEADS = frozenset(
    {
        "flow_estimator.update_block.flow_head.conv2.weight",
        "flow_estimator.memory_decoder.update_block.flow_head.conv2.weight",
        "amt_init_decoder.convblock.4.weight",
        "amt_update4_low.flow_head.2.weight",
        "amt_update4_high.flow_head.2.weight",
        "amt_final_decoder.convblock.4.weight",
        "amt_comb_block.2.weight",
    }
)


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


def synthetic_pair(height: int, width: int, *, seed: int = 0, index: int = 0) -> tuple:
    """Pair ``index`` of a seeded series: float32 [1,3,H,W] frames in [0,1] on the CPU, a smooth random
    texture and its copy shifted by up to 8 pixels (different per pair).

    Real motion rather than noise, so the flow and splatting work as on video; the content does not change
    the amount of work, only where splats land.
    """
    g = torch.Generator().manual_seed(seed * 100_003 + index)
    coarse = torch.rand(1, 3, height // 16 + 2, width // 16 + 2, generator=g)
    img = F.interpolate(coarse, size=(height + 16, width + 16), mode="bicubic", align_corners=False)
    img = (img + 0.05 * torch.rand(img.shape, generator=g)).clamp(0, 1)
    dy, dx = (int(v) for v in torch.randint(-8, 9, (2,), generator=g))
    img0 = img[..., 8 : 8 + height, 8 : 8 + width]
    img1 = img[..., 8 + dy : 8 + dy + height, 8 + dx : 8 + dx + width]
    return img0.contiguous(), img1.contiguous()
