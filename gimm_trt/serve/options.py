"""Options of the service, importable without Ray."""

from __future__ import annotations

from dataclasses import dataclass

from ..core.checks import check_count
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
        for name in ("batch_wait_s", "body_timeout_s"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 <= value < float("inf"):
                raise InputError(f"{name} must be a number of seconds >= 0, got {value!r}")
        if self.body_timeout_s == 0:
            raise InputError("body_timeout_s must be > 0: no body could arrive")

    @property
    def work_slots(self) -> int:
        """Requests a replica reads, checks, queues and runs at once: a full batch running, one gathering."""
        return 2 * self.max_batch_size
