"""Official GIMM-VFI checkpoints: the four released variants, strict loading with clear errors.

The official files are ``torch.save({"state_dict": ...})`` (``.pt``); flat ``.safetensors`` conversions of
the same state_dict load too, and so do ComfyUI-GIMM-VFI's split pairs (GIMM file + flow estimator file, see
``checkpoint_files``). Keys are mapped from the official flat names to our stage modules by prefix, then
loaded with ``strict=True``; every mismatch is reported in one short message naming the file.
"""

import enum
import logging
import os
import pickle
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch

from ..core.errors import CheckpointError, InputError
from .checkpoint_files import ESTIMATORS, FLOW_NAMES, WEIGHTS_URL, CheckpointFiles, locate, variant_of_name
from .synthetic import manifest, synthetic_state_dict

LICENSE_NOTE = "weights: S-Lab License 1.0 (non-commercial use only)"
FLOW = "flow_estimator."  # the official prefix of the flow estimator's keys
log = logging.getLogger("gimm_trt.model")


@dataclass(frozen=True)
class Release:
    """One released checkpoint: its variant, flow estimator architecture and official file name."""

    variant: str  # "R", "R-P", "F", "F-P"
    arch: str  # "r" (RAFT) or "f" (FlowFormer)
    file: str  # official file name


class Weights(enum.Enum):
    """The released checkpoints: R and F trained with an L1 + census loss, the -P ones fine-tuned with a
    perceptual (LPIPS) loss on top."""

    R = Release("R", "r", "gimmvfi_r_arb.pt")
    R_P = Release("R-P", "r", "gimmvfi_r_arb_lpips.pt")
    F = Release("F", "f", "gimmvfi_f_arb.pt")
    F_P = Release("F-P", "f", "gimmvfi_f_arb_lpips.pt")
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
                out[new + key[len(old) :]] = value
                break
        else:
            out[key] = value  # left as is: reported as unexpected by the strict load
    return out


def read_state_dict(path) -> dict:
    """The official-layout state_dict stored in ``path`` (.pt/.pth/.ckpt or .safetensors)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(
            f"checkpoint not found: {path} (download the official files from {WEIGHTS_URL} "
            f"into ./pretrained_ckpt or $GIMM_TRT_CHECKPOINTS, or use random weights)"
        )
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
        return (
            f"cannot read checkpoint {path}: it holds pickled Python objects ({found.group(1)}) that loading "
            f"would run code for, so it is refused (use the official files from {WEIGHTS_URL}, or convert a file "
            "you trust to .safetensors)"
        )
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
            raise CheckpointError(
                f"{source}: {key} holds {value.dtype} values, expected {dtypes.get(key)} "
                "(a damaged or wrongly converted checkpoint)"
            )
        if want_float and not bool(torch.isfinite(value).all()):
            raise CheckpointError(
                f"{source}: {key} holds NaN or infinite values (a damaged checkpoint, or one "
                "saved from a diverged training run)"
            )


def upcast(state_dict: dict) -> dict:
    """fp16 and bf16 tensors as float32 (exactly: every half value is a float32 value); others as they are."""
    return {k: v.float() if v.dtype in (torch.float16, torch.bfloat16) else v for k, v in state_dict.items()}


def _layout(arch: str) -> tuple:
    """(GIMM part, flow estimator part) of ``arch``'s official layout as key -> shape; the estimator's keys
    as the estimator itself names them (no ``flow_estimator.`` prefix)."""
    gimm, flow = {}, {}
    for e in manifest(arch)["entries"]:
        key = e["key"]
        if key.startswith(FLOW):
            flow[key[len(FLOW) :]] = tuple(e["shape"])
        else:
            gimm[key] = tuple(e["shape"])
    return gimm, flow


def _closest(keys: set, layouts: dict) -> str:
    """The arch (``"r"``/``"f"``) whose layout ``keys`` differ least from."""
    return min(layouts, key=lambda arch: len(keys ^ set(layouts[arch])))


def _variants(arch: str) -> str:
    return "R or R-P" if arch == "r" else "F or F-P"


def _named(path, arch: str) -> str:
    """``" (its name says R-P)"`` when the file name tells the variant of ``arch`` it is, else ``""``."""
    variant = variant_of_name(path) if path is not None else None
    return f" (its name says {variant})" if variant and variant[0].lower() == arch else ""


def _check_keys(state_dict: dict, expected: dict, source: str, what: str) -> None:
    """One short CheckpointError unless ``state_dict`` has exactly the keys and shapes of ``expected``."""
    keys = set(state_dict)
    if keys != set(expected):
        missing = sorted(set(expected) - keys)
        unexpected = sorted(keys - set(expected))
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys ({_some(missing)})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys ({_some(unexpected)})")
        raise CheckpointError(f"{source} does not match {what}: {'; '.join(parts)}")
    for key, shape in expected.items():
        if tuple(state_dict[key].shape) != shape:
            raise CheckpointError(
                f"{source} does not match {what}: {key} has shape {tuple(state_dict[key].shape)}, expected {shape}"
            )


def _check_arch(keys: set, layouts: dict, weights: Weights, source: str, path=None) -> None:
    """A CheckpointError naming the variant ``keys`` belong to when that is not ``weights``' arch."""
    found = _closest(keys, layouts)
    if found != weights.value.arch:
        raise CheckpointError(
            f"{source} is a GIMM-VFI-{_variants(found)} checkpoint, not {weights.value.variant}{_named(path, found)}"
        )


def check_state_dict(state_dict: dict, weights: Weights, source: str = "checkpoint", path=None) -> None:
    """Raise one short CheckpointError unless ``state_dict`` has exactly the keys and shapes of ``weights``."""
    layouts = {a: {e["key"]: tuple(e["shape"]) for e in manifest(a)["entries"]} for a in ("r", "f")}
    if set(state_dict) != set(layouts[weights.value.arch]):
        _check_arch(set(state_dict), layouts, weights, source, path)
    _check_keys(state_dict, layouts[weights.value.arch], source, f"GIMM-VFI-{weights.value.variant}")
    _check_values(state_dict, weights.value.arch, source)


def _own_keys(state_dict: dict) -> dict:
    """A flow estimator file's keys as the estimator names them: a prefix on every key is dropped, ``module.``
    (the original RAFT/FlowFormer releases were saved from DataParallel) or ``flow_estimator.``."""
    for prefix in ("module.", FLOW):
        if state_dict and all(k.startswith(prefix) for k in state_dict):
            state_dict = {k[len(prefix) :]: v for k, v in state_dict.items()}
    return state_dict


def _check_gimm(state_dict: dict, path: Path, weights: Weights) -> None:
    """The GIMM part (everything but the estimator) of a split pair's GIMM file, strictly."""
    layouts = {a: _layout(a)[0] for a in ("r", "f")}
    keys = set(state_dict)
    if not keys & (set(layouts["r"]) | set(layouts["f"])):
        flows = {a: _layout(a)[1] for a in ("r", "f")}
        alone = set(_own_keys(state_dict))
        if alone & (set(flows["r"]) | set(flows["f"])):  # the estimator file given in place of the GIMM file
            arch = _closest(alone, flows)
            raise CheckpointError(
                f"{path} is a {ESTIMATORS[arch]} flow estimator alone (GIMM-VFI-{_variants(arch)}),"
                f" not GIMM weights: pass the GIMM file (e.g. gimmvfi_{arch}_arb_lpips_fp32."
                "safetensors) as --checkpoint and this one as --flow-checkpoint"
            )
    _check_arch(keys, layouts, weights, str(path), path)
    _check_keys(
        state_dict, layouts[weights.value.arch], str(path), f"the GIMM weights of GIMM-VFI-{weights.value.variant}"
    )


def _check_flow(state_dict: dict, path: Path, weights: Weights) -> None:
    """A flow estimator file (keys already as the estimator names them), strictly."""
    arch = weights.value.arch
    gimm_keys = set(_layout("r")[0]) | set(_layout("f")[0])
    if set(state_dict) & gimm_keys:
        raise CheckpointError(
            f"flow checkpoint {path} holds GIMM weights, not a flow estimator alone: pass it as --checkpoint"
        )
    flows = {a: _layout(a)[1] for a in ("r", "f")}
    found = _closest(set(state_dict), flows)
    if found != arch:
        raise CheckpointError(
            f"flow checkpoint {path} is the {ESTIMATORS[found]} estimator (GIMM-VFI-"
            f"{_variants(found)}), not the {ESTIMATORS[arch]} one GIMM-VFI-{weights.value.variant} "
            f"needs ({FLOW_NAMES[arch][0]})"
        )
    _check_keys(
        state_dict,
        flows[arch],
        f"flow checkpoint {path}",
        f"the {ESTIMATORS[arch]} estimator of GIMM-VFI-{weights.value.variant}",
    )


def read_checkpoint(files: CheckpointFiles, weights: Weights) -> dict:
    """The official-layout state_dict (fp16/bf16 upcast to float32) that ``files`` hold for ``weights``.

    With a flow estimator file, its weights replace any the GIMM file holds (as ComfyUI-GIMM-VFI's loader
    does); each part is checked strictly against its own file, so an error names the file at fault.
    """
    gimm = upcast(read_state_dict(files.gimm))
    if files.flow is None:
        if not any(k.startswith(FLOW) for k in gimm):
            _check_gimm(gimm, files.gimm, weights)  # the right variant's GIMM weights, only the estimator missing
            arch = weights.value.arch
            named = _named(files.gimm, arch) or f" (GIMM-VFI-{_variants(arch)})"
            raise CheckpointError(
                f"{files.gimm}{named}: GIMM weights found, flow estimator missing: put "
                f"{FLOW_NAMES[arch][0]} beside it or pass --flow-checkpoint"
            )
        check_state_dict(gimm, weights, str(files.gimm), files.gimm)
        _check_name(files.gimm, weights)
        return gimm
    rest = {k: v for k, v in gimm.items() if not k.startswith(FLOW)}
    _check_gimm(rest, files.gimm, weights)
    flow = _own_keys(upcast(read_state_dict(files.flow)))
    _check_flow(flow, files.flow, weights)
    merged = {**rest, **{FLOW + k: v for k, v in flow.items()}}
    check_state_dict(merged, weights, str(files))  # every key of the model exactly once, from one of the files
    _check_name(files.gimm, weights)
    return merged


def _check_name(path: Path, weights: Weights) -> None:
    """A warning when ``path``'s name says another variant than ``weights``. The weights passed the strict check,
    so their architecture is ``weights``' own; but R and R-P (F and F-P) differ in values only, which no check
    can tell apart, so a name of the other one of the pair is the one hint that the variant asked for is wrong."""
    named = variant_of_name(path)
    if named is None or named == weights.value.variant:
        return
    asked = weights.value.variant
    if named[0] == asked[0]:
        why = f"the weights of both have one layout: if it holds {named}'s, pass --variant {named}"
    else:
        why = f"its weights are GIMM-VFI-{_variants(weights.value.arch)}'s, so the name is wrong"
    log.warning("%s is named for GIMM-VFI-%s and runs as GIMM-VFI-%s (%s)", path, named, asked, why)


def _some(keys, n: int = 3) -> str:
    return ", ".join(keys[:n]) + (", ..." if len(keys) > n else "")


def build_model(arch: str, **kwargs):
    """An uninitialised ``GIMMVFI`` for ``arch`` ``"r"`` or ``"f"``."""
    from .gimm import GIMMVFI, FlowStage
    from .motion import MotionNetwork
    from .synthesis import Synthesis

    if arch == "r":
        from .flow.raft import raft_large

        flow = FlowStage(
            estimator=raft_large(),
            fproj=torch.nn.Conv2d(256, 256, 1),
            proj4=torch.nn.Conv2d(96, 128, 1),
            proj8=torch.nn.Conv2d(128, 256, 1),
        )
    else:
        from .flow.flowformer import flowformer

        flow = FlowStage(estimator=flowformer())
    splat_impl = kwargs.pop("splat_impl", "auto")
    return GIMMVFI(flow=flow, motion=MotionNetwork(splat_impl=splat_impl), synthesis=Synthesis(**kwargs))


def checkpoint_files(
    checkpoint=None, variant="R-P", *, flow_checkpoint=None, random_weights: bool = False
) -> Optional[CheckpointFiles]:
    """The files ``load_model`` reads for these arguments (None for random weights); found by name only.

    ``checkpoint``: a GIMM file (official ``.pt``, flat ``.safetensors``, or ComfyUI-GIMM-VFI's), a folder
    holding one (picked by the variant's names), a ``CheckpointFiles``, or None for the official name in
    ``$GIMM_TRT_CHECKPOINTS`` or ``./pretrained_ckpt``. ``flow_checkpoint``: the flow estimator file; by default
    one with ComfyUI-GIMM-VFI's name beside the GIMM file (``raft-things_fp32.safetensors``, ...) is used.
    """
    weights = Weights.verify(variant)
    if random_weights:
        if checkpoint is not None or flow_checkpoint is not None:
            raise InputError("pass either checkpoint or random_weights=True, not both")
        return None
    if isinstance(checkpoint, CheckpointFiles):
        if flow_checkpoint is not None:
            raise InputError("a CheckpointFiles names its flow estimator file itself: pass no flow_checkpoint")
        return checkpoint
    return locate(checkpoint, weights.value, flow_checkpoint)


def load_model(
    checkpoint=None, *, variant="R-P", flow_checkpoint=None, random_weights: bool = False, seed: int = 0, **kwargs
):
    """A ``GIMMVFI`` in eval mode with the weights of ``checkpoint`` (strictly checked against ``variant``).

    ``checkpoint`` and ``flow_checkpoint`` as in ``checkpoint_files``; ``random_weights=True`` (with
    ``checkpoint=None``) uses seeded synthetic weights instead.
    """
    weights = Weights.verify(variant)
    files = checkpoint_files(checkpoint, weights, flow_checkpoint=flow_checkpoint, random_weights=random_weights)
    if files is None:
        state_dict = synthetic_state_dict(weights.value.arch, seed)
        check_state_dict(state_dict, weights, f"random weights (seed {seed})")
    else:
        state_dict = read_checkpoint(files, weights)
    model = build_model(weights.value.arch, **kwargs)
    model.load_state_dict(to_model_keys(state_dict), strict=True)
    return model.eval().requires_grad_(False)
