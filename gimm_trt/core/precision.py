"""The precisions the model computes in, and the dtype autocast runs each reduced one in."""

from .errors import InputError

__all__ = ["PRECISIONS", "autocast_dtype"]

PRECISIONS = ("fp32", "fp16", "bf16")


def autocast_dtype(precision: str):
    """The ``torch.dtype`` autocast computes ``precision`` in, None for ``"fp32"`` (autocast off).

    InputError for any other name: an unknown precision is never run, nor estimated, as fp32.
    """
    import torch  # core stays importable without torch

    dtypes = {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}
    if precision not in dtypes:
        raise InputError(f"unknown precision {precision!r}: choose one of {', '.join(PRECISIONS)}")
    return dtypes[precision]
