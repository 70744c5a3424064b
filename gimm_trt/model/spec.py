"""``ModelSpec``: which GIMM-VFI model, which weights, and how it runs, as one frozen value.

It is built once where a request enters (the command line's model option group, a caller of the API) and passed
whole: ``Interpolator.from_spec`` runs it, ``ExportOptions`` exports its model, the Ray workers and the service
build their interpolators from it, and the benchmark's rows start from it. A model-level option is therefore a
field here and nowhere else.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Any, Optional

from ..core.checks import check_count, check_device, check_ds, check_max_batch, parse_bytes
from ..core.errors import InputError
from .checkpoint import Weights

__all__ = ["ModelSpec"]


@dataclass(frozen=True, kw_only=True)
class ModelSpec:
    """What model to run and how. Invalid values raise ``InputError`` naming the field.

    Args:
        variant: ``"R"``, ``"R-P"``, ``"F"`` or ``"F-P"``; a checkpoint must match it, and so must an export (its
            manifest records the variant it was made from). None: ``"R-P"``, or an export's own.
        checkpoint: a GIMM file (official ``.pt``/``.safetensors`` or ComfyUI-GIMM-VFI's), or a folder where the
            variant's file is picked by name; None: the official file name in ``$GIMM_TRT_CHECKPOINTS`` or
            ``./pretrained_ckpt``.
        flow_checkpoint: the flow estimator file of a split pair (None: one beside the GIMM file, by name).
        random_weights: seeded synthetic weights instead of a checkpoint (the frames are not meaningful).
        seed: the seed of ``random_weights``.
        backend: a name of ``gimm_trt.runtime.registry.BACKENDS`` (``"torch"``, ``"onnxruntime"``, ...).
        precision: ``"fp32"``, ``"fp16"`` or ``"bf16"``, as the backend offers on the device.
        device: ``"cpu"``, ``"cuda"`` or ``"cuda:N"``; None: CUDA when available, else the CPU.
        ds_scale: the processing scale (None: 1.0, or an export's own).
        max_memory: bytes one pair may use (an int, or a size such as ``"6GiB"``, kept as bytes): the runtime
            picks timesteps per batch and tiles to stay under it. None: see ``Interpolator.from_spec``.
        max_batch: timesteps per batch, the caller's cap over any budget (None: planned).
        export: a ``gimm-export`` directory to run instead of exporting the checkpoint (exported backends).
        options: the backend's options object (``OrtOptions``, ``TrtOptions``, ...; None: its defaults).
    """

    variant: Optional[str] = None
    checkpoint: Optional[str] = None
    flow_checkpoint: Optional[str] = None
    random_weights: bool = False
    seed: int = 0
    backend: str = "torch"
    precision: str = "fp32"
    device: Optional[str] = None
    ds_scale: Optional[float] = None
    max_memory: Optional[int] = None
    max_batch: Optional[int] = None
    export: Optional[str] = None
    options: Any = None

    def __post_init__(self):
        set_ = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731 (normalising a frozen value)
        if self.variant is None and self.export is None:
            set_("variant", Weights.DEFAULT.value.variant)
        if self.variant is not None:
            set_("variant", Weights.verify(self.variant).value.variant)
        for name in ("checkpoint", "flow_checkpoint", "export"):
            value = getattr(self, name)
            if value is not None:
                set_(name, os.fspath(value))
        if (self.checkpoint is not None or self.flow_checkpoint is not None) and self.random_weights:
            raise InputError("pass either a checkpoint or random weights, not both")
        if self.export is not None and (self.checkpoint is not None or self.flow_checkpoint is not None):
            raise InputError("pass either an export or a checkpoint: an export holds its own weights")
        check_count("seed", self.seed, 0)
        for name in ("backend", "precision"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise InputError(f"{name} must be a name such as {ModelSpec.__dataclass_fields__[name].default!r}")
        set_("device", check_device(self.device))  # its name, here; whether it is present, where the model runs
        set_("ds_scale", check_ds(self.ds_scale))
        set_("max_memory", None if self.max_memory is None else parse_bytes(self.max_memory))
        set_("max_batch", check_max_batch(self.max_batch))

    @property
    def weights(self) -> Weights:
        """The released checkpoint this variant is (an export's spec without a variant: its manifest says it)."""
        if self.variant is None:
            raise InputError(f"the variant of the export {self.export} is the one its manifest records")
        return Weights.verify(self.variant)

    def replace(self, **changes) -> ModelSpec:
        """A copy with ``changes`` (checked like a new spec)."""
        return dataclasses.replace(self, **changes)
