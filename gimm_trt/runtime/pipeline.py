"""``interpolate_video``: a video file or a folder of images in, a video file or a folder of PNGs out.

Frames stream decoder -> ``Interpolator.stream`` -> encoder, so memory stays flat over any length. The output
(a video file or a folder of PNGs) is written beside its path, under a hidden partial name, and put in place
only when the run succeeds: a failed or interrupted run leaves an earlier output as it was.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Optional, Union

from ..core.checks import check_ds
from ..core.errors import InputError
from ..core.files import check_writable, claim
from ..core.progress import frame_bar
from ..core.sizes import processing_size
from .frames import check_factor, check_fps
from .interpolator import Interpolator
from .video import (
    IMAGE_FPS,
    OTHER_VIDEO_SUFFIXES,
    VIDEO_SUFFIXES,
    ImageFrames,
    ImageWriter,
    VideoReader,
    VideoWriter,
    frame_clock,
    is_video,
    open_frames,
    read_timing,
    to_uint8,
)

__all__ = ["VideoResult", "interpolate_video", "check_output", "claim_output", "video_sink"]


@dataclass
class VideoResult:
    """What ``interpolate_video`` wrote: ``frames`` frames to ``output``, at ``fps`` for a video (None: a folder,
    or a video whose frames keep the input's uneven times)."""

    output: Path
    frames: int
    fps: Optional[Fraction]
    notes: list = field(default_factory=list)


def check_output(output, *, overwrite: bool, source=None, fps=None) -> bool:
    """Refuse, before any work, an output that would replace something without ``overwrite``, that is the input,
    that names a video format not written here, that cannot be written there, or that has no frame rate to set
    (``fps`` given for a folder); True when ``output`` is a video file (else a folder of PNGs)."""
    out = Path(output)
    video_out = is_video(out) and not out.is_dir()
    if source is not None and Path(source).exists() and out.exists() and out.samefile(source):
        raise InputError(f"OUTPUT is INPUT: {out}")
    if not video_out and not out.is_dir() and out.suffix.lower() in OTHER_VIDEO_SUFFIXES:
        raise InputError(
            f"cannot write {out}: {out.suffix} videos are not written here; name the OUTPUT "
            f"{', '.join(VIDEO_SUFFIXES)}, or a folder for PNG frames"
        )
    if fps is not None and not video_out:
        raise InputError(
            f"--fps sets a video's frame rate, and {out} is a folder of PNGs, which has none: drop --fps, or name "
            f"the OUTPUT {', '.join(VIDEO_SUFFIXES)}"
        )
    if video_out:
        if out.exists() and not overwrite:
            raise InputError(f"{out} exists (use --overwrite to replace it)")
    elif out.is_file():
        raise InputError(f"{out} is a file: OUTPUT must be a video (.mp4, .mkv, .mov, .avi) or a folder")
    elif out.is_dir() and any(out.iterdir()) and not overwrite:
        raise InputError(f"{out} exists and is not empty (use --overwrite to replace its frames)")
    check_writable(out)  # both outputs are written beside their path first
    return video_out


@contextlib.contextmanager
def claim_output(output, *, overwrite: bool, source=None, fps=None):
    """``check_output``, then ``output`` held for this block alone (``files.claim``) and checked again under the
    hold: of two runs writing one OUTPUT at once, the second fails here, before any work, whatever the first has
    written so far. Yields what ``check_output`` returns."""
    check_output(output, overwrite=overwrite, source=source, fps=fps)  # its own errors come before a folder is made
    with claim(output):
        yield check_output(output, overwrite=overwrite, source=source, fps=fps)


def interpolate_video(
    source,
    output,
    *,
    interpolator: Union[Interpolator, Callable[[], Interpolator]],
    factor: int = 2,
    fps=None,
    ds_scale: Optional[float] = None,
    overwrite: bool = False,
    progress: bool = False,
) -> VideoResult:
    """Interpolate ``source`` into ``output`` at ``factor`` times the frame rate.

    Args:
        source: a video file, a folder of images, or an ``ImageFrames`` (e.g. the demo clip).
        output: a video file (.mp4, .mkv, .mov, .avi: H.264 yuv420p, audio copied) or a folder of PNGs.
        interpolator: an ``Interpolator``, or a callable making one: it is called after the input and output
            have been checked, so a bad path fails before any model loads.
        factor: frame-rate multiplier (``factor - 1`` new frames per pair).
        fps: frame rate of a video output (a number, a Fraction or ``"30000/1001"``); default the input's times
            ``factor`` (images count as 24 fps), or, for a video whose frames are not evenly spaced, their own
            times (the new frames between them), so the sound stays with the picture. A folder takes none.
        ds_scale: processing scale; checked against the frame size before the model loads when given.
        overwrite: replace an existing output (a folder: its numbered frames); the earlier output stays until
            this run has succeeded.
        progress: show a progress bar on stderr.
    """
    factor, fps, ds_scale = check_factor(factor), check_fps(fps), check_ds(ds_scale)
    src_path = None if isinstance(source, ImageFrames) else source
    out = Path(output)
    with (
        claim_output(output, overwrite=overwrite, source=src_path, fps=fps) as video_out,
        source if isinstance(source, ImageFrames) else open_frames(source) as src,
    ):
        name = getattr(src, "name", None) or str(src_path)
        if isinstance(src, ImageFrames) and src.frame_count < 2:
            raise InputError(f"{name} has {src.frame_count} frame: at least 2 are needed")
        if ds_scale is not None:  # a size the model cannot run is said before it loads
            processing_size(src.height, src.width, ds_scale)
        interp = (
            interpolator() if callable(interpolator) and not isinstance(interpolator, Interpolator) else interpolator
        )
        rate = fps or (src.fps or IMAGE_FPS) * factor
        notes = []
        total = (src.frame_count - 1) * factor + 1 if src.frame_count else None  # a video's count is an estimate
        # the sink is entered as soon as it has made its partial output, so a signal from then on removes it; it
        # puts its output in place only if the block succeeds
        with (
            _sink(
                out,
                video_out,
                src,
                rate,
                overwrite,
                notes,
                factor=factor,
                fps_given=fps is not None,
                comment=f"gimm-trt: GIMM-VFI-{interp.variant} x{factor}, {interp.weights}",
            ) as sink,
            frame_bar(progress, total) as bar,
        ):
            frames = _Counted(src.frames(on_audio=sink.write_audio))
            for frame in interp.stream(frames, factor=factor, ds_scale=ds_scale):
                sink.write(to_uint8(frame))
                bar.update()
            if frames.n < 2:
                raise InputError(f"{name} has {frames.n} frame: at least 2 are needed")
    return VideoResult(output=out, frames=sink.frames_written, fps=sink.fps, notes=notes)


class _Counted:
    """An iterable that counts what went through it."""

    def __init__(self, items):
        self.items, self.n = items, 0

    def __iter__(self):
        for item in self.items:
            self.n += 1
            yield item


def _sink(
    out: Path, video_out: bool, src, rate, overwrite: bool, notes: list, *, factor: int, fps_given: bool, comment: str
):
    """A VideoWriter (a video OUTPUT, see ``video_sink``) or an ImageWriter on ``out``; adds to ``notes`` what the
    video changes."""
    if not video_out:
        return ImageWriter(out, replace=overwrite)
    timing = read_timing(src.path) if isinstance(src, VideoReader) and not fps_given else None
    sink, said = video_sink(
        out,
        rate=rate,
        width=src.width,
        height=src.height,
        audio=src.audio,
        comment=comment,
        source_fps=src.fps,
        timing=timing,
        factor=factor,
        fps_given=fps_given,
    )
    notes += said
    return sink


def video_sink(
    out, *, rate, width: int, height: int, audio, comment: str, source_fps, timing, factor: int, fps_given: bool
) -> tuple:
    """``(VideoWriter, notes)`` for a video OUTPUT at ``rate`` of ``width`` x ``height`` frames from a source at
    ``source_fps`` (None: images); the notes say what the video changes. Without ``fps_given``, a video source's
    ``timing`` (``read_timing``; None: images) is kept (``frame_clock``)."""
    clock, notes = None, []
    if not fps_given and timing is not None:
        clock, notes = frame_clock(timing, source_fps, factor, out)
    sink = VideoWriter(out, fps=rate, width=width, height=height, audio=audio, comment=comment, clock=clock)
    if source_fps is None and not fps_given:
        notes.append(
            f"images have no frame rate: {IMAGE_FPS} fps assumed, so the video is {float(rate):g} fps "
            "(set it with --fps)"
        )
    if sink.padded:
        notes.append(
            f"{width}x{height} has an odd side and yuv420p needs even sizes: the video is "
            f"{sink.width}x{sink.height} (last column/row repeated)"
        )
    return sink, notes
