"""Runtime: the ``Interpolator``, the backend contract, the registered backends and their options."""

from ..model.spec import ModelSpec
from .backend import Backend
from .interpolator import Interpolator
from .ort_backend import OrtOptions
from .registry import BACKENDS, PRECISIONS, REGISTRY
from .rtx_backend import RtxOptions
from .trt_backend import TrtOptions

__all__ = [
    "Interpolator",
    "ModelSpec",
    "Backend",
    "OrtOptions",
    "TrtOptions",
    "RtxOptions",
    "BACKENDS",
    "PRECISIONS",
    "REGISTRY",
]
