"""Runtime: the ``Interpolator``, the backend contract and the backends' options."""

from .backend import BACKENDS, PRECISIONS, Backend, OrtOptions, TrtOptions
from .interpolator import Interpolator

__all__ = ["Interpolator", "Backend", "OrtOptions", "TrtOptions", "BACKENDS", "PRECISIONS"]
