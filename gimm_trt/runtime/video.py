"""Frame sources and sinks for ``gimm-interpolate``: video files (PyAV) and image folders.

Sources yield uint8 [H,W,3] RGB frames one at a time and sinks write them one at a time, so a video of any
length goes decoder -> ``Interpolator.stream`` -> encoder in constant memory. Audio is not decoded: its packets
are copied into the output as they are demuxed (``VideoReader.frames(on_audio=VideoWriter.write_audio)``).

A video whose frames are not evenly spaced (a variable frame rate) keeps its timing: each original frame keeps its
time and the new frames of a pair lie between their times (``FrameClock``), so picture and sound stay together.

Sinks write beside their output (a hidden partial file or folder) and put the result under the output's name
only when closed after success: leaving the ``with`` block by an exception (an interrupt included) removes the
partial result and leaves any earlier output as it was.
"""

import contextlib
import os
import re
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from ..core import deps
from ..core.errors import InputError
from ..core.files import partial_path, partial_writer

VIDEO_SUFFIXES = (".mp4", ".mkv", ".mov", ".avi")
# video containers gimm-trt does not write: an OUTPUT named so is refused, not made a folder of PNGs by that name
OTHER_VIDEO_SUFFIXES = (
    ".webm", ".m4v", ".mpg", ".mpeg", ".ts", ".m2ts", ".mts", ".flv", ".wmv", ".asf", ".ogv", ".3gp", ".gif",
    ".vob", ".mxf", ".y4m",
)  # fmt: skip
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
IMAGE_FPS = Fraction(24)  # images carry no frame rate; this one is assumed (and said) when one is needed


def _av():
    return deps.require("av", "reading and writing video files")


def is_video(path) -> bool:
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def open_frames(path):
    """A folder -> ``ImageFrames``; a file -> ``VideoReader``; anything else is a clear error."""
    path = Path(path)
    if path.is_dir():
        return ImageFrames(path)
    if path.is_file():
        return VideoReader(path)
    raise InputError(f"input not found: {path}")


def to_uint8(frame: torch.Tensor) -> np.ndarray:
    """float [3,H,W] in [0,1] (any device) -> uint8 [H,W,3] RGB on the host, rounded."""
    return (frame.clamp(0, 1) * 255 + 0.5).to(torch.uint8).permute(1, 2, 0).cpu().numpy()


class _Closing:
    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class VideoReader(_Closing):
    """Decodes a video file one frame at a time.

    Opening decodes the first frame, so an empty, damaged or foreign file fails here, before any model work.
    Attributes: ``width``, ``height``, ``fps`` (Fraction or None), ``frame_count`` (what the container claims:
    its frame count, or its duration times the frame rate; None when it says neither), ``audio`` (the first
    audio stream or None). A file that decodes to fewer frames than it claims (truncated or damaged) is an
    error when its frames run out, so it is never processed in part without a word.
    """

    def __init__(self, path):
        av = _av()
        self.path = Path(path)
        if not self.path.is_file():
            raise InputError(f"input not found: {self.path}")
        try:
            self._container = av.open(str(self.path))
        except av.error.EOFError:
            raise InputError(f"{self.path} is empty: no video frames") from None
        except av.FFmpegError as e:
            raise InputError(f"cannot read video {self.path}: {e.strerror or e}") from None
        streams = self._container.streams
        if not streams.video:
            self.close()
            raise InputError(f"{self.path} has no video stream")
        self._video = streams.video[0]
        self._video.thread_type = "AUTO"
        self.audio = streams.audio[0] if streams.audio else None
        self.fps = self._video.average_rate or self._video.guessed_rate or None
        self.frame_count, self._seconds = _claim(self._container, self._video, self.fps)
        self._last_time = None  # when the last frame decoded is shown (seconds), when it says
        self._held = []  # audio demuxed while peeking at the first frame, handed over by frames()
        self._on_audio = self._held.append
        self._decoded = self._decode()
        try:
            self._first = next(self._decoded)
        except StopIteration:
            self.close()
            raise InputError(f"{self.path} has no video frames") from None
        self.height, self.width = self._first.shape[:2]

    def _decode(self) -> Iterator[np.ndarray]:
        av = _av()
        streams = [s for s in (self._video, self.audio) if s is not None]
        try:
            for packet in self._container.demux(streams):
                if packet.stream.index == self._video.index:
                    for frame in packet.decode():
                        self._last_time = frame.time
                        yield frame.to_ndarray(format="rgb24")
                elif packet.dts is not None:  # dts None: a demuxer flush packet, nothing to copy
                    self._on_audio(packet)
        except av.FFmpegError as e:
            raise InputError(f"cannot decode {self.path}: {e.strerror or e}") from None

    def frames(self, on_audio: Optional[Callable] = None) -> Iterator[np.ndarray]:
        """uint8 [H,W,3] RGB frames in order; each audio packet goes to ``on_audio`` (dropped if None)."""
        self._on_audio = on_audio or (lambda packet: None)
        for packet in self._held:
            self._on_audio(packet)
        self._held = []
        yield self._first
        n = 1
        for frame in self._decoded:
            n += 1
            yield frame
        self._check_count(n)

    def _check_count(self, decoded: int) -> None:
        claimed = self.frame_count
        if claimed is None:
            return
        # a duration-based claim can be off by a frame (rounding, a last frame's duration), not by more
        missing = max(1, claimed // 100)
        if self._seconds is not None and self._last_time is not None:
            # a duration says how long the frames last, not how many there are (their rate may vary): the last
            # frame must start within that many frames of the end
            short = self._last_time < self._seconds - (missing + 1) / float(self.fps)
        else:
            short = decoded < claimed - missing
        if short:
            raise InputError(
                f"{self.path} decoded to {decoded} of the {claimed} frames its container claims: the "
                "file is truncated or damaged (to use the frames that decode, re-encode it first, e.g. "
                "ffmpeg -i IN OUT.mkv)"
            )

    def close(self):
        self._container.close()


def _claim(container, video, fps) -> tuple:
    """``(frames, seconds)``: how many frames ``video`` says it holds, and how long, when that is what it says:
    its frame count (seconds None), else its duration (the stream's, its DURATION tag, or the container's when no
    other stream could make that longer) and that times ``fps``; Nones if unknown."""
    if video.frames:
        return int(video.frames), None
    seconds = None
    if video.duration and video.time_base:
        seconds = float(video.duration * video.time_base)
    elif "DURATION" in video.metadata:
        seconds = _hms(video.metadata["DURATION"])
    elif container.duration and len(container.streams) == 1:
        seconds = container.duration / 1_000_000  # AV_TIME_BASE
    if not seconds or not fps:
        return None, None
    return round(seconds * float(fps)), seconds


def _hms(text: str) -> Optional[float]:
    """``"00:00:02.500000000"`` (a Matroska DURATION tag) -> 2.5; None when it is not that."""
    try:
        h, m, sec = text.strip().split(":")
        return int(h) * 3600 + int(m) * 60 + float(sec)
    except ValueError:
        return None


@dataclass(frozen=True, eq=False)
class Timing:
    """When the frames of a video are shown, read from its packets: ``frames`` (how many packets hold one),
    ``pts`` [frames] int64 in ``time_base`` ticks, in display order, and ``end`` (when the last frame stops: its
    pts plus its duration). ``pts`` and ``end`` are None when the packets do not say (a missing or repeated
    timestamp): the frames then count as evenly spaced."""

    frames: int
    pts: Optional[np.ndarray]
    end: Optional[int]
    time_base: Optional[Fraction]


def read_timing(path) -> Timing:
    """The ``Timing`` of the first video stream of ``path``: its packets demuxed, not decoded."""
    av = _av()
    try:
        with av.open(str(path)) as container:
            video = container.streams.video[0]
            # the packets that give a frame: not a flush packet, nor one an edit list trims off the start
            stamps = [(p.pts, p.duration) for p in container.demux(video) if p.size and not p.is_discard]
            time_base = video.time_base
    except av.FFmpegError as e:
        raise InputError(f"cannot read video {path}: {e.strerror or e}") from None
    unknown = Timing(len(stamps), None, None, time_base)
    if not stamps or time_base is None or any(t is None for t, _ in stamps):
        return unknown
    stamps.sort(key=lambda stamp: stamp[0])  # packets come in decoding order
    pts = np.array([t for t, _ in stamps], np.int64)
    if np.any(np.diff(pts) <= 0):
        return unknown
    # a last frame of unknown duration lasts as long as the one before it
    last = stamps[-1][1] or (int(pts[-1] - pts[-2]) if len(pts) > 1 else 0)
    return Timing(len(stamps), pts, int(pts[-1]) + last, time_base)


class FrameClock:
    """When each frame of a ``factor``-times interpolation of a video with ``timing`` (known ``pts``) is shown:
    original ``i`` (output frame ``i * factor``) at its own time, new frame ``k`` of a pair at ``k / factor`` (its
    timestep) of the way between the pair's times, and the last frame as long as the source's last. In ticks of
    ``time_base``, the source's divided by ``factor``, so every such time is a whole tick."""

    def __init__(self, timing: Timing, factor: int):
        self._pts, self._end, self._factor = timing.pts, timing.end, factor
        self.time_base = timing.time_base / factor

    def pts(self, j: int) -> int:
        """Output frame ``j``'s time in ticks; one past the last frame: when the last one stops."""
        i, k = divmod(j, self._factor)
        if i >= len(self._pts) - 1 and (i, k) != (len(self._pts) - 1, 0):
            return self._end * self._factor
        t0 = int(self._pts[i])
        return t0 * self._factor + (k * (int(self._pts[i + 1]) - t0) if k else 0)


def frame_clock(timing: Timing, fps, factor: int, output) -> tuple:
    """``(clock, notes)`` for a video OUTPUT of a video with ``timing`` and frame rate ``fps``: clock None when
    its frames are evenly spaced at ``fps`` (the OUTPUT then is too, at ``fps * factor``), else a ``FrameClock``
    (an AVI output, which holds one frame rate only, is spaced evenly and says so); notes say what the video
    changes."""
    if timing.pts is None or _evenly_spaced(timing, fps):
        return None, []
    if Path(output).suffix.lower() == ".avi":
        return None, [
            "the input's frames are not evenly spaced, and AVI holds one frame rate only: they are spaced evenly, "
            "so the sound may drift; use .mkv, .mp4 or .mov to keep their times"
        ]
    return FrameClock(timing, factor), [
        "the input's frames are not evenly spaced (a variable frame rate): each keeps its time, and the new "
        "frames lie between theirs"
    ]


def _evenly_spaced(timing: Timing, fps) -> bool:
    """Every frame within one tick of where the constant rate ``fps`` from the first frame puts it."""
    if not fps:
        return False
    per_frame = float(1 / (Fraction(fps) * timing.time_base))  # ticks
    drift = (timing.pts - timing.pts[0]) - np.arange(len(timing.pts)) * per_frame
    return bool(np.all(np.abs(drift) <= 1))


class ImageFrames(_Closing):
    """A folder of images (natural order: ``2.png`` before ``10.png``) or a list of uint8 [H,W,3] arrays.

    Same interface as ``VideoReader`` (``fps`` and ``audio`` are None). Image headers are read up front, so
    frames of different sizes fail here, naming the file, before any model work.
    """

    fps = None
    audio = None

    def __init__(self, images, *, name: str = "frames"):
        if isinstance(images, (str, Path)):
            folder = Path(images)
            if not folder.is_dir():
                raise InputError(f"not a folder: {folder}")
            images = sorted((p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES), key=_natural)
            if not images:
                raise InputError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {folder}")
            name = str(folder)
        self._images = list(images)
        sizes = []
        for img in self._images:
            if isinstance(img, np.ndarray):
                sizes.append(img.shape[1::-1])
                continue
            with _opened(img) as im:
                sizes.append(im.size)
        for img, size in zip(self._images, sizes):
            if size != sizes[0]:
                raise InputError(
                    f"frames differ in size: {_label(img)} is {size[0]}x{size[1]}, "
                    f"{_label(self._images[0])} is {sizes[0][0]}x{sizes[0][1]} (WxH)"
                )
        self.width, self.height = sizes[0]
        self.frame_count = len(self._images)
        self.name = name

    def sliced(self, start: int, stop: Optional[int] = None) -> "ImageFrames":
        """Frames ``start`` to ``stop - 1`` (slice rules), without decoding the others."""
        return ImageFrames(self._images[start:stop], name=self.name)

    def frames(self, on_audio=None) -> Iterator[np.ndarray]:
        for img in self._images:
            if isinstance(img, np.ndarray):
                yield img
            else:
                with _opened(img) as im:
                    rgb = _rgb8(im, img)
                yield rgb


@contextlib.contextmanager
def _opened(path):
    """``PIL.Image.open(path)``; any failure to read or decode it is an InputError naming the file."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            yield im
    except InputError:
        raise
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise InputError(f"cannot read image {path}: {e} (a truncated or damaged file?)") from None


def _rgb8(im, path) -> np.ndarray:
    """uint8 [H,W,3] RGB of an open image (a writable array: torch takes it without a copy or a warning).

    16-bit images are scaled to 8 bits (65535 -> 255); PIL's own conversion would clip them at 255.
    """
    im.load()  # decode now, inside the caller's error handling
    if im.mode.startswith("I"):  # "I;16*" or "I": how PIL opens 16-bit grayscale
        wide = np.asarray(im).astype(np.int64)
        if wide.min(initial=0) < 0 or wide.max(initial=0) > 65535:
            raise InputError(f"cannot read image {path}: 32-bit integer pixels (save it as an 8- or 16-bit image)")
        gray = ((wide * 255 + 32767) // 65535).astype(np.uint8)  # rounded
        return np.repeat(gray[..., None], 3, axis=2)
    if im.mode == "F":
        raise InputError(
            f"cannot read image {path}: 32-bit float pixels have no defined range (save it as an 8- or 16-bit image)"
        )
    return np.array(im.convert("RGB"))


def _natural(path: Path):
    return [int(s) if s.isdigit() else s.lower() for s in re.split(r"(\d+)", path.name)]


def _label(img) -> str:
    return Path(img).name if isinstance(img, (str, Path)) else "an array"


def default_codec() -> str:
    """libx264 when this PyAV build has it (most wheels do), else FFmpeg's native mpeg4."""
    return "libx264" if "libx264" in _av().codecs_available else "mpeg4"


class _Sink(_Closing):
    """A writer whose result appears under ``path`` only when it is closed without an exception."""

    path: Path
    fps: Optional[Fraction] = None  # the frame rate written; None: none (images), or each frame's own time

    def __exit__(self, exc_type, *exc):
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def abort(self) -> None:
        """Drop what was written; an earlier output under ``path`` stays as it was."""


def _sweep(path: Path) -> None:
    """Remove what killed writers of ``path`` on this host left beside it; an earlier output that a killed swap
    had moved aside (and not replaced) is put back. POSIX only: it asks whether each writer still runs."""
    if os.name != "posix" or not path.parent.is_dir():
        return
    for entry in path.parent.iterdir():
        writer = partial_writer(path, entry.name)
        if writer is None or _alive(writer):
            continue
        with contextlib.suppress(OSError):  # another writer may be sweeping too
            if entry.name.endswith(".old") and not path.exists():
                os.replace(entry, path)
            elif entry.is_dir():
                shutil.rmtree(entry)
            else:
                entry.unlink()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


class VideoWriter(_Sink):
    """Encodes uint8 [H,W,3] RGB frames (yuv420p) and copies audio packets unchanged into one file.

    The file is written under a hidden partial name beside ``path`` and renamed to ``path`` by ``close()``, so
    ``path`` only ever holds a whole video (an earlier one until then); ``abort()`` or leaving the ``with``
    block by an exception removes the partial file.

    yuv420p, which every player decodes, needs even sizes: an odd width or height is padded by one
    replicated column/row (``padded`` says so) rather than cropped, so no picture is lost.

    Frames are ``1 / fps`` apart, or, given a ``clock`` (``FrameClock``), each at the clock's time for it and as
    long as until the next (then ``fps`` only guides the encoder and ``self.fps`` is None).
    """

    def __init__(
        self,
        path,
        *,
        fps,
        width: int,
        height: int,
        audio=None,
        codec: Optional[str] = None,
        comment: Optional[str] = None,
        clock: Optional[FrameClock] = None,
    ):
        av = _av()
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        _sweep(self.path)
        self.partial = partial_path(self.path, os.urandom(4).hex())
        self._container = None
        self.codec = codec or default_codec()
        rate = Fraction(fps)
        if self.codec == "mpeg4":
            rate = rate.limit_denominator(65535)  # MPEG-4 part 2 stores the time base in 16 bits
        self.fps, self._clock, self._durations = (rate if clock is None else None), clock, {}
        self._time_base = _codec_time_base(self.codec, rate, clock)
        self.width, self.height = width + width % 2, height + height % 2
        self.padded = (self.width, self.height) != (width, height)
        try:
            self._container = av.open(str(self.partial), "w", format=_muxer(self.path))
        except (OSError, av.FFmpegError) as e:
            raise InputError(f"cannot write {self.path}: {getattr(e, 'strerror', None) or e}") from None
        try:
            self._add_streams(rate, audio, comment)
        except BaseException:
            self.abort()
            raise
        self._n = 0
        self._started = False

    def _add_streams(self, rate, audio, comment) -> None:
        if comment:
            self._container.metadata["comment"] = comment
        self._video = self._container.add_stream(self.codec, rate=rate)
        self._video.width, self._video.height, self._video.pix_fmt = self.width, self.height, "yuv420p"
        self._video.codec_context.time_base = self._time_base
        if self.codec == "libx264":
            self._video.options = {"crf": "16"}  # visually lossless: new frames are judged against originals
            if self._clock is not None:  # MP4 and MOV take the last frame's duration from the last packet decoded,
                self._video.options["bf"] = "0"  # a reordered B-frame's when there are any: none, so it is the last
        else:
            self._video.bit_rate = max(2_000_000, int(self.width * self.height * float(rate) * 0.2))
        self._audio = self._container.add_stream_from_template(audio) if audio is not None else None
        self._audio_codec = audio.codec_context.name if audio is not None else None

    def write(self, frame: np.ndarray) -> None:
        av = _av()
        if self.padded:
            h, w = frame.shape[:2]
            frame = np.pad(frame, ((0, self.height - h), (0, self.width - w), (0, 0)), mode="edge")
        vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
        vf.pts = self._tick(self._n)
        if self._clock is not None:
            self._durations[vf.pts] = self._tick(self._n + 1) - vf.pts
        self._n += 1
        for packet in self._video.encode(vf):
            self._mux_video(packet)

    def _tick(self, j: int) -> int:
        """When output frame ``j`` is shown, in ticks of the encoder's time base."""
        if self._clock is None:
            return j
        return round(self._clock.pts(j) * self._clock.time_base / self._time_base)

    @property
    def next_time(self) -> Fraction:
        """When the next frame written will be shown, in seconds."""
        return self._tick(self._n) * self._time_base

    def _mux_video(self, packet) -> None:
        """Mux an encoded frame, with its duration when a clock times the frames (the encoder's assumes a constant
        rate)."""
        if packet.pts is not None:
            packet.duration = self._durations.pop(packet.pts, packet.duration)
        self._mux(packet)

    def write_audio(self, packet) -> None:
        if self._audio is not None:
            packet.stream = self._audio  # timestamps are rebased to the output stream by mux
            self._mux(packet)

    def _mux(self, packet):
        if self._started:
            self._container.mux(packet)
            return
        av = _av()
        try:  # the first mux writes the header: where a codec the container cannot hold is refused
            self._container.mux(packet)
        except av.FFmpegError as e:
            what = f"{self._audio_codec} audio" if self._audio_codec else f"{self.codec} video"
            raise InputError(
                f"cannot store {what} in {self.path.suffix} ({e.strerror or e}): use .mkv, which holds any codec"
            ) from None
        self._started = True

    @property
    def frames_written(self) -> int:
        return self._n

    def close(self) -> None:
        """Flush the encoder, close the file and rename it to ``path``."""
        if self._container is None:
            return
        try:
            for packet in self._video.encode(None):
                self._mux_video(packet)
            self._container.close()
            self._container = None
            os.replace(self.partial, self.path)
        finally:
            self.abort()

    def abort(self) -> None:
        if self._container is not None:
            with contextlib.suppress(Exception):  # the file is being dropped: a failing close changes nothing
                self._container.close()
            self._container = None
        self.partial.unlink(missing_ok=True)


def _codec_time_base(codec: str, rate: Fraction, clock: Optional[FrameClock]) -> Fraction:
    """The encoder's time base: a frame's, or the clock's tick (MPEG-4 part 2 stores it in 16 bits: at most
    1/65535 s there, finer than any two frames are apart)."""
    if clock is None:
        return 1 / rate
    if codec == "mpeg4" and clock.time_base.denominator > 65535:
        return Fraction(1, 65535)
    return clock.time_base


def _muxer(path: Path) -> Optional[str]:
    """FFmpeg's muxer for ``path``'s suffix (the partial name ends in it too; named so no guess is involved)."""
    return {".mp4": "mp4", ".mkv": "matroska", ".mov": "mov", ".avi": "avi"}.get(path.suffix.lower())


_FRAME_NAME = re.compile(r"[0-9]{6}\.png")


class ImageWriter(_Sink):
    """Writes frames as ``000000.png``, ``000001.png``, ... into ``folder`` (created if needed).

    The frames go into a hidden folder beside ``folder``, so ``folder`` keeps the earlier frames until this run
    has written all of its own. ``close()`` then swaps the two folders (two renames) when ``folder`` holds only
    numbered frames; when it holds other files too, those stay and the new frames are moved in one by one
    (each file whole). ``replace=True`` lets this run's frames replace numbered frames already in ``folder``;
    without it such frames are an error.
    """

    def __init__(self, folder, *, replace: bool = False):
        self.path = Path(folder)
        if self.path.exists() and not self.path.is_dir():
            raise InputError(f"{self.path} is a file: a folder of frames cannot be written there")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        _sweep(self.path)
        if not replace and self.path.is_dir() and any(_FRAME_NAME.fullmatch(p.name) for p in self.path.iterdir()):
            raise InputError(f"{self.path} holds numbered frames already (use --overwrite / replace=True)")
        self.partial = partial_path(self.path, os.urandom(4).hex())
        self.partial.mkdir()  # not mkdtemp: its 0700 would become the output folder's mode
        self._n = 0

    def write(self, frame: np.ndarray) -> None:
        from PIL import Image

        Image.fromarray(frame).save(self.partial / f"{self._n:06d}.png")
        self._n += 1

    def close(self) -> None:
        """Put the frames under ``path``: earlier numbered frames go, other files there stay."""
        if not self.partial.exists():
            return
        try:
            if not self.path.exists():
                os.replace(self.partial, self.path)
            elif self.path.is_symlink() or self.path.is_mount() or not self._frames_only():
                self._move_in()  # renaming would replace the link, fail across file systems, or move user files
            else:
                old = self.path.with_name(f"{self.partial.name}.old")  # put back by _sweep if killed here
                os.replace(self.path, old)
                os.replace(self.partial, self.path)
                shutil.rmtree(old, ignore_errors=True)
        finally:
            self.abort()

    def _frames_only(self) -> bool:
        return all(_FRAME_NAME.fullmatch(p.name) and p.is_file() for p in self.path.iterdir())

    def _move_in(self) -> None:
        for new in sorted(self.partial.iterdir()):
            shutil.move(new, self.path / new.name)  # a rename, or a copy across file systems
        for old in self.path.iterdir():
            if _FRAME_NAME.fullmatch(old.name) and int(old.name[:6]) >= self._n:
                old.unlink()

    def abort(self) -> None:
        shutil.rmtree(self.partial, ignore_errors=True)

    def write_audio(self, packet) -> None:
        pass  # a folder of images has nowhere to put sound

    @property
    def frames_written(self) -> int:
        return self._n
