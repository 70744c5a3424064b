"""Options of the service, importable without Ray."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ServeOptions"]


@dataclass(frozen=True)
class ServeOptions:
    """Limits and batching of a replica (what model runs, at which scale, is the ``WorkerSpec``'s ``ModelSpec``).

    Attributes:
        max_bytes: largest request body, and largest size it may unpack to (413 beyond).
        max_timesteps: most timesteps in one request.
        max_batch_size: most requests run as one batch.
        batch_wait_s: how long a batch waits for more requests once its first one is in.
    """

    max_bytes: int = 64 << 20
    max_timesteps: int = 64
    max_batch_size: int = 8
    batch_wait_s: float = 0.02
