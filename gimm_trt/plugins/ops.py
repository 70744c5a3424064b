"""The splat op in PyTorch: ``splat = normalise(accumulate(...))`` and the kernel dispatch.

While a model is being exported, ``splat`` emits the form chosen with
``gimm_trt.plugins.onnx_node.export_splat_mode("plugin" | "portable")``, which installs the emitter in
``_export_state`` (so this module never imports the ONNX side).
"""

import torch

from ..core.deps import installed
from ..core.errors import InputError
from . import _export_state, schema
from .reference import splat_sum as _torch_sum

__all__ = ["IMPLS", "splat", "accumulate", "normalise", "weighted_input", "available_impls"]

IMPLS = ("auto", "torch", "triton", "cupy")


def _resolve(impl: str, x: torch.Tensor) -> str:
    if impl == "auto":
        return "triton" if x.is_cuda and installed("triton") else "torch"
    if impl not in IMPLS:
        raise InputError(f"splat impl must be one of {IMPLS}, got {impl!r}")
    return impl


def _kernel_module(impl: str):
    if impl == "triton":
        from . import triton_kernel

        return triton_kernel
    if impl == "cupy":
        from . import cupy_kernel

        return cupy_kernel
    return None


def available_impls() -> tuple:
    """The implementations usable in this environment (``torch`` always)."""
    found = ["torch"]
    if installed("triton"):
        found.append("triton")
    if installed("cupy") and torch.cuda.is_available():
        found.append("cupy")
    return tuple(found)


def _check(x, flow, metric, mode):
    schema.check_mode(mode)
    if (
        x.dim() != 4
        or flow.dim() != 4
        or flow.shape[1] != 2
        or flow.shape[0] != x.shape[0]
        or flow.shape[2:] != x.shape[2:]
    ):
        raise InputError(f"splat expects x [N,C,H,W] and flow [N,2,H,W]; got {tuple(x.shape)} and {tuple(flow.shape)}")
    if mode != "sum" and (metric is None or metric.shape != (x.shape[0], 1) + tuple(x.shape[2:])):
        raise InputError(
            f"splat mode {mode!r} needs metric [N,1,H,W]; got {None if metric is None else tuple(metric.shape)}"
        )


def weighted_input(x, metric, mode: str) -> torch.Tensor:
    """The tensor the sum kernel splats in ``mode``: ``x`` for "sum", else ``cat[x * w, w]`` float32."""
    if mode == "sum":
        return x
    weight = metric.float().exp() if mode == "softmax-zeroeps" else metric.float()
    return torch.cat([x.float() * weight, weight], 1)


def accumulate(x, flow, metric=None, mode: str = schema.DEFAULT_MODE, impl: str = "auto") -> torch.Tensor:
    """The op's accumulation (what the ONNX node and the TensorRT plugin compute).

    Args: as ``splat``.

    Returns:
        [N,C,H,W] float32 for ``"sum"``; [N,C+1,H,W] float32 for the ``*-zeroeps`` modes (``x * w`` then ``w``).
    """
    _check(x, flow, metric, mode)
    kernel = _kernel_module(_resolve(impl, x))
    if kernel is not None and hasattr(kernel, "accumulate"):
        return kernel.accumulate(x, flow, metric, mode)
    splat_sum = _torch_sum if kernel is None else kernel.splat_sum
    return splat_sum(weighted_input(x, metric, mode), flow)


def normalise(acc: torch.Tensor, mode: str) -> torch.Tensor:
    """``accumulate``'s output to ``splat``'s: ``acc[:, :-1] / norm``, a normaliser of exactly 0.0 becoming 1."""
    if schema.check_mode(mode) == "sum":
        return acc
    norm = acc[:, -1:]
    norm = torch.where(norm == 0.0, torch.ones_like(norm), norm)
    return acc[:, :-1] / norm


def splat(x, flow, metric=None, mode: str = schema.DEFAULT_MODE, impl: str = "auto") -> torch.Tensor:
    """Forward (summation) splatting with an optional importance metric.

    Args:
        x: [N,C,H,W] float32/float16, values to splat.
        flow: [N,2,H,W] float32/float16, displacement in pixels (x then y).
        metric: [N,1,H,W] importance weight; required by the ``*-zeroeps`` modes, ignored by ``sum``.
        mode: ``"sum"`` plain summation; ``"linear-zeroeps"`` splats ``x * metric`` and ``metric`` and
            divides, a normaliser that is exactly 0 becoming 1; ``"softmax-zeroeps"`` the same with
            ``exp(metric)``. All arithmetic in float32.
        impl: ``"auto"`` (Triton on CUDA when installed, else torch), ``"torch"``, ``"triton"``, ``"cupy"``.
            Ignored while exporting (``onnx_node.export_splat_mode`` decides).

    Returns:
        [N,C,H,W] float32.
    """
    _check(x, flow, metric, mode)
    if _export_state.emit is not None:
        return _export_state.emit(x, flow, metric, mode)
    if torch.compiler.is_exporting() or torch.onnx.is_in_onnx_export():
        raise RuntimeError(
            "gimm_trt.plugins.splat is being exported without a splat form: wrap the export in "
            "`with gimm_trt.plugins.onnx_node.export_splat_mode('plugin' | 'portable') as table:` "
            "and pass custom_translation_table=table"
        )
    return normalise(accumulate(x, flow, metric, mode, impl), mode)
