"""Frame-size presets shared by ``gimm-export``, ``gimm-bench`` and the runtime: ``4k`` .. ``720p`` or ``WxH``."""
import re
from dataclasses import dataclass

PRESETS = {"720p": (1280, 720), "1080p": (1920, 1080), "2k": (2560, 1440), "4k": (3840, 2160)}


@dataclass(frozen=True, kw_only=True)
class Resolution:
    """A frame size; ``name`` is how the user spelled it (``"4k"``, ``"448x256"``): exports are named by it."""

    name: str
    width: int
    height: int

    @property
    def default_ds_scale(self) -> float:
        """The official guidance: 1.0 up to 1080p, 0.5 up to 2K, 0.25 above."""
        pixels = self.width * self.height
        if pixels <= 1920 * 1080:
            return 1.0
        return 0.5 if pixels <= 2560 * 1440 else 0.25


def parse_resolution(text) -> Resolution:
    """``"4k"``, ``"2k"``, ``"1080p"``, ``"720p"`` (any case) or ``"WxH"`` (width first, as ``1920x1080``)."""
    if isinstance(text, Resolution):
        return text
    key = str(text).strip().lower()
    if key in PRESETS:
        return Resolution(name=key, width=PRESETS[key][0], height=PRESETS[key][1])
    m = re.fullmatch(r"([1-9][0-9]{0,5})x([1-9][0-9]{0,5})", key)
    if not m:
        raise ValueError(f"resolution must be {', '.join(PRESETS)} or WxH (e.g. 1920x1080), got {text!r}")
    return Resolution(name=key, width=int(m[1]), height=int(m[2]))
