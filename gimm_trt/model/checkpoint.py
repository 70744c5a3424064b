"""Official GIMM-VFI checkpoints: the four released variants, strict loading with clear errors.

The official files are ``torch.save({"state_dict": ...})`` (``.pt``); flat ``.safetensors`` conversions of
the same state_dict load too. Keys are mapped from the official flat names to our stage modules by
prefix, then loaded with ``strict=True``; every mismatch is reported in one short message.
"""
import enum
import os
import pickle
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..core.errors import CheckpointError, InputError
from .synthetic import manifest, synthetic_state_dict

WEIGHTS_URL = "https://huggingface.co/GSean/GIMM-VFI"
LICENSE_NOTE = "weights: S-Lab License 1.0 (non-commercial use only)"


@dataclass(frozen=True)
class Release:
    """One released checkpoint: its variant, flow estimator architecture and official file name."""

    variant: str  # "R", "R-P", "F", "F-P"
    arch: str  # "r" (RAFT) or "f" (FlowFormer)
    file: str  # official file name
    sha256: str = None  # of the released file; not recorded here (the files could not be fetched)
    meta: dict = field(default_factory=dict, compare=False, hash=False)


class Weights(enum.Enum):
    """The released checkpoints. The -P ones were fine-tuned with a perceptual (LPIPS) loss."""

    R = Release("R", "r", "gimmvfi_r_arb.pt", meta={"flow": "RAFT", "loss": "L1 + census"})
    R_P = Release("R-P", "r", "gimmvfi_r_arb_lpips.pt", meta={"flow": "RAFT", "loss": "+ LPIPS"})
    F = Release("F", "f", "gimmvfi_f_arb.pt", meta={"flow": "FlowFormer", "loss": "L1 + census"})
    F_P = Release("F-P", "f", "gimmvfi_f_arb_lpips.pt", meta={"flow": "FlowFormer", "loss": "+ LPIPS"})
    DEFAULT = R_P

    @classmethod
    def verify(cls, variant) -> "Weights":
        """``"R-P"`` (or ``Weights.R_P``) -> ``Weights.R_P``; a ValueError names the valid variants."""
        if isinstance(variant, cls):
            return variant
        for w in cls:
            if w.value.variant == variant:
                return w
        raise InputError(f"unknown variant {variant!r}: choose one of {', '.join(VARIANTS)}")

    def default_path(self) -> Path:
        """Where the official file is looked up: ``$GIMM_TRT_CHECKPOINTS`` or ``./pretrained_ckpt``."""
        return Path(os.environ.get("GIMM_TRT_CHECKPOINTS", "pretrained_ckpt")) / self.value.file


VARIANTS = ("R", "R-P", "F", "F-P")

# official top-level prefix -> our module path (inside a prefix the official names are kept)
PREFIXES = {
    "flow_estimator.": "flow.estimator.",
    "amt_fproj.": "flow.fproj.",
    "amt_second_last_cproj.": "flow.proj4.",
    "amt_last_cproj.": "flow.proj8.",
    "g_filter": "motion.g_filter",
    "alpha_v": "motion.alpha_v",
    "alpha_fe": "motion.alpha_fe",
    "cnn_encoder.": "motion.encoder.",
    "res_conv.": "motion.refiner.",
    "hyponet.params_dict.linear_wb": "motion.mlp.layers.",
    "amt_init_decoder.": "synthesis.init_decoder.",
    "amt_update4_low.": "synthesis.update_low.",
    "amt_update4_high.": "synthesis.update_high.",
    "amt_final_decoder.": "synthesis.final_decoder.",
    "amt_comb_block.": "synthesis.combine.",
}


def to_model_keys(state_dict: dict) -> dict:
    """Official key names -> ``GIMMVFI`` key names."""
    out = {}
    for key, value in state_dict.items():
        for old, new in PREFIXES.items():
            if key.startswith(old):
                out[new + key[len(old):]] = value
                break
        else:
            out[key] = value  # left as is: reported as unexpected by the strict load
    return out


def read_state_dict(path) -> dict:
    """The official-layout state_dict stored in ``path`` (.pt/.pth/.ckpt or .safetensors)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path} (download the official files from {WEIGHTS_URL} "
                              f"into ./pretrained_ckpt or $GIMM_TRT_CHECKPOINTS, or use random weights)")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            data = load_file(str(path), device="cpu")
        else:
            data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # any failure to parse means a damaged, foreign or unsafe file
        raise CheckpointError(_unreadable(path, e)) from None
    if isinstance(data, dict) and isinstance(data.get("state_dict"), dict):
        data = data["state_dict"]
    if not isinstance(data, dict) or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise CheckpointError(f"{path} holds no state_dict (expected {{'state_dict': ...}} or flat tensors)")
    return data


def _unreadable(path: Path, err: Exception) -> str:
    """One line on why ``path`` did not load: pickled code that loading would run, or damage."""
    found = re.search(r"GLOBAL ([\w.]+)", str(err)) if isinstance(err, pickle.UnpicklingError) else None
    if found:
        return (f"cannot read checkpoint {path}: it holds pickled Python objects ({found.group(1)}) that loading "
                f"would run code for, so it is refused (use the official files from {WEIGHTS_URL}, or convert a file "
                "you trust to .safetensors)")
    return f"cannot read checkpoint {path}: truncated or not a checkpoint ({_clause(str(err)) or type(err).__name__})"


def _clause(text: str, limit: int = 160) -> str:
    """The first line of ``text``, shortened at a word boundary (never mid-word) when longer than ``limit``."""
    line = text.strip().splitlines()[0].strip() if text.strip() else ""
    if len(line) <= limit:
        return line
    return line[:limit].rsplit(" ", 1)[0].rstrip(" ,;:") + " ..."


def _check_values(state_dict: dict, arch: str, source: str) -> None:
    """CheckpointError naming the first tensor whose values cannot be the model's: an integer tensor where float
    weights belong (or the reverse), or NaN/infinite weights (every frame would be NaN)."""
    dtypes = {e["key"]: e["dtype"] for e in manifest(arch)["entries"]}
    for key, value in state_dict.items():
        want_float = dtypes.get(key, "float32").startswith("float")
        if value.is_floating_point() != want_float:
            raise CheckpointError(f"{source}: {key} holds {value.dtype} values, expected {dtypes.get(key)} "
                                  "(a damaged or wrongly converted checkpoint)")
        if want_float and not bool(torch.isfinite(value).all()):
            raise CheckpointError(f"{source}: {key} holds NaN or infinite values (a damaged checkpoint, or one "
                                  "saved from a diverged training run)")


def check_state_dict(state_dict: dict, weights: Weights, source: str = "checkpoint") -> None:
    """Raise one short CheckpointError unless ``state_dict`` has exactly the keys and shapes of ``weights``."""
    arch = weights.value.arch
    expected = {e["key"]: tuple(e["shape"]) for e in manifest(arch)["entries"]}
    keys = set(state_dict)
    if keys != set(expected):
        other = "f" if arch == "r" else "r"
        other_keys = {e["key"] for e in manifest(other)["entries"]}
        if len(keys & other_keys) > len(keys & set(expected)):
            found = "F or F-P" if other == "f" else "R or R-P"
            raise CheckpointError(f"{source} is a GIMM-VFI-{found} checkpoint, not {weights.value.variant}")
        missing = sorted(set(expected) - keys)
        unexpected = sorted(keys - set(expected))
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys ({_some(missing)})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys ({_some(unexpected)})")
        raise CheckpointError(f"{source} does not match GIMM-VFI-{weights.value.variant}: {'; '.join(parts)}")
    for key, shape in expected.items():
        if tuple(state_dict[key].shape) != shape:
            raise CheckpointError(f"{source} does not match GIMM-VFI-{weights.value.variant}: {key} has shape "
                                  f"{tuple(state_dict[key].shape)}, expected {shape}")
    _check_values(state_dict, arch, source)


def _some(keys, n: int = 3) -> str:
    return ", ".join(keys[:n]) + (", ..." if len(keys) > n else "")


def build_model(arch: str, **kwargs):
    """An uninitialised ``GIMMVFI`` for ``arch`` ``"r"`` or ``"f"``."""
    from .gimm import GIMMVFI, FlowStage
    from .motion import MotionNetwork
    from .synthesis import Synthesis

    if arch == "r":
        from .flow.raft import raft_large

        flow = FlowStage(estimator=raft_large(), fproj=torch.nn.Conv2d(256, 256, 1),
                         proj4=torch.nn.Conv2d(96, 128, 1), proj8=torch.nn.Conv2d(128, 256, 1))
    else:
        from .flow.flowformer import flowformer

        flow = FlowStage(estimator=flowformer())
    splat_impl = kwargs.pop("splat_impl", "auto")
    return GIMMVFI(flow=flow, motion=MotionNetwork(splat_impl=splat_impl), synthesis=Synthesis(**kwargs))


def load_model(checkpoint=None, *, variant="R-P", random_weights: bool = False, seed: int = 0, **kwargs):
    """A ``GIMMVFI`` in eval mode with the weights of ``checkpoint`` (strictly checked against ``variant``).

    ``checkpoint=None`` looks for the official file name in ``$GIMM_TRT_CHECKPOINTS`` or ``./pretrained_ckpt``;
    ``random_weights=True`` (with ``checkpoint=None``) uses seeded synthetic weights instead.
    """
    weights = Weights.verify(variant)
    if checkpoint is not None and random_weights:
        raise InputError("pass either checkpoint or random_weights=True, not both")
    if random_weights:
        state_dict, source = synthetic_state_dict(weights.value.arch, seed), f"random weights (seed {seed})"
    else:
        path = Path(checkpoint) if checkpoint is not None else weights.default_path()
        state_dict, source = read_state_dict(path), str(path)
    check_state_dict(state_dict, weights, source)
    model = build_model(weights.value.arch, **kwargs)
    model.load_state_dict(to_model_keys(state_dict), strict=True)
    return model.eval().requires_grad_(False)
