"""Which files hold a variant's weights: the official single file, or ComfyUI-GIMM-VFI's split pair.

kijai/ComfyUI-GIMM-VFI keeps two files per variant in ``ComfyUI/models/interpolation/gimm-vfi/``: the GIMM
weights (``gimmvfi_r_arb_lpips_fp32.safetensors``, ...) and the flow estimator alone under its own key names
(``raft-things_fp32.safetensors``, ``flowformer_sintel_fp32.safetensors``). Its loader reads the GIMM file
non-strictly and then puts the separately loaded estimator in place, so the estimator file wins over any
estimator weights the GIMM file holds. Finding the files here goes by name and existence only (no file is
read), so the loader and an export's weight identity always agree on them.
"""

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ..core.errors import CheckpointError

WEIGHTS_URL = "https://huggingface.co/GSean/GIMM-VFI"
ESTIMATORS = {"r": "RAFT", "f": "FlowFormer"}
PRECISION_TAGS = ("fp32", "fp16", "bf16")  # most precise first: the one picked when several sit together
# the estimator files by ComfyUI-GIMM-VFI's names (fp16/bf16: conversions of them); the first is the download
FLOW_NAMES = {
    "r": tuple(f"raft-things_{tag}.safetensors" for tag in PRECISION_TAGS),
    "f": tuple(f"flowformer_sintel_{tag}.safetensors" for tag in PRECISION_TAGS),
}
_GIMM_NAME = re.compile(r"gimmvfi_([rf])_arb(_lpips)?(?:_(?:fp32|fp16|bf16))?\.(?:pt|pth|ckpt|safetensors)")


@dataclass(frozen=True)
class CheckpointFiles:
    """The files one model loads from: the GIMM weights, and the flow estimator file that replaces the GIMM
    file's estimator weights (None: the GIMM file holds the estimator)."""

    gimm: Path
    flow: Optional[Path] = None

    @property
    def paths(self) -> tuple:
        return (self.gimm,) if self.flow is None else (self.gimm, self.flow)

    def __str__(self) -> str:
        return str(self.gimm) if self.flow is None else f"{self.gimm} + flow estimator {self.flow}"


def variant_of_name(path) -> Optional[str]:
    """The variant a GIMM file's name says (``"R-P"`` for ``gimmvfi_r_arb_lpips_fp16.safetensors``), else None."""
    m = _GIMM_NAME.fullmatch(Path(path).name)
    return None if m is None else m.group(1).upper() + ("-P" if m.group(2) else "")


def gimm_names(release) -> tuple:
    """The names a variant's GIMM file goes by, in the order a folder is searched: the official file, then
    ComfyUI-GIMM-VFI's safetensors (fp32, then conversions)."""
    stem = Path(release.file).stem
    return (release.file, f"{stem}.safetensors", *(f"{stem}_{tag}.safetensors" for tag in PRECISION_TAGS))


def locate(checkpoint, release, flow_checkpoint=None) -> CheckpointFiles:
    """The files to load ``release`` (a ``Release``) from.

    ``checkpoint``: a GIMM file; a folder (the variant's file is picked by name, as in ``gimm_names``); or None
    for the folder ``$GIMM_TRT_CHECKPOINTS`` (default ``./pretrained_ckpt``). ``flow_checkpoint``: the flow
    estimator file; None takes one with a ComfyUI-GIMM-VFI name beside the GIMM file when there is one.
    """
    gimm = _gimm_file(checkpoint, release)
    if flow_checkpoint is not None:
        flow = Path(flow_checkpoint)
        if not flow.is_file():
            raise CheckpointError(
                f"flow checkpoint not found: {flow} ({ESTIMATORS[release.arch]} estimator, e.g. "
                f"ComfyUI-GIMM-VFI's {FLOW_NAMES[release.arch][0]})"
            )
        return CheckpointFiles(gimm, flow)
    beside = [gimm.parent / name for name in FLOW_NAMES[release.arch]]
    return CheckpointFiles(gimm, next((p for p in beside if p.is_file()), None))


def _gimm_file(checkpoint, release) -> Path:
    if checkpoint is None:
        folder = Path(os.environ.get("GIMM_TRT_CHECKPOINTS", "pretrained_ckpt"))
        found = _pick(folder, release) if folder.is_dir() else None
        if found is None:
            raise CheckpointError(
                f"checkpoint not found: {folder / release.file} (download the official files from "
                f"{WEIGHTS_URL} into ./pretrained_ckpt or $GIMM_TRT_CHECKPOINTS, pass --checkpoint, "
                "or use random weights)"
            )
        return found
    path = Path(checkpoint)
    if path.is_dir():
        found = _pick(path, release)
        if found is None:
            raise CheckpointError(
                f"no GIMM-VFI-{release.variant} weights in {path}: looked for "
                f"{', '.join(gimm_names(release))}{_others(path)}"
            )
        return found
    if not path.is_file():
        raise CheckpointError(
            f"checkpoint not found: {path} (download the official files from {WEIGHTS_URL}, "
            "or pass a ComfyUI-GIMM-VFI models folder or file)"
        )
    return path


def _pick(folder: Path, release) -> Optional[Path]:
    return next((folder / n for n in gimm_names(release) if (folder / n).is_file()), None)


def _others(folder: Path) -> str:
    """``"; it holds gimmvfi_f_arb_lpips_fp32.safetensors (variant F-P)"``: the other variants' files in ``folder``."""
    found = sorted(f"{p.name} (variant {variant_of_name(p)})" for p in folder.iterdir() if variant_of_name(p))
    return f"; it holds {', '.join(found)}" if found else ""
