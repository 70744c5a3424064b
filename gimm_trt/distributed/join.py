"""Joining the parts of one input, in order, into its OUTPUT, which only ever holds a whole result.

A folder OUTPUT: PNG parts gather in a hidden staging folder beside it, which becomes the OUTPUT (one rename)
or, when the OUTPUT folder already has files, has its frames moved in. A video OUTPUT: the lossless parts are
encoded once, in order, by the same ``VideoWriter`` as the single-process path (same codec, frame rate,
timestamps), with the input's audio packets copied, into a hidden partial file renamed when complete.
"""

from __future__ import annotations

import os
import shutil
from fractions import Fraction
from pathlib import Path
from typing import Optional

from ..core import deps
from ..runtime.pipeline import video_sink
from ..runtime.video import IMAGE_FPS
from . import parts
from .plan import Job

__all__ = ["staging_dir", "remove_staging", "PngJoin", "VideoJoin", "output_rate"]

_FRAME_GLOB = "[0-9][0-9][0-9][0-9][0-9][0-9].png"  # the numbered frames ``ImageWriter`` writes and replaces


def staging_dir(output) -> Path:
    """Hidden, beside ``output``: the same file system, so parts move into place by renaming."""
    out = Path(output)
    return out.with_name(f".{out.name}.gimm-parts")


def output_rate(job: Job, factor: int, fps) -> Fraction:
    """The single-process path's rate: ``fps``, else the input's (images: 24) times ``factor``."""
    return Fraction(str(fps)) if fps else (job.fps or IMAGE_FPS) * factor


class PngJoin:
    """Parts of a folder OUTPUT, gathered in ``staging`` and put in place by ``finish``."""

    fps = None  # PNG frames have no frame rate

    def __init__(self, job: Job, staging: Path, *, overwrite: bool):
        self.output = Path(job.output)
        self.overwrite = overwrite
        self.notes = []
        self.gathered = Path(staging) / "frames"
        self.gathered.mkdir(parents=True, exist_ok=True)
        self.frames = 0

    def add(self, part: Path) -> None:
        for frame in sorted(part.iterdir()):
            os.replace(frame, self.gathered / frame.name)
            self.frames += 1
        parts.remove(part)

    def finish(self) -> None:
        out = self.output
        if not out.exists() or (out.is_dir() and not any(out.iterdir())):
            out.parent.mkdir(parents=True, exist_ok=True)
            os.replace(self.gathered, out)  # rename(2) replaces an empty folder
            return
        if self.overwrite:  # like ImageWriter(replace=True): no frame of an earlier run outlives this one
            for old in out.glob(_FRAME_GLOB):
                old.unlink()
        for frame in sorted(self.gathered.iterdir()):
            os.replace(frame, out / frame.name)

    def abort(self) -> None:
        pass  # the staging folder, removed by the caller, holds everything written


class VideoJoin:
    """Parts of a video OUTPUT, encoded in order into a hidden partial file; ``finish`` renames it into place."""

    def __init__(self, job: Job, *, rate: Fraction, factor: int, comment: str, fps_given: bool):
        av = deps.require("av", "writing video files")
        self.output = Path(job.output)
        self._source: Optional[object] = None
        self._audio = iter(())
        template = None
        if not Path(job.source).is_dir():
            self._source = av.open(job.source)
            if self._source.streams.audio:
                template = self._source.streams.audio[0]
                self._audio = self._source.demux(template)
        self._pending = None  # an audio packet read ahead of the frame it belongs after
        # the writer encodes into its own partial file and puts it under the OUTPUT's name only when closed; the
        # notes say what the video changes, as the single-process path says it
        self.writer, self.notes = video_sink(
            self.output,
            rate=rate,
            width=job.width,
            height=job.height,
            audio=template,
            comment=comment,
            source_fps=job.fps,
            timing=job.timing,
            factor=factor,
            fps_given=fps_given,
        )

    @property
    def frames(self) -> int:
        return self.writer.frames_written

    @property
    def fps(self) -> Optional[Fraction]:
        return self.writer.fps

    def add(self, part: Path) -> None:
        for frame in parts.read_video_part(part):
            self._audio_until(self.writer.next_time)
            self.writer.write(frame)
        parts.remove(part)

    def _audio_until(self, seconds) -> None:
        """Copy the audio up to ``seconds``, so audio and video interleave as they are written."""
        while True:
            packet, self._pending = (self._pending if self._pending is not None else next(self._audio, None)), None
            if packet is None:
                return
            if packet.dts is None:  # a demuxer flush packet: nothing to copy (as VideoReader does)
                continue
            at = packet.pts if packet.pts is not None else packet.dts
            if seconds is not None and at * packet.time_base > seconds:
                self._pending = packet
                return
            self.writer.write_audio(packet)

    def finish(self) -> None:
        self._audio_until(None)
        self.writer.close()
        self._close_source()

    def abort(self) -> None:
        self.writer.abort()  # the partial file goes; an earlier OUTPUT stays
        self._close_source()

    def _close_source(self) -> None:
        if self._source is not None:
            self._source.close()
            self._source = None


def remove_staging(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
