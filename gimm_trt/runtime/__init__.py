"""Runtime: the ``Interpolator`` and its backends."""
from .interpolator import Interpolator

__all__ = ["Interpolator"]
