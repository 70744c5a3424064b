"""The wire format of ``POST /interpolate``: NumPy ``.npz`` archives both ways (``numpy.savez``/``numpy.load``).

Request (``Content-Type: application/octet-stream``), an .npz holding:
    ``img0``, ``img1``   the two frames: uint8 [H,W,3] RGB arrays, or uint8 [N] arrays holding a PNG or JPEG file
                         (e.g. ``np.frombuffer(open("a.png", "rb").read(), np.uint8)``).
    ``timesteps``        float [T], each strictly inside (0, 1).
    ``ds_scale``         optional, one float in (0, 1]: the processing scale of this pair (default: the service's).
Response 200, an .npz holding:
    ``frames``           uint8 [T,H,W,3] RGB, one frame per timestep, in order.
Any other answer is JSON ``{"error": "..."}``: 400 for a malformed request, 408 for a body that did not arrive in
time, 413 for one over a limit (bytes, pixels, the memory budget), 404/405 for a wrong path or method, 500 for a
failure of the service.

``encode_request`` and ``decode_response`` are the client side; no pickles are ever loaded.
"""

from __future__ import annotations

import io
import math
import zipfile
from typing import NamedTuple, Optional

import numpy as np

from ..core.checks import check_ds
from ..core.errors import InputError
from ..runtime.frames import check_timesteps
from .options import ServeOptions

__all__ = [
    "BadRequest",
    "TooLarge",
    "TooSlow",
    "Pair",
    "encode_request",
    "decode_request",
    "encode_response",
    "decode_response",
]

# what an image file starts with: only these formats reach a decoder
IMAGE_MAGIC = {"PNG": b"\x89PNG\r\n\x1a\n", "JPEG": b"\xff\xd8\xff"}


class BadRequest(InputError):
    """A request the service refuses: answered with ``status`` and a JSON error."""

    status = 400


class TooLarge(BadRequest):
    status = 413


class TooSlow(BadRequest):
    """A body that did not arrive in time."""

    status = 408


class Pair(NamedTuple):
    """A decoded request: frames uint8 [H,W,3] of one size, checked timesteps, and its ds_scale (None: the
    service's)."""

    img0: np.ndarray
    img1: np.ndarray
    timesteps: list
    ds_scale: Optional[float]


def encode_request(img0, img1, timesteps, ds_scale: Optional[float] = None) -> bytes:
    """The body of ``POST /interpolate`` for two frames (uint8 [H,W,3] arrays, or PNG/JPEG file bytes)."""
    arrays = dict(
        img0=_frame_array(img0),
        img1=_frame_array(img1),
        timesteps=np.asarray(timesteps, dtype=np.float32).reshape(-1),
    )
    if ds_scale is not None:
        arrays["ds_scale"] = np.float64(ds_scale)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _frame_array(img) -> np.ndarray:
    if isinstance(img, (bytes, bytearray, memoryview)):
        return np.frombuffer(img, dtype=np.uint8)
    return np.ascontiguousarray(img)


def decode_response(body: bytes) -> np.ndarray:
    """The frames, uint8 [T,H,W,3], of a 200 answer."""
    with np.load(io.BytesIO(body), allow_pickle=False) as archive:
        return archive["frames"]


def encode_response(frames: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, frames=frames)
    return buf.getvalue()


def decode_request(body: bytes, options: ServeOptions) -> Pair:
    """The ``Pair`` of a request body, within ``options``' limits.

    Raises ``BadRequest`` for anything malformed and ``TooLarge`` when the body, what it unpacks to, or a frame
    is over a limit. Sizes are checked before anything is unpacked or allocated: the archive's declared sizes
    before reading it, each array's header against the bytes it holds, each image file's header before decoding.
    """
    if len(body) > options.max_bytes:
        raise TooLarge(f"the request is {len(body)} bytes; the limit is {options.max_bytes} (max_bytes)")
    if body.startswith(np.lib.format.MAGIC_PREFIX):
        raise BadRequest("the body is a single .npy array; send an .npz with img0, img1 and timesteps")
    try:
        archive = zipfile.ZipFile(io.BytesIO(body))
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as e:
        raise BadRequest(f"the body is not an .npz archive ({e})") from None
    with archive:
        members = {_array_name(info.filename): info for info in archive.infolist()}
        missing = {"img0", "img1", "timesteps"} - set(members)
        if missing:
            raise BadRequest(f"the archive lacks {', '.join(sorted(missing))}")
        unpacked = sum(info.file_size for info in archive.infolist())
        if unpacked > options.max_bytes:
            raise TooLarge(f"the archive unpacks to {unpacked} bytes; the limit is {options.max_bytes} (max_bytes)")
        names = ("img0", "img1", "timesteps", "ds_scale")
        arrays = {name: _read_array(archive, members[name], name) for name in names if name in members}
    img0 = _frame(arrays["img0"], "img0", options)
    img1 = _frame(arrays["img1"], "img1", options)
    if img0.shape != img1.shape:
        raise BadRequest(
            f"img0 is {img0.shape[1]}x{img0.shape[0]} and img1 is {img1.shape[1]}x{img1.shape[0]} "
            "(WxH): the frames of a pair must have one size"
        )
    timesteps = _timesteps(arrays["timesteps"], options.max_timesteps)
    return Pair(img0, img1, timesteps, _ds_scale(arrays.get("ds_scale")))


def _array_name(filename: str) -> str:
    """An archive member's array name, as ``numpy.load`` names it (``img0.npy`` -> ``img0``)."""
    return filename[: -len(".npy")] if filename.endswith(".npy") else filename


def _read_array(archive: zipfile.ZipFile, info: zipfile.ZipInfo, name: str) -> np.ndarray:
    """One array of the archive. Its header's shape is checked against the bytes the member holds before numpy
    allocates it: a header may declare terabytes over a few bytes of data."""
    try:
        data = archive.read(info)  # its size is declared, checked against the limit, and enforced by zipfile
        fp = io.BytesIO(data)
        version = np.lib.format.read_magic(fp)
        if version not in ((1, 0), (2, 0)):
            raise ValueError(f".npy format version {version[0]}.{version[1]}: send what numpy.savez writes")
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _, dtype = read_header(fp)
        declared = math.prod(shape) * dtype.itemsize
        held = len(data) - fp.tell()
        if declared > held:
            raise ValueError(f"its header declares shape {shape} of {dtype} ({declared} bytes) over {held} bytes")
        fp.seek(0)
        return np.lib.format.read_array(fp, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, NotImplementedError, RuntimeError) as e:
        # RuntimeError: an encrypted member; NotImplementedError: a compression zipfile lacks
        raise BadRequest(f"{name} is not a readable array ({e})") from None


def _frame(arr: np.ndarray, name: str, options: ServeOptions) -> np.ndarray:
    if arr.dtype != np.uint8:
        raise BadRequest(f"{name} must be uint8 (an [H,W,3] RGB array or a PNG/JPEG file), got {arr.dtype}")
    if arr.ndim == 1:
        return _decode_image(arr, name, options)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise BadRequest(f"{name} must be [H,W,3] RGB, got shape {arr.shape}")
    _check_pixels(name, arr.shape[1], arr.shape[0], options.max_pixels)
    return arr


def _check_pixels(name: str, width: int, height: int, limit: int) -> None:
    if width * height > limit:
        raise TooLarge(f"{name} is {width}x{height} = {width * height} pixels; the limit is {limit} (max_pixels)")


def _decode_image(data: np.ndarray, name: str, options: ServeOptions) -> np.ndarray:
    """A PNG or JPEG file (told by its first bytes; no other decoder is ever reached) as uint8 [H,W,3]; its size
    is read from its header and checked before the pixels are decoded."""
    from PIL import Image

    head = data[:8].tobytes()
    formats = [fmt for fmt, magic in IMAGE_MAGIC.items() if head.startswith(magic)]
    if not formats:
        raise BadRequest(f"{name} is neither an [H,W,3] array nor a PNG or JPEG file")
    try:
        with Image.open(io.BytesIO(data.tobytes()), formats=formats) as im:
            w, h = im.size
            _check_pixels(name, w, h, options.max_pixels)
            decoded = w * h * 3
            if decoded > options.max_bytes:
                limit = options.max_bytes
                raise TooLarge(f"{name} is {w}x{h}: {decoded} bytes decoded; the limit is {limit} (max_bytes)")
            return np.array(im.convert("RGB"))  # a copy: writable, as the model's input conversion expects
    except BadRequest:
        raise
    except Image.DecompressionBombError as e:  # PIL's own size limit, before it decodes
        raise TooLarge(f"{name} is too large to decode ({e})") from None
    except Exception as e:  # a damaged file: PIL's decoders raise many kinds (OSError, SyntaxError, struct.error)
        raise BadRequest(f"{name} is not a readable {' or '.join(formats)} file ({e})") from None


def _timesteps(arr: np.ndarray, max_timesteps: int) -> list:
    if arr.dtype.kind not in "fiu" or arr.ndim > 1 or arr.size == 0:
        raise BadRequest(f"timesteps must be a 1-D array of numbers, got {arr.dtype} of shape {arr.shape}")
    if arr.size > max_timesteps:
        raise BadRequest(f"{arr.size} timesteps; at most {max_timesteps} per request (max_timesteps)")
    try:
        return check_timesteps(arr.astype(np.float64).reshape(-1).tolist())
    except InputError as e:
        raise BadRequest(str(e)) from None


def _ds_scale(arr: Optional[np.ndarray]) -> Optional[float]:
    if arr is None:
        return None
    if arr.dtype.kind not in "fiu" or arr.size != 1:
        raise BadRequest(f"ds_scale must be one number, got {arr.dtype} of shape {arr.shape}")
    try:
        return check_ds(arr.reshape(-1)[0].item())
    except InputError as e:
        raise BadRequest(str(e)) from None
