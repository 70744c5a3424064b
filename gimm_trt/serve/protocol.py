"""The wire format of ``POST /interpolate``: NumPy ``.npz`` archives both ways (``numpy.savez``/``numpy.load``).

Request (``Content-Type: application/octet-stream``), an .npz holding:
    ``img0``, ``img1``   the two frames: uint8 [H,W,3] RGB arrays, or uint8 [N] arrays holding an encoded image
                         file (PNG, JPEG, WebP: e.g. ``np.frombuffer(open("a.png", "rb").read(), np.uint8)``).
    ``timesteps``        float [T], each strictly inside (0, 1).
Response 200, an .npz holding:
    ``frames``           uint8 [T,H,W,3] RGB, one frame per timestep, in order.
Any other answer is JSON ``{"error": "..."}``: 400 for a malformed request, 413 for one over the size limit,
404/405 for a wrong path or method, 500 for a failure of the service.

``encode_request`` and ``decode_response`` are the client side; no pickles are ever loaded.
"""

from __future__ import annotations

import io
import zipfile

import numpy as np

from ..core.errors import InputError
from ..runtime.frames import check_timesteps

__all__ = ["BadRequest", "TooLarge", "encode_request", "decode_request", "encode_response", "decode_response"]


class BadRequest(InputError):
    """A request the service refuses: answered with ``status`` and a JSON error."""

    status = 400


class TooLarge(BadRequest):
    status = 413


def encode_request(img0, img1, timesteps) -> bytes:
    """The body of ``POST /interpolate`` for two frames (uint8 [H,W,3] arrays, or encoded image bytes)."""
    buf = io.BytesIO()
    np.savez(
        buf,
        img0=_frame_array(img0),
        img1=_frame_array(img1),
        timesteps=np.asarray(timesteps, dtype=np.float32).reshape(-1),
    )
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


def decode_request(body: bytes, *, max_bytes: int, max_timesteps: int) -> tuple:
    """(img0, img1, timesteps) of a request body: frames as uint8 [H,W,3] of one size, timesteps a list.

    Raises ``BadRequest`` for anything malformed and ``TooLarge`` when the body, or what it unpacks to, is
    over ``max_bytes`` (checked before unpacking: a small compressed archive cannot unpack to gigabytes).
    """
    if len(body) > max_bytes:
        raise TooLarge(f"the request is {len(body)} bytes; the limit is {max_bytes}")
    try:
        archive = np.load(io.BytesIO(body), allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
        raise BadRequest(f"the body is not an .npz archive ({e})") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise BadRequest("the body is a single .npy array; send an .npz with img0, img1 and timesteps")
    with archive:
        missing = {"img0", "img1", "timesteps"} - set(archive.files)
        if missing:
            raise BadRequest(f"the archive lacks {', '.join(sorted(missing))}")
        unpacked = sum(info.file_size for info in archive.zip.infolist())
        if unpacked > max_bytes:
            raise TooLarge(f"the archive unpacks to {unpacked} bytes; the limit is {max_bytes}")
        try:
            arrays = {name: archive[name] for name in ("img0", "img1", "timesteps")}
        except (ValueError, OSError, zipfile.BadZipFile) as e:
            raise BadRequest(f"the archive is damaged ({e})") from None
    img0 = _frame(arrays["img0"], "img0", max_bytes)
    img1 = _frame(arrays["img1"], "img1", max_bytes)
    if img0.shape != img1.shape:
        raise BadRequest(
            f"img0 is {img0.shape[1]}x{img0.shape[0]} and img1 is {img1.shape[1]}x{img1.shape[0]} "
            "(WxH): the frames of a pair must have one size"
        )
    return img0, img1, _timesteps(arrays["timesteps"], max_timesteps)


def _frame(arr: np.ndarray, name: str, max_bytes: int) -> np.ndarray:
    if arr.dtype != np.uint8:
        raise BadRequest(f"{name} must be uint8 (an [H,W,3] RGB array or an encoded image), got {arr.dtype}")
    if arr.ndim == 1:
        return _decode_image(arr, name, max_bytes)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise BadRequest(f"{name} must be [H,W,3] RGB, got shape {arr.shape}")
    return arr


def _decode_image(data: np.ndarray, name: str, max_bytes: int) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data.tobytes())) as im:
            w, h = im.size
            if w * h * 3 > max_bytes:  # read from the header, before the pixels are decoded
                raise TooLarge(f"{name} is {w}x{h}: {w * h * 3} bytes decoded; the limit is {max_bytes}")
            return np.array(im.convert("RGB"))  # a copy: writable, as the model's input conversion expects
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise BadRequest(f"{name} is neither an [H,W,3] array nor an image file PIL can read ({e})") from None


def _timesteps(arr: np.ndarray, max_timesteps: int) -> list:
    if arr.dtype.kind not in "fiu" or arr.ndim > 1 or arr.size == 0:
        raise BadRequest(f"timesteps must be a 1-D array of numbers, got {arr.dtype} of shape {arr.shape}")
    if arr.size > max_timesteps:
        raise BadRequest(f"{arr.size} timesteps; at most {max_timesteps} per request")
    try:
        return check_timesteps(arr.astype(np.float64).reshape(-1).tolist())
    except InputError as e:
        raise BadRequest(str(e)) from None
