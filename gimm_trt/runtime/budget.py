"""A memory budget: the timesteps per batch and synthesis tile that keep one pair under it, from the memory model."""

from __future__ import annotations

import threading
from typing import Optional

import torch

from ..core.errors import InputError

__all__ = ["Budget", "TILES"]

TILES = (None, 512, 256, 128)  # untiled first: tiles recompute their halos


def _gib(n: int) -> str:
    return f"{n / 2**30:.2f} GiB"


class Budget:
    """Plans pairs of one model under ``limit`` bytes (None: the device's free memory on CUDA; on a CPU, one
    timestep per batch, the reference's own peak). ``plan(height, width, ds, timesteps) -> (batch, tile)``
    for padded frames, remembered per size; ``tiles=False`` for backends that cannot tile (exports). Safe to call
    from several threads (a service checks requests while it runs others)."""

    def __init__(
        self, arch: str, *, precision: str, device: torch.device, limit: Optional[int] = None, tiles: bool = True
    ):
        self.arch = arch
        self.precision = precision
        self.device = device
        self.limit = limit
        self.tiles = TILES if tiles else (None,)
        self._plans = {}
        self._peaks = {}
        self._fake = None
        self._searching = threading.Lock()  # one search at a time: they share the fake model

    def plan(self, height: int, width: int, ds: float, timesteps: int) -> tuple:
        key = (height, width, ds, timesteps)
        plan = self._plans.get(key)  # a size planned before does not wait behind a search for another
        if plan is None:
            with self._searching:
                plan = self._plans.get(key)
                if plan is None:
                    plan = self._plans[key] = self._search(height, width, ds, timesteps)
        return plan

    def peak(self, height: int, width: int, ds: float, batch: int, tile: Optional[int]) -> int:
        """Predicted peak bytes of one pair with ``batch`` timesteps per synthesis call."""
        key = (height, width, ds, batch, tile)
        if key not in self._peaks:
            self._peaks[key] = self._estimate(*key)
        return self._peaks[key]

    def _estimate(self, height: int, width: int, ds: float, batch: int, tile: Optional[int]) -> int:
        from torch._subclasses.fake_tensor import FakeTensorMode

        from ..model.memory import estimate, fake_model

        if self._fake is None:
            mode = FakeTensorMode()
            self._fake = mode, fake_model(self.arch, mode)
        mode, model = self._fake
        return estimate(
            self.arch,
            height,
            width,
            ds,
            precision=self.precision,
            timesteps=batch,
            tile=tile,
            device=self.device.type,
            model=model,
            fake_mode=mode,
        ).total

    def _limit(self) -> Optional[int]:
        if self.limit is not None:
            return self.limit
        if self.device.type == "cuda":
            free, _ = torch.cuda.mem_get_info(self.device)
            return free + torch.cuda.memory_allocated(self.device)  # what this process holds is ours to reuse
        return None

    def _search(self, height: int, width: int, ds: float, timesteps: int) -> tuple:
        """The largest tile, then the largest batch under the limit, in few estimates (each one runs the model on
        fake tensors): the smallest plan first (a budget nothing fits fails at once), then each tile at batch 1
        from the largest, then the batch from the line through batches 1 and 2, checked, stepped down if over."""
        limit = self._limit()
        if limit is None:  # a CPU without a budget: batching costs memory and gains no speed there
            return 1, None
        smallest = self.peak(height, width, ds, 1, self.tiles[-1])
        if smallest > limit:
            raise InputError(
                f"frames of {width}x{height} at ds_scale={ds} need at least {_gib(smallest)} "
                f"(one timestep per batch{', tiles of ' + str(self.tiles[-1]) if self.tiles[-1] else ''}); "
                f"the memory budget is {_gib(limit)}: raise max_memory, or use a smaller ds_scale"
            )
        for tile in self.tiles:  # the smallest fits: so does some tile
            one = self.peak(height, width, ds, 1, tile)
            if one <= limit:
                break
        if timesteps == 1:
            return 1, tile
        per_step = max(self.peak(height, width, ds, 2, tile) - one, 1)  # peaks grow by about this per timestep
        batch = max(1, min(timesteps, 1 + (limit - one) // per_step))
        while batch > 1:
            peak = self.peak(height, width, ds, batch, tile)
            if peak <= limit:
                break
            # down along the line through (1, one) and (batch, peak): steeper than the first guess
            batch = max(1, min(batch - 1, 1 + (batch - 1) * (limit - one) // (peak - one)))
        return batch, tile
