"""The forward-splatting op (softmax splatting family) and its implementations.

``splat(x, flow, metric, mode, impl)`` is the Python entry. The summation kernel has several
implementations (``torch`` reference, ``triton``, ``cupy``); the mode logic around it (metric weighting,
normaliser channel, zero-normaliser rule) is shared here so every kernel computes the same function.
"""
import torch

from . import schema
from .reference import splat_sum as _torch_sum

__all__ = ["splat", "available_impls", "schema"]

IMPLS = ("auto", "torch", "triton", "cupy")


def _sum_kernel(impl: str, x: torch.Tensor):
    if impl == "auto":
        impl = "triton" if x.is_cuda and _has("triton") else "torch"
    if impl == "torch":
        return _torch_sum
    if impl == "triton":
        from .triton_kernel import splat_sum

        return splat_sum
    if impl == "cupy":
        from .cupy_kernel import splat_sum

        return splat_sum
    raise ValueError(f"splat impl must be one of {IMPLS}, got {impl!r}")


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def available_impls() -> tuple:
    """The implementations usable in this environment (``torch`` always)."""
    found = ["torch"]
    if _has("triton"):
        found.append("triton")
    if _has("cupy") and torch.cuda.is_available():
        found.append("cupy")
    return tuple(found)


def splat(x, flow, metric=None, mode: str = schema.DEFAULT_MODE, impl: str = "auto") -> torch.Tensor:
    """Forward (summation) splatting with an optional importance metric.

    Args:
        x: [N,C,H,W] float32/float16, values to splat.
        flow: [N,2,H,W], displacement in pixels (x then y).
        metric: [N,1,H,W] importance weight; required by the ``*-zeroeps`` modes, ignored by ``sum``.
        mode: ``"sum"`` plain summation; ``"linear-zeroeps"`` splats ``x * metric`` and ``metric`` and
            divides, a normaliser that is exactly 0 becoming 1; ``"softmax-zeroeps"`` the same with
            ``exp(metric)``.
        impl: ``"auto"`` (Triton on CUDA when installed, else torch), ``"torch"``, ``"triton"``, ``"cupy"``.

    Returns:
        [N,C,H,W] float32.
    """
    schema.check_mode(mode)
    if x.dim() != 4 or flow.dim() != 4 or flow.shape[1] != 2 or flow.shape[0] != x.shape[0] \
            or flow.shape[2:] != x.shape[2:]:
        raise ValueError(f"splat expects x [N,C,H,W] and flow [N,2,H,W]; got {tuple(x.shape)} and {tuple(flow.shape)}")
    kernel = _sum_kernel(impl, x)
    if mode == "sum":
        return kernel(x, flow)
    if metric is None or metric.shape != (x.shape[0], 1) + tuple(x.shape[2:]):
        raise ValueError(f"splat mode {mode!r} needs metric [N,1,H,W]; got {None if metric is None else tuple(metric.shape)}")
    weight = metric.float().exp() if mode == "softmax-zeroeps" else metric.float()
    out = kernel(torch.cat([x.float() * weight, weight], 1), flow)
    norm = out[:, -1:]
    norm = torch.where(norm == 0.0, torch.ones_like(norm), norm)
    return out[:, :-1] / norm
