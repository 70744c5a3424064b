"""How inputs become work: an output for each input, and each input's frames cut into segments.

``Interpolator.stream`` over input frames ``start..stop`` yields original ``start``, then for each pair its new
frames and its second original, up to original ``stop``: output frames ``start * factor`` to
``stop * factor``. Consecutive segments share one input frame (``stop`` of one is ``start`` of the next), so
every pair belongs to exactly one segment, and every segment but a video's first leaves out its first
output frame, which the segment before it wrote as its last. The pieces then join into the single-process
sequence: each pair is computed by the same calls on the same frames (a segment's first frame is encoded
once more, by the same per-frame encoder).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Optional

from ..core.errors import InputError
from ..runtime.video import Timing, is_video, open_frames, read_timing

__all__ = ["Job", "Segment", "MAX_SEGMENT_PAIRS", "outputs_for", "probe", "segment_pairs", "split"]

MAX_SEGMENT_PAIRS = 64  # bounds what a dead worker costs and what waits on disk to be joined


@dataclass(frozen=True)
class Job:
    """One input and where its result goes; ``frames`` is exact for images, the demuxed packets for a video, whose
    ``timing`` they give."""

    index: int
    source: str
    output: str
    video_out: bool
    frames: int
    width: int
    height: int
    fps: Optional[Fraction]
    timing: Optional[Timing] = None


@dataclass(frozen=True)
class Segment:
    """Input frames ``start`` to ``stop`` (inclusive; None = to the end) of job ``job``, piece ``index``."""

    job: int
    index: int
    start: int
    stop: Optional[int]

    @property
    def key(self) -> str:
        return f"{self.job:04d}-{self.index:05d}"

    @property
    def first(self) -> bool:
        """The first piece of its input: it writes its first output frame (later pieces leave it out)."""
        return self.index == 0

    def first_output(self, factor: int) -> int:
        """Index in the whole output of the first frame this piece writes."""
        return self.start * factor + (0 if self.first else 1)


def outputs_for(inputs, out_dir) -> list:
    """(input, output) for each input: ``out_dir/<name>`` (a video keeps its name; one whose suffix gimm-trt
    does not write becomes ``.mkv``; a folder of images gives a folder of PNGs). Items that are already
    ``(input, output)`` pairs are kept."""
    pairs, seen = [], {}
    for item in inputs:
        if isinstance(item, (tuple, list)):
            src, out = item
        else:
            if out_dir is None:
                raise InputError("several inputs need an output folder")
            src = Path(item)
            name = src.name if src.is_dir() or is_video(src) else src.stem + ".mkv"
            out = Path(out_dir) / name
        key = Path(out).resolve()
        if key in seen:
            raise InputError(f"{seen[key]} and {src} would both write {out}: give them different names")
        seen[key] = src
        pairs.append((str(src), str(out)))
    return pairs


def probe(index: int, source, output, *, video_out: bool) -> Job:
    """The ``Job`` of one input: opened the way the single-process path opens it (so a bad input fails the same
    way, before any work) and its frames counted: a folder's images, or a video's packets, demuxed without
    decoding (its decoded frames, barring damage)."""
    path = Path(source)
    if not path.exists():
        raise InputError(f"input not found: {path}")
    with open_frames(path) as src:
        size, fps, frames = (src.width, src.height), src.fps, src.frame_count
    timing = None if path.is_dir() else read_timing(path)
    if timing is not None:
        frames = timing.frames
    if frames < 2:
        raise InputError(f"{path} has {frames} frame: at least 2 are needed")
    return Job(index, str(path), str(output), video_out, frames, *size, fps, timing)


def segment_pairs(frame_counts, workers: int, max_pairs: int = MAX_SEGMENT_PAIRS) -> int:
    """Pairs per segment: all pairs shared evenly by ``workers``, at most ``max_pairs``. Many short inputs stay
    whole (a cut costs one more frame encoding); a long one is cut so that every worker has a part."""
    total = sum(max(n - 1, 0) for n in frame_counts)
    return max(1, min(max_pairs, math.ceil(total / max(workers, 1))))


def split(job: int, frames: int, pairs: int) -> list:
    """The segments of ``frames`` input frames, ``pairs`` pairs each; the last one runs to the end of the input
    (a video's packet count can differ from what decodes: the join does not depend on it)."""
    if pairs < 1:
        raise InputError(f"segment pairs must be >= 1, got {pairs}")
    starts = list(range(0, max(frames - 1, 1), pairs))
    return [Segment(job, i, start, start + pairs if i < len(starts) - 1 else None) for i, start in enumerate(starts)]
