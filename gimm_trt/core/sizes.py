"""Frame sizes: the official padding to multiples of 32, the processing size at a scale, resolution presets."""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import InputError

__all__ = [
    "MIN_PROCESSING",
    "PAD_MULTIPLE",
    "PRESETS",
    "Padding",
    "pad_multiple",
    "padded_size",
    "processing_size",
    "default_ds",
    "Resolution",
    "parse_resolution",
]

PAD_MULTIPLE = 32  # the official demo's
MAX_PAD_MULTIPLE = 256
MIN_PROCESSING = 128  # smallest processing height/width: the 1/8 correlation pyramid needs 4 levels
PRESETS = {"720p": (1280, 720), "1080p": (1920, 1080), "2k": (2560, 1440), "4k": (3840, 2160)}


def pad_multiple(ds: float) -> int:
    """The multiple frame sides pad to at scale ``ds``: the official 32 wherever 32 * ds is a multiple of 8 (ds 1,
    0.75, 0.5, 0.25), else the smallest of 64, 128, 256 that is (64 at ds 0.125: 8K's 4320 rows pad to 4352, so
    the flow runs at 544 rows rather than 540, off the 1/8 grid RAFT's encoders need); 32 when none is."""
    multiple = PAD_MULTIPLE
    while multiple <= MAX_PAD_MULTIPLE:
        side = multiple * ds
        if side == int(side) and int(side) % 8 == 0:
            return multiple
        multiple *= 2
    return PAD_MULTIPLE


@dataclass(frozen=True)
class Padding:
    """Replicate padding to multiples of ``pad_multiple(ds)`` (32 for the official scales), split as the official
    demo splits it (left = pw // 2)."""

    left: int
    right: int
    top: int
    bottom: int

    @classmethod
    def for_size(cls, h: int, w: int, ds: float = 1.0) -> Padding:
        multiple = pad_multiple(ds)
        ph = (multiple - h % multiple) % multiple
        pw = (multiple - w % multiple) % multiple
        return cls(pw // 2, pw - pw // 2, ph // 2, ph - ph // 2)

    def pad(self, x):
        """[...,H,W] torch tensor -> [...,Hp,Wp], edges replicated."""
        if not (self.left or self.right or self.top or self.bottom):
            return x
        import torch.nn.functional as F

        return F.pad(x, (self.left, self.right, self.top, self.bottom), mode="replicate")

    def crop(self, x):
        h, w = x.shape[-2:]
        return x[..., self.top : h - self.bottom, self.left : w - self.right]


def padded_size(h: int, w: int, ds: float = 1.0) -> tuple:
    """(Hp, Wp): ``h`` x ``w`` padded to multiples of ``pad_multiple(ds)``."""
    pad = Padding.for_size(h, w, ds)
    return h + pad.top + pad.bottom, w + pad.left + pad.right


def processing_size(h: int, w: int, ds: float) -> tuple:
    """(Hp, Wp, Hd, Wd) for an input of H x W at scale ``ds``; raises InputError if the model cannot run it."""
    if not isinstance(ds, (int, float)) or isinstance(ds, bool) or not 0.0 < ds <= 1.0:
        raise InputError(f"ds_scale must lie in (0, 1], got {ds!r}")
    hp, wp = padded_size(h, w, ds)
    hd, wd = int(hp * ds), int(wp * ds)
    if hd % 8 or wd % 8 or hd * 1.0 != hp * ds or wd * 1.0 != wp * ds:
        raise InputError(
            f"ds_scale={ds} does not divide the padded size {hp}x{wp} into multiples of 8 (use 1.0, 0.5, 0.25 or 0.125)"
        )
    if hd < MIN_PROCESSING or wd < MIN_PROCESSING:
        raise InputError(
            f"frames of {h}x{w} at ds_scale={ds} are processed at {hd}x{wd}; both sides must be "
            f">= {MIN_PROCESSING} (use larger frames or a larger ds_scale)"
        )
    return hp, wp, hd, wd


def default_ds(width: int, height: int) -> float:
    """The official guidance: 1.0 up to 1080p, 0.5 up to 2K, 0.25 above."""
    pixels = width * height
    if pixels <= 1920 * 1080:
        return 1.0
    return 0.5 if pixels <= 2560 * 1440 else 0.25


@dataclass(frozen=True, kw_only=True)
class Resolution:
    """A frame size; ``name`` is how the user spelled it (``"4k"``, ``"448x256"``): exports are named by it."""

    name: str
    width: int
    height: int

    @property
    def default_ds_scale(self) -> float:
        return default_ds(self.width, self.height)

    def ds(self, ds_scale=None) -> float:
        """The processing scale for frames of this size: ``ds_scale`` as a float, or the official guidance for
        the size (``default_ds_scale``) when None."""
        return float(ds_scale) if ds_scale is not None else self.default_ds_scale


def parse_resolution(text) -> Resolution:
    """``"4k"``, ``"2k"``, ``"1080p"``, ``"720p"`` (any case) or ``"WxH"`` (width first, as ``1920x1080``)."""
    if isinstance(text, Resolution):
        return text
    key = str(text).strip().lower()
    if key in PRESETS:
        return Resolution(name=key, width=PRESETS[key][0], height=PRESETS[key][1])
    m = re.fullmatch(r"([1-9][0-9]{0,5})x([1-9][0-9]{0,5})", key)
    if not m:
        raise InputError(f"resolution must be {', '.join(PRESETS)} or WxH (e.g. 1920x1080), got {text!r}")
    return Resolution(name=key, width=int(m[1]), height=int(m[2]))
