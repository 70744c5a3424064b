"""A segment's frames on disk until they are joined: PNG files named by their index in the whole output (for a
folder OUTPUT), or one lossless FFV1 video (for a video OUTPUT, which is encoded once, in order, at the join).

A part is written under a hidden temporary name and renamed when complete, so a part that exists is whole,
and a retried segment simply writes its part again.
"""

from __future__ import annotations

import itertools
import os
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from ..core import deps
from ..core.files import partial_path

__all__ = ["PART_RATE", "part_path", "write_png_part", "write_video_part", "read_video_part", "remove"]

PART_RATE = 1  # frame rate of an intermediate video: only the order of its frames matters


def part_path(staging: Path, key: str, video: bool) -> Path:
    return Path(staging) / (f"{key}.mkv" if video else key)


def remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def write_png_part(frames: Iterable[np.ndarray], path: Path, first_index: int, on_frame=None) -> int:
    """Write uint8 [H,W,3] frames as ``<index>.png`` (six digits, like ``ImageWriter``) into the folder ``path``."""
    from PIL import Image

    tmp = partial_path(path)  # one per process: an attempt Ray gave up on never writes into its retry's
    remove(tmp)
    tmp.mkdir(parents=True)
    n = 0
    try:
        for n, frame in enumerate(frames, start=1):
            Image.fromarray(frame).save(tmp / f"{first_index + n - 1:06d}.png")
            if on_frame:
                on_frame(n)
        remove(path)
        os.replace(tmp, path)
    finally:
        remove(tmp)
    return n


def write_video_part(frames: Iterable[np.ndarray], path: Path, on_frame=None) -> int:
    """Write uint8 [H,W,3] RGB frames losslessly (FFV1, bgr0) into the .mkv file ``path``; no frames: an
    empty file (a segment past the end of a video whose packet count was too high)."""
    av = deps.require("av", "writing video segments")
    tmp = partial_path(path)  # one per process: an attempt Ray gave up on never writes into its retry's
    frames = iter(frames)
    first = next(frames, None)
    n = 0
    try:
        if first is None:
            tmp.write_bytes(b"")
        else:
            with av.open(str(tmp), "w") as container:
                stream = container.add_stream("ffv1", rate=PART_RATE)
                stream.height, stream.width = first.shape[:2]
                stream.pix_fmt = "bgr0"  # FFV1's lossless RGB
                for n, frame in enumerate(itertools.chain([first], frames), start=1):
                    vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
                    vf.pts = n - 1
                    container.mux(stream.encode(vf))
                    if on_frame:
                        on_frame(n)
                container.mux(stream.encode(None))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return n


def read_video_part(path: Path) -> Iterator[np.ndarray]:
    """The frames of a part written by ``write_video_part``, in order (none for a part with no frames)."""
    av = deps.require("av", "reading video segments")
    if path.stat().st_size == 0:
        return
    with av.open(str(path)) as container:
        if not container.streams.video:
            return
        for frame in container.decode(video=0):
            yield frame.to_ndarray(format="rgb24")
