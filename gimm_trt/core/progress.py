"""The progress bar of a run that writes frames: one look whether one process or a cluster writes them."""

import sys

__all__ = ["frame_bar"]


def frame_bar(enabled: bool, total):
    """A ``tqdm`` bar counting frames on stderr, ``total`` expected (None: unknown). With ``enabled`` it shows
    only when stderr is a terminal (logs stay clean); without, never. ``update`` works either way."""
    from tqdm import tqdm  # imported when a run starts: importing gimm_trt stays light

    return tqdm(total=total, unit="frame", desc="gimm-interpolate", file=sys.stderr, disable=None if enabled else True)
