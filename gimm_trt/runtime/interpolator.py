"""``Interpolator``: the public entry point. Frames in, frames at any timesteps out, on any backend."""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Iterator, Sequence
from typing import Optional

import torch

from ..core.checks import check_ds, check_max_batch
from ..core.errors import InputError
from ..core.sizes import Padding, processing_size
from ..export.manifest import ExportInfo
from ..model.checkpoint import LICENSE_NOTE, checkpoint_files, load_model
from ..model.spec import ModelSpec
from .backend import Backend
from .budget import Budget
from .frames import check_factor, check_timesteps, to_tensor
from .registry import backend_class, check_spec


class Interpolator:
    """GIMM-VFI frame interpolation on one device.

    Build it with ``Interpolator.from_checkpoint(...)`` (or ``from_export`` for ONNX/TensorRT exports),
    then call ``interpolate(img0, img1, timesteps)`` per pair or ``stream(frames, factor)`` for a video.
    Work that depends only on the pair (flows, splatting metrics, motion latents, correlation) runs once
    per pair, per-frame encoder work once per frame of a video; all timesteps of a pair run as one batch
    (``max_batch`` caps it; without a cap the batch is halved when CUDA runs out of memory).
    """

    def __init__(self, backend: Backend, *, variant: str, weights: str, max_batch: Optional[int] = None):
        if not isinstance(backend, Backend):
            raise InputError(f"backend must implement gimm_trt.runtime.Backend, got {type(backend).__name__}")
        self.backend = backend
        self.variant = variant
        self.weights = weights  # the files the weights came from (or the export's); "random ..." for synthetic
        self.max_batch = check_max_batch(max_batch)  # None: all timesteps at once, halved on CUDA out-of-memory
        self._batch_cap = None  # the batch that last fit, when max_batch is None
        self.budget = None  # a runtime.budget.Budget: picks timesteps per batch (and tiles) per frame size
        self.ds_scale = None  # the processing scale when a call gives none (None: the backend's, else 1.0)
        self.spec = None  # the ModelSpec it was built from, when built by from_spec

    @classmethod
    def from_spec(cls, spec: ModelSpec) -> Interpolator:
        """The interpolator ``spec`` describes: its model (a checkpoint, random weights, or an export) on its
        backend, device and precision, with its processing scale, batch cap and memory budget.

        A checkpoint runs on the torch backend directly; exported backends (``onnxruntime``, ``tensorrt``, ...)
        export it on demand, at the first pair of each padded frame size and ds, into ``$GIMM_TRT_CACHE``
        (default ``~/.cache/gimm_trt``; reused across processes). ``spec.export`` runs a ``gimm-export``
        directory instead: frames must pad to its size and ``ds_scale`` must be its own (an ExportError names
        both). Without ``max_memory``, the torch backend uses the free GPU memory on CUDA and one timestep per
        batch on a CPU (batching costs memory there and gains no speed); exports batch all timesteps (an
        engine's profile caps them) and run untiled.
        """
        if not isinstance(spec, ModelSpec):
            raise InputError(f"spec must be a gimm_trt.model.ModelSpec, got {type(spec).__name__}")
        device = check_spec(spec)  # before the model loads
        kind = backend_class(spec.backend)
        if spec.export is not None:
            return cls._from_export(spec, kind, device)
        files = checkpoint_files(
            spec.checkpoint, spec.weights, flow_checkpoint=spec.flow_checkpoint, random_weights=spec.random_weights
        )
        model = load_model(files, variant=spec.variant, random_weights=spec.random_weights, seed=spec.seed)
        if spec.random_weights:
            source = _random(spec.variant, f"random weights (seed {spec.seed})")
        else:
            source = f"{files} ({LICENSE_NOTE})"
        if kind.runs_exports:  # exported on demand, per padded frame size and ds, into the export cache
            from ..export.exporter import ExportOptions
            from .on_demand import OnDemandBackend

            template = ExportOptions(
                model=spec.replace(
                    checkpoint=None if files is None else str(files.gimm),
                    flow_checkpoint=None if files is None or files.flow is None else str(files.flow),
                ),
                splat=kind.splat,
            )
            backend = OnDemandBackend(
                model, backend=spec.backend, device=device, export_options=template, options=spec.options
            )
            cap = template.max_timesteps if kind.batch_bound else None
            return cls._with_budget(backend, spec, source, cap, tiles=False)
        kind.make_options(spec.options)
        backend = kind(model, device=device, precision=spec.precision)
        return cls._with_budget(backend, spec, source, None, tiles=True)

    @classmethod
    def _from_export(cls, spec: ModelSpec, kind, device) -> Interpolator:
        check_export_variant(spec)  # before any graph loads
        backend = kind(spec.export, device=device, options=spec.options)
        info = backend.info
        if info.weights.startswith("random"):
            source = _random(info.variant, info.weights)
        else:
            source = f"{info.weights} ({LICENSE_NOTE})"
        cap = info.max_timesteps if kind.batch_bound else None
        return cls._with_budget(backend, spec.replace(variant=info.variant), source, cap, tiles=False)

    @classmethod
    def _with_budget(cls, backend: Backend, spec: ModelSpec, source: str, cap, *, tiles: bool) -> Interpolator:
        """The interpolator of a built backend; its batch is ``spec.max_batch``, else the backend's ``cap``, and
        a memory budget plans batches (and, with ``tiles``, tiles) when one is given or the backend tiles."""
        interp = cls(backend, variant=spec.variant, weights=source, max_batch=spec.max_batch or cap)
        interp.spec = spec
        interp.ds_scale = spec.ds_scale
        if spec.max_memory is not None or tiles:
            interp.budget = Budget(
                spec.weights.value.arch,
                precision=backend.precision,
                device=interp.device,
                limit=spec.max_memory,
                tiles=tiles,
            )
        return interp

    @classmethod
    def from_checkpoint(cls, checkpoint=None, **spec_fields) -> Interpolator:
        """Load an official checkpoint (``.pt`` or ``.safetensors``), or ComfyUI-GIMM-VFI's split files, and run
        it: ``from_spec(ModelSpec(checkpoint=checkpoint, **spec_fields))``.

        Args:
            checkpoint: a GIMM file; a folder (such as ``ComfyUI/models/interpolation/gimm-vfi``), where the
                variant's file is picked by name; or None to look up the official file name of the variant in
                ``$GIMM_TRT_CHECKPOINTS`` or ``./pretrained_ckpt`` (an error says where to get it).
            spec_fields: the other fields of ``gimm_trt.model.ModelSpec``: ``variant``, ``flow_checkpoint``,
                ``random_weights``, ``seed``, ``backend``, ``device``, ``precision``, ``ds_scale``,
                ``max_memory``, ``max_batch``, ``options``.
        """
        if "export" in spec_fields:
            raise InputError("from_checkpoint takes no export: use Interpolator.from_export(export_dir, ...)")
        return cls.from_spec(ModelSpec(checkpoint=checkpoint, **spec_fields))

    @classmethod
    def from_export(cls, export_dir, *, backend: str = "onnxruntime", **spec_fields) -> Interpolator:
        """Run a ``gimm-export`` directory (``<out>/<variant>-<precision>-<resolution>``):
        ``from_spec(ModelSpec(export=export_dir, backend=backend, **spec_fields))``.

        Args:
            export_dir: written by ``gimm-export`` / ``gimm_trt.export.export``.
            backend: ``"onnxruntime"`` (CUDA provider on ``cuda``, CPU otherwise) or ``"tensorrt"`` (builds the
                engines under ``<export_dir>/engines`` when missing).
            spec_fields: ``device``, ``max_batch`` (tensorrt defaults to the export's ``max_timesteps``),
                ``options`` (``OrtOptions(threads=...)``, ``TrtOptions(cuda_graph=..., build=...)``),
                ``max_memory`` (timesteps per batch from the memory model; exports run untiled), ``ds_scale``.
        """
        for name in ("checkpoint", "flow_checkpoint", "random_weights", "variant", "precision"):
            if name in spec_fields:
                raise InputError(f"from_export takes no {name}: the export's manifest says it")
        spec_fields.setdefault("device", "cpu" if backend == "onnxruntime" else None)
        return cls.from_spec(ModelSpec(export=export_dir, backend=backend, **spec_fields))

    @property
    def device(self) -> torch.device:
        return self.backend.device

    def interpolate(self, img0, img1, timesteps: Sequence[float] = (0.5,), ds_scale: Optional[float] = None):
        """Frames between ``img0`` and ``img1``.

        Args:
            img0, img1: float32 [3,H,W] or [1,3,H,W] in [0,1] (torch or numpy), or uint8 [H,W,3] RGB; same size.
            timesteps: values strictly inside (0, 1).
            ds_scale: processing scale (1.0 up to 1080p, 0.5 for 2K, 0.25 for 4K is the official guidance);
                None = the backend's (1.0 for torch).

        Returns:
            float32 torch.Tensor [T,3,H,W] in [0,1] on the interpolator's device.
        """
        ts = check_timesteps(timesteps)
        x0 = to_tensor(img0, "img0", self.device)
        x1 = to_tensor(img1, "img1", self.device)
        if x0.shape != x1.shape:
            raise InputError(f"img0 and img1 differ in size: {tuple(x0.shape[-2:])} vs {tuple(x1.shape[-2:])}")
        ds = self.check_size(x0.shape[2], x0.shape[3], ds_scale)
        batches = list(self._pair(x0, x1, ts, ds))
        return batches[0] if len(batches) == 1 else torch.cat(batches)

    def check_size(self, height: int, width: int, ds_scale: Optional[float] = None) -> float:
        """The processing scale frames of ``height`` x ``width`` run at (``ds_scale``, else the interpolator's);
        InputError or ExportError, before any work, if the model or the export cannot serve them."""
        ds = self._ds(ds_scale)
        processing_size(height, width, ds)
        self.backend.check_frames(height, width)  # an export serves one padded size: said before any work
        return ds

    def _pair(self, x0, x1, ts, ds, enc0=None, encoded=None):
        """Yields the frames [B,3,H,W] of one checked pair, batch by batch, in timestep order.

        Only one batch of frames is alive at a time, so a pair with many timesteps (``factor=1000``) stays
        within the budget. With a list ``encoded`` (a video), frame 1's encoding is appended to it for the next
        pair, and frame 0's encoding ``enc0`` (from the previous pair) is used instead of encoding it again.
        """
        pad = Padding.for_size(x0.shape[2], x0.shape[3], ds)
        x0, x1 = pad.pad(x0), pad.pad(x1)
        if encoded is not None:
            enc0 = enc0 if enc0 is not None else self.backend.encode(x0, ds)
            enc1 = self.backend.encode(x1, ds)
            encoded.append(enc1)
            feats = self.backend.estimate(enc0, enc1, ds)
        else:
            feats = self.backend.flow(x0, x1, ds)
        flow01, flow10 = feats["flow01"], feats["flow10"]
        if not bool(torch.isfinite(flow01).all() and torch.isfinite(flow10).all()):
            raise RuntimeError("the flow estimator produced non-finite flows (the official model asserts here)")
        t = torch.tensor(ts, dtype=torch.float32, device=self.device)
        step = self.max_batch or self._batch_cap or len(ts)
        plan = self.memory_plan(x0.shape[2], x0.shape[3], ds, len(ts))
        if plan is not None:
            batch, tile = plan
            self.backend.use_tile(tile)
            step = min(step, batch)
        i = 0
        while i < len(ts):
            try:
                flowt = self.backend.motion(flow01, flow10, t[i : i + step])
                frames = pad.crop(self.backend.synthesis(x0, x1, feats, flowt, t[i : i + step], ds))
            except torch.cuda.OutOfMemoryError:
                if self.max_batch is not None or step == 1:
                    raise
                # same frames from smaller batches; remembered so later pairs start there
                step = self._batch_cap = step // 2
                torch.cuda.empty_cache()
                continue
            del flowt
            i += step
            yield frames
            del frames  # the caller holds what it keeps; this batch is not held while the next one runs

    def memory_plan(self, height: int, width: int, ds: float, timesteps: int) -> Optional[tuple]:
        """``(timesteps per batch, tile)`` that keeps a pair of padded ``height`` x ``width`` frames under the memory
        budget (``Budget.plan``: remembered per size, a GimmError when nothing fits); None where nothing is planned:
        no budget, or an explicit ``max_batch``, which is the caller's choice."""
        if self.budget is None or self.max_batch is not None:
            return None
        return self.budget.plan(height, width, ds, timesteps)

    def stream(self, frames: Iterable, factor: int = 2, ds_scale: Optional[float] = None) -> Iterator[torch.Tensor]:
        """Interpolate a video: yields the originals and ``factor - 1`` new frames between each pair, in order.

        Frames are read one at a time (any iterable: a list, a generator, a video reader), so memory stays
        constant over any length. Yields float32 [3,H,W] in [0,1] on the interpolator's device.
        """
        factor = check_factor(factor)
        ts = [i / factor for i in range(1, factor)]
        prev = enc = None
        for i, frame in enumerate(frames):
            cur = to_tensor(frame, f"frame {i}", self.device)
            if prev is None:
                ds = self.check_size(cur.shape[2], cur.shape[3], ds_scale)
                yield cur[0]
            else:
                if cur.shape != prev.shape:
                    raise InputError(
                        f"frame {i} is {tuple(cur.shape[-2:])}, earlier frames are {tuple(prev.shape[-2:])}"
                    )
                # each frame is encoded once: its encoding serves as frame 0 of the next pair
                encoded = []
                for batch in self._pair(prev, cur, ts, ds, enc0=enc, encoded=encoded):
                    yield from batch
                    del batch
                enc = encoded[0]
                yield cur[0]
            prev = cur

    def _ds(self, ds_scale):
        fixed = self.backend.ds_scale
        ds_scale = check_ds(ds_scale if ds_scale is not None else self.ds_scale)
        if ds_scale is None:
            return fixed if fixed is not None else 1.0
        if fixed is not None and ds_scale != fixed:
            raise InputError(f"this {self.backend.name} export was built for ds_scale={fixed}; got ds_scale={ds_scale}")
        return ds_scale

    def __repr__(self):
        return (
            f"Interpolator(variant={self.variant!r}, backend={self.backend.name!r}, device={str(self.device)!r}, "
            f"weights={self.weights!r})"
        )


def check_export_variant(spec: ModelSpec, made: Optional[str] = None) -> None:
    """InputError when ``spec`` names a variant other than ``made``, the one its export was made from (None: read
    from the export's manifest). A spec without a variant runs the export's own."""
    if spec.export is None or spec.variant is None:
        return
    made = made or ExportInfo.read(spec.export).variant
    if made != spec.variant:
        raise InputError(
            f"variant {spec.variant!r} does not match the export {spec.export}, made from GIMM-VFI-{made}: "
            f"leave the variant out (an export runs its own) or pass {made!r}"
        )


def _random(variant: str, weights: str) -> str:
    """What random weights are called, said once as a warning: the frames they make are not meaningful."""
    source = f"{weights}, not a trained model"
    warnings.warn(f"GIMM-VFI-{variant} runs with {source}: outputs are not meaningful", stacklevel=4)
    return source
