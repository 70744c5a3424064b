"""Frame conversion, validation and the padding convention of the official demo."""
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

MIN_PROCESSING = 128  # smallest processing height/width: the 1/8 correlation pyramid needs 4 levels


def to_tensor(img, name: str, device) -> torch.Tensor:
    """A frame as float32 [1,3,H,W] in [0,1] on ``device``.

    Accepts float [3,H,W] / [1,3,H,W] in [0,1] (torch or numpy) or uint8 [H,W,3] (torch or numpy, RGB).
    """
    if isinstance(img, np.ndarray):
        img = torch.from_numpy(np.ascontiguousarray(img))
    if not isinstance(img, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor or numpy.ndarray, got {type(img).__name__}")
    if img.dtype == torch.uint8:
        if img.dim() != 3 or img.shape[2] != 3:
            raise ValueError(f"{name}: uint8 frames must be [H,W,3] RGB, got shape {tuple(img.shape)}")
        img = img.to(device).permute(2, 0, 1).unsqueeze(0).float() / 255.0
    elif img.is_floating_point():
        if img.dim() == 3:
            img = img.unsqueeze(0)
        if img.dim() != 4 or img.shape[:2] != (1, 3):
            raise ValueError(f"{name}: float frames must be [3,H,W] or [1,3,H,W], got shape {tuple(img.shape)}")
        img = img.to(device=device, dtype=torch.float32)
    else:
        raise TypeError(f"{name}: dtype {img.dtype} is not supported (use float in [0,1] or uint8)")
    if not bool(torch.isfinite(img).all()):
        raise ValueError(f"{name} contains NaN or infinite pixel values")
    return img.contiguous()


def check_timesteps(timesteps) -> list:
    """Timesteps as a list of floats strictly inside (0, 1) (synthesis divides by t and by 1 - t)."""
    if isinstance(timesteps, torch.Tensor):
        timesteps = timesteps.flatten().tolist()
    if isinstance(timesteps, (int, float)):
        timesteps = [timesteps]
    timesteps = [float(t) for t in timesteps]
    if not timesteps:
        raise ValueError("timesteps must not be empty")
    bad = [t for t in timesteps if not 0.0 < t < 1.0]
    if bad:
        raise ValueError(f"timesteps must lie strictly inside (0, 1); got {bad}")
    return timesteps


@dataclass(frozen=True)
class Padding:
    """Replicate padding to multiples of 32, split as the official demo splits it (left = pw // 2)."""

    left: int
    right: int
    top: int
    bottom: int

    @classmethod
    def for_size(cls, h: int, w: int, multiple: int = 32) -> "Padding":
        ph = (multiple - h % multiple) % multiple
        pw = (multiple - w % multiple) % multiple
        return cls(pw // 2, pw - pw // 2, ph // 2, ph - ph // 2)

    def pad(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.left or self.right or self.top or self.bottom):
            return x
        return F.pad(x, (self.left, self.right, self.top, self.bottom), mode="replicate")

    def crop(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        return x[..., self.top:h - self.bottom, self.left:w - self.right]


def processing_size(h: int, w: int, ds: float) -> tuple:
    """(Hp, Wp, Hd, Wd) for an input of H x W at scale ``ds``; raises ValueError if the model cannot run it."""
    if not 0.0 < ds <= 1.0:
        raise ValueError(f"ds_scale must lie in (0, 1], got {ds}")
    pad = Padding.for_size(h, w)
    hp, wp = h + pad.top + pad.bottom, w + pad.left + pad.right
    hd, wd = int(hp * ds), int(wp * ds)
    if hd % 8 or wd % 8 or hd * 1.0 != hp * ds or wd * 1.0 != wp * ds:
        raise ValueError(f"ds_scale={ds} does not divide the padded size {hp}x{wp} into multiples of 8 "
                         "(use 1.0, 0.5 or 0.25)")
    if hd < MIN_PROCESSING or wd < MIN_PROCESSING:
        raise ValueError(f"frames of {h}x{w} at ds_scale={ds} are processed at {hd}x{wd}; both sides must be "
                         f">= {MIN_PROCESSING} (use larger frames or a larger ds_scale)")
    return hp, wp, hd, wd
