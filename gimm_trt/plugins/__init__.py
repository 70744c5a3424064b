"""The forward-splatting op (softmax splatting family) and its implementations.

``splat(x, flow, metric, mode, impl)`` is the Python entry. It is ``normalise(accumulate(...))``:

* ``accumulate`` splats ``x`` (weighted by the metric in the ``*-zeroeps`` modes) and the weight itself as one
  more channel, summing in fp32. Kernels: ``torch`` reference, ``triton`` (the CUDA default; it fuses the
  weighting), ``cupy``; a kernel module provides ``splat_sum(x, flow)`` and optionally the fused
  ``accumulate(x, flow, metric, mode)``.
* ``normalise`` turns a normaliser that is exactly 0 into 1 and divides. It stays ordinary tensor code, so it
  becomes ordinary graph ops in ONNX.

While a model is being exported, ``splat`` emits the form chosen with
``gimm_trt.plugins.onnx_node.export_splat_mode("plugin" | "portable")`` (see that module).
"""

from . import schema
from .ops import IMPLS, accumulate, available_impls, normalise, splat, weighted_input

__all__ = ["IMPLS", "splat", "accumulate", "normalise", "weighted_input", "available_impls", "schema"]
