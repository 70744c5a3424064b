"""Options of the service, importable without Ray."""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..core.checks import check_count, is_real
from ..core.errors import InputError

__all__ = ["ServeOptions"]

UHD_PIXELS = 3840 * 2160


@dataclass(frozen=True)
class ServeOptions:
    """Limits and batching of a replica (what model runs, at which scale, and its memory budget, is the
    ``WorkerSpec``'s ``ModelSpec``). Invalid values raise ``InputError`` naming the field.

    Attributes:
        max_bytes: largest request body, and largest size it may unpack to (413 beyond).
        max_pixels: largest frame, width x height (413 beyond; checked before an image file is decoded).
        max_timesteps: most timesteps in one request.
        max_batch_size: most requests run as one batch.
        batch_wait_s: how long a batch waits for more requests once its first one is in.
        body_timeout_s: how long a request may take to send its body once its headers are in (408 beyond): a
            client that stalls gives its work slot up.
        max_waiting: requests a replica holds beyond its ``2 * max_batch_size`` work slots, waiting for one
            (their bodies not yet read; more wait in Ray's proxy). ``GET /health`` takes no work slot: it is
            answered at once unless this many wait.
    """

    max_bytes: int = 64 << 20
    max_pixels: int = UHD_PIXELS
    max_timesteps: int = 64
    max_batch_size: int = 8
    batch_wait_s: float = 0.02
    body_timeout_s: float = 30.0
    max_waiting: int = 64

    def __post_init__(self):
        for name in ("max_bytes", "max_pixels", "max_timesteps", "max_batch_size"):
            check_count(name, getattr(self, name), 1)
        check_count("max_waiting", self.max_waiting, 0)
        _check_seconds("batch_wait_s", self.batch_wait_s, zero_ok=True)
        _check_seconds("body_timeout_s", self.body_timeout_s, zero_ok=False)  # no body could arrive in none

    @property
    def work_slots(self) -> int:
        """Requests a replica reads, checks, queues and runs at once: a full batch running, one gathering."""
        return 2 * self.max_batch_size


def _check_seconds(name: str, value, *, zero_ok: bool) -> None:
    if not is_real(value) or not math.isfinite(value) or value < 0 or (value == 0 and not zero_ok):
        raise InputError(f"{name} must be a number of seconds {'>= 0' if zero_ok else '> 0'}, got {value!r}")
