"""Frame sources and sinks for ``gimm-interpolate``: video files (PyAV) and image folders.

Sources yield uint8 [H,W,3] RGB frames one at a time and sinks write them one at a time, so a video of any
length goes decoder -> ``Interpolator.stream`` -> encoder in constant memory. Audio is not decoded: its packets
are copied into the output as they are demuxed (``VideoReader.frames(on_audio=VideoWriter.write_audio)``).
"""
import re
from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from ..core import deps
from ..core.errors import InputError

VIDEO_SUFFIXES = (".mp4", ".mkv", ".mov", ".avi")
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
    Attributes: ``width``, ``height``, ``fps`` (Fraction or None), ``frame_count`` (the container's estimate or
    None), ``audio`` (the first audio stream or None).
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
        self.frame_count = self._video.frames or None
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
        yield from self._decoded

    def close(self):
        self._container.close()


class ImageFrames(_Closing):
    """A folder of images (natural order: ``2.png`` before ``10.png``) or a list of uint8 [H,W,3] arrays.

    Same interface as ``VideoReader`` (``fps`` and ``audio`` are None). Image headers are read up front, so
    frames of different sizes fail here, naming the file, before any model work.
    """

    fps = None
    audio = None

    def __init__(self, images, *, name: str = "frames"):
        from PIL import Image

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
            try:
                with Image.open(img) as im:
                    sizes.append(im.size)
            except OSError as e:
                raise InputError(f"cannot read image {img}: {e}") from None
        for img, size in zip(self._images, sizes):
            if size != sizes[0]:
                raise InputError(f"frames differ in size: {_label(img)} is {size[0]}x{size[1]}, "
                                 f"{_label(self._images[0])} is {sizes[0][0]}x{sizes[0][1]} (WxH)")
        self.width, self.height = sizes[0]
        self.frame_count = len(self._images)
        self.name = name

    def sliced(self, start: int, stop: Optional[int] = None) -> "ImageFrames":
        """Frames ``start`` to ``stop - 1`` (slice rules), without decoding the others."""
        return ImageFrames(self._images[start:stop], name=self.name)

    def frames(self, on_audio=None) -> Iterator[np.ndarray]:
        from PIL import Image

        for img in self._images:
            if isinstance(img, np.ndarray):
                yield img
            else:
                with Image.open(img) as im:
                    yield np.asarray(im.convert("RGB"))


def _natural(path: Path):
    return [int(s) if s.isdigit() else s.lower() for s in re.split(r"(\d+)", path.name)]


def _label(img) -> str:
    return Path(img).name if isinstance(img, (str, Path)) else "an array"


def default_codec() -> str:
    """libx264 when this PyAV build has it (most wheels do), else FFmpeg's native mpeg4."""
    return "libx264" if "libx264" in _av().codecs_available else "mpeg4"


class VideoWriter(_Closing):
    """Encodes uint8 [H,W,3] RGB frames (yuv420p) and copies audio packets unchanged into one file.

    yuv420p, which every player decodes, needs even sizes: an odd width or height is padded by one
    replicated column/row (``padded`` says so) rather than cropped, so no picture is lost.
    """

    def __init__(self, path, *, fps, width: int, height: int, audio=None, codec: Optional[str] = None,
                 comment: Optional[str] = None):
        av = _av()
        self.path = Path(path)
        self.codec = codec or default_codec()
        rate = Fraction(fps)
        if self.codec == "mpeg4":
            rate = rate.limit_denominator(65535)  # MPEG-4 part 2 stores the time base in 16 bits
        self.width, self.height = width + width % 2, height + height % 2
        self.padded = (self.width, self.height) != (width, height)
        self._container = av.open(str(self.path), "w")
        if comment:
            self._container.metadata["comment"] = comment
        self._video = self._container.add_stream(self.codec, rate=rate)
        self._video.width, self._video.height, self._video.pix_fmt = self.width, self.height, "yuv420p"
        if self.codec == "libx264":
            self._video.options = {"crf": "16"}  # visually lossless: new frames are judged against originals
        else:
            self._video.bit_rate = max(2_000_000, int(self.width * self.height * float(rate) * 0.2))
        self._audio = self._container.add_stream_from_template(audio) if audio is not None else None
        self._audio_codec = audio.codec_context.name if audio is not None else None
        self._n = 0
        self._started = False

    def write(self, frame: np.ndarray) -> None:
        av = _av()
        if self.padded:
            h, w = frame.shape[:2]
            frame = np.pad(frame, ((0, self.height - h), (0, self.width - w), (0, 0)), mode="edge")
        vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
        vf.pts = self._n
        self._n += 1
        for packet in self._video.encode(vf):
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
            raise InputError(f"cannot store {what} in {self.path.suffix} ({e.strerror or e}): "
                             "use .mkv, which holds any codec") from None
        self._started = True

    @property
    def frames_written(self) -> int:
        return self._n

    def close(self) -> None:
        try:
            for packet in self._video.encode(None):
                self._mux(packet)
        finally:
            self._container.close()


class ImageWriter(_Closing):
    """Writes frames as ``000000.png``, ``000001.png``, ... into a folder (created if needed).

    ``replace=True`` first deletes the numbered frames an earlier run left there, so none outlives this one.
    """

    def __init__(self, folder, *, replace: bool = False):
        self.path = Path(folder)
        self.path.mkdir(parents=True, exist_ok=True)
        if replace:
            for old in self.path.glob("[0-9][0-9][0-9][0-9][0-9][0-9].png"):
                old.unlink()
        self._n = 0

    def write(self, frame: np.ndarray) -> None:
        from PIL import Image

        Image.fromarray(frame).save(self.path / f"{self._n:06d}.png")
        self._n += 1

    def write_audio(self, packet) -> None:
        pass  # a folder of images has nowhere to put sound

    @property
    def frames_written(self) -> int:
        return self._n
