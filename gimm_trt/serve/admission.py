"""Admission: whether a decoded request fits the model and the service's memory budget, checked before the
model runs (importable without Ray)."""

from __future__ import annotations

from ..core.errors import GimmError
from ..core.sizes import padded_size
from .protocol import BadRequest, Pair, TooLarge

__all__ = ["Admission"]


class Admission:
    """Checks pairs for one ``Interpolator`` before they reach it; safe to call from several threads."""

    def __init__(self, interp):
        self.interp = interp

    def check(self, pair: Pair) -> float:
        """The processing scale ``pair`` runs at. ``BadRequest`` for a size or ds_scale the model (or its export)
        cannot run; ``TooLarge`` when no plan (timesteps per batch, tile) keeps the pair under the memory budget
        (``ModelSpec.max_memory``; without one, the free memory on CUDA and no limit on a CPU).

        The plan is the one the run then uses (the planner remembers it per size), so the estimate is made once,
        here, where it can refuse the pair before any of it runs. It takes seconds per new size: call this off
        the event loop.
        """
        interp = self.interp
        height, width = pair.img0.shape[:2]
        try:
            ds = interp.check_size(height, width, pair.ds_scale)
        except GimmError as e:
            raise BadRequest(str(e)) from None
        try:
            interp.memory_plan(*padded_size(height, width, ds), ds, len(pair.timesteps))
        except GimmError as e:  # nothing fits the budget
            raise TooLarge(str(e)) from None
        return ds
