"""A model of peak memory: the three stages run on fake tensors (shapes only, no compute) while a dispatch-level
tracker adds up the bytes of the tensor storages alive after every operator.

Nothing is computed and nothing is allocated, so a CPU-only machine plans a GPU run in seconds. The fake tensors
live on the CPU whatever device is modelled (a CPU-only PyTorch cannot fake every CUDA operator, nor enable CUDA
autocast): reduced precision is modelled with CPU autocast, whose fp16 casts cover the same convolutions and
matmuls, and the CUDA caching allocator's rounding of every block to 512 bytes is applied to each storage.
Kernel workspaces (cuDNN, oneDNN) are not tensors and are not counted.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Optional

import torch
from torch.multiprocessing.reductions import StorageWeakRef
from torch.utils._python_dispatch import TorchDispatchMode

from ..core.precision import autocast_dtype

__all__ = ["LiveBytes", "Estimate", "estimate", "fake_model", "run_pair", "CUDA_BLOCK"]

CUDA_BLOCK = 512  # the CUDA caching allocator rounds every allocation up to a multiple of 512 bytes


class LiveBytes(TorchDispatchMode):
    """Bytes of tensor storage alive, sampled after every operator; ``peak`` is the largest sample.

    A storage counts from the operator that returned it until its last reference goes (weak references,
    so views share their base's bytes once). ``block`` rounds each storage up, as a caching allocator does.
    ``mark(label)`` starts a new section: ``peaks[label]`` is the largest sample within it.
    """

    def __init__(self, block: int = 1):
        super().__init__()
        self.block = block
        self._live = {}  # storage cdata -> (weak ref, bytes)
        self.fixed = 0  # bytes that stay alive throughout (weights): never checked again
        self.now = 0
        self.peak = 0
        self.peaks = {}
        self._label = None

    def hold(self, tensors) -> None:
        """Count tensors alive for the whole run (the weights), once each."""
        seen = set()
        for t in tensors:
            storage = t.untyped_storage()
            key = StorageWeakRef(storage).cdata
            if key not in seen:
                seen.add(key)
                size = self._rounded(storage.nbytes())
                self.fixed += size
                self.now += size

    def _rounded(self, nbytes: int) -> int:
        return -(-nbytes // self.block) * self.block

    def add(self, t: torch.Tensor) -> None:
        """Count ``t``'s storage from now until it is freed."""
        if not isinstance(t, torch.Tensor) or t.is_sparse:
            return
        storage = t.untyped_storage()
        ref = StorageWeakRef(storage)
        if ref.cdata in self._live:
            return
        size = self._rounded(storage.nbytes())
        self._live[ref.cdata] = (ref, size)
        self.now += size

    def mark(self, label: str) -> None:
        self._label = label
        self.peaks[label] = self._sample()

    def _sample(self) -> int:
        for key, (ref, size) in list(self._live.items()):
            if ref.expired():
                del self._live[key]
                self.now -= size
        self.peak = max(self.peak, self.now)
        if self._label is not None:
            self.peaks[self._label] = max(self.peaks.get(self._label, 0), self.now)
        return self.now

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func is torch.ops.aten.grid_sampler_2d.default:
            # the kernel allocates its output only; fake mode would trace its ~100-operator decomposition
            x, grid = args[0], args[1]
            out = torch.empty(x.shape[0], x.shape[1], grid.shape[1], grid.shape[2], dtype=x.dtype, device=x.device)
        else:
            out = func(*args, **(kwargs or {}))
        for t in torch.utils._pytree.tree_leaves(out):
            self.add(t)
        self._sample()  # the inputs are still referenced here: an operator's inputs and outputs coexist
        return out


def fake_model(arch: str, fake_mode, **kwargs) -> torch.nn.Module:
    """A ``GIMMVFI`` of ``arch`` whose parameters and buffers are fake: built on the meta device, no weights read."""
    from .checkpoint import build_model

    with torch.device("meta"):
        model = build_model(arch, **kwargs)
    with fake_mode:
        for module in model.modules():
            for table in (module._parameters, module._buffers):
                for name, p in table.items():
                    if p is None:
                        continue
                    fake = torch.empty_strided(p.shape, p.stride(), dtype=p.dtype, device="cpu")
                    table[name] = torch.nn.Parameter(fake, requires_grad=False) if table is module._parameters else fake
    return model.eval().requires_grad_(False)


@dataclass(frozen=True)
class Estimate:
    """Predicted peak bytes: ``total`` over the whole pair; ``stages`` per stage (everything alive then,
    weights and the pair's flow outputs included); ``weights`` the parameters alone."""

    total: int
    stages: dict
    weights: int


def estimate(
    variant_arch: str,
    height: int,
    width: int,
    ds: float,
    *,
    precision: str = "fp32",
    timesteps: int = 1,
    tile: Optional[int] = None,
    device: str = "cpu",
    model: Optional[torch.nn.Module] = None,
    fake_mode=None,
) -> Estimate:
    """Peak memory of one frame pair of padded size ``height`` x ``width`` with ``timesteps`` in one batch.

    Runs what the torch backend runs for a pair (flow, motion, synthesis; ``tile``: the motion and synthesis tile, see
    ``Synthesis.forward``) on fake tensors. ``variant_arch``: ``"r"`` or ``"f"``. ``device="cuda"`` rounds each
    storage to the allocator's 512-byte blocks. Pass ``model``/``fake_mode`` from ``fake_model`` to reuse one.
    """
    from torch._subclasses.fake_tensor import FakeTensorMode

    if fake_mode is None:
        fake_mode = FakeTensorMode()
    if model is None:
        model = fake_model(variant_arch, fake_mode)
    tracker = LiveBytes(CUDA_BLOCK if str(device).startswith("cuda") else 1)
    with fake_mode:
        run_pair(model, tracker, height, width, ds, timesteps=timesteps, tile=tile, precision=precision, distinct=True)
    return Estimate(total=tracker.peak, stages=dict(tracker.peaks), weights=tracker.fixed)


def run_pair(
    model,
    tracker: LiveBytes,
    height: int,
    width: int,
    ds: float,
    *,
    timesteps: int = 1,
    tile: Optional[int] = None,
    precision: str = "fp32",
    distinct: bool = False,
) -> None:
    """What the torch backend runs for one pair (inputs made empty here), with ``tracker`` counting.

    Under a ``FakeTensorMode`` nothing is computed; with a real model it computes on uninitialised frames.
    ``distinct``: with ``tile``, one synthesis window of each kind (the same peak, far fewer operators).
    """
    dtype = autocast_dtype(precision)
    cast = torch.autocast("cpu", dtype=dtype) if dtype is not None else contextlib.nullcontext()
    with torch.inference_mode(), cast:
        tracker.hold(list(model.parameters()) + list(model.buffers()))
        with tracker:
            x0 = torch.zeros(1, 3, height, width)
            x1 = torch.zeros(1, 3, height, width)
            t = torch.linspace(0.1, 0.9, timesteps)
            tracker.mark("flow")
            feats = model.flow(x0, x1, ds)
            tracker.mark("motion")
            flowt = model.motion(feats[0], feats[1], t, tile=tile)
            tracker.mark("synthesis")
            out = model.synthesis(x0, x1, *feats[2:], flowt, t, ds, tile=tile, distinct=distinct)
            del flowt, out
            tracker._sample()
