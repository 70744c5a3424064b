"""``Interpolator``: the public entry point. Frames in, frames at any timesteps out, on any backend."""

import warnings
from collections.abc import Iterable, Iterator, Sequence
from typing import Optional

import torch

from ..core.errors import InputError
from ..core.sizes import Padding, processing_size
from ..model.checkpoint import LICENSE_NOTE, Weights, checkpoint_files, load_model
from .backend import SPECS, Backend, check_backend
from .budget import Budget, parse_bytes
from .frames import check_ds, check_factor, check_max_batch, check_timesteps, to_tensor
from .torch_backend import TorchBackend


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

    @classmethod
    def from_checkpoint(
        cls,
        checkpoint=None,
        *,
        variant: str = "R-P",
        backend: str = "torch",
        device="cpu",
        precision: str = "fp32",
        random_weights: bool = False,
        seed: int = 0,
        max_batch: Optional[int] = None,
        options=None,
        flow_checkpoint=None,
        max_memory=None,
    ) -> "Interpolator":
        """Load an official checkpoint (``.pt`` or ``.safetensors``), or ComfyUI-GIMM-VFI's split files, and run
        it on ``backend``.

        Args:
            checkpoint: a GIMM file; a folder (such as ``ComfyUI/models/interpolation/gimm-vfi``), where the
                variant's file is picked by name; or None to look up the official file name of ``variant`` in
                ``$GIMM_TRT_CHECKPOINTS`` or ``./pretrained_ckpt`` (an error says where to get it).
            flow_checkpoint: the flow estimator file (``raft-things_fp32.safetensors`` for R/R-P,
                ``flowformer_sintel_fp32.safetensors`` for F/F-P), whose weights replace the GIMM file's; None
                takes such a file from beside the GIMM file when there is one. ``weights`` names the files used.
            variant: ``"R"``, ``"R-P"``, ``"F"`` or ``"F-P"``; the checkpoint must match it.
            backend: ``"torch"``; ``"onnxruntime"`` and ``"tensorrt"`` export the model on demand, at the first
                pair of each padded frame size and ds, into ``$GIMM_TRT_CACHE`` (default ``~/.cache/gimm_trt``;
                reused across processes), then run that export (see ``from_export``).
            device: ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
            precision: ``"fp32"``, ``"fp16"`` (CUDA) or, for the torch backend, ``"bf16"``.
            random_weights: with ``checkpoint=None``, seeded synthetic weights (tests and speed work only:
                the frames are meaningless, and ``weights`` says so).
            options: ``OrtOptions`` or ``TrtOptions`` for those backends.
            max_memory: bytes or a size such as ``"6GiB"`` one pair may use: timesteps per batch and (torch) the
                synthesis tile are picked by the memory model to stay under it. None: on the torch backend, the
                device's free memory on CUDA, one timestep per batch on a CPU (batching costs memory there and
                gains no speed); exports keep their own batching.
        """
        weights = Weights.verify(variant)
        max_batch = check_max_batch(max_batch)
        limit = None if max_memory is None else parse_bytes(max_memory)
        check_backend(backend, device, precision)  # before the model loads
        files = checkpoint_files(checkpoint, weights, flow_checkpoint=flow_checkpoint, random_weights=random_weights)
        model = load_model(files, variant=weights.value.variant, random_weights=random_weights, seed=seed)
        if random_weights:
            source = f"random weights (seed {seed}), not a trained model"
            warnings.warn(
                f"GIMM-VFI-{weights.value.variant} runs with {source}: outputs are not meaningful", stacklevel=2
            )
        else:
            source = f"{files} ({LICENSE_NOTE})"
        spec = SPECS[backend]
        if spec.runs_exports:  # exported on demand, per padded frame size and ds, into the export cache
            from ..export.exporter import ExportOptions
            from .on_demand import OnDemandBackend

            export_options = ExportOptions(
                variant=weights.value.variant,
                random_weights=random_weights,
                seed=seed,
                checkpoint=None if files is None else str(files.gimm),
                precision=precision,
                flow_checkpoint=None if files is None or files.flow is None else str(files.flow),
                splat=spec.splat,
            )
            on_demand = OnDemandBackend(
                model, backend=backend, device=device, export_options=export_options, options=options
            )
            interp = cls(
                on_demand,
                variant=weights.value.variant,
                weights=source,
                max_batch=max_batch or (export_options.max_timesteps if spec.batch_bound else None),
            )
            if limit is not None:
                interp.budget = Budget(
                    weights.value.arch, precision=precision, device=interp.device, limit=limit, tiles=False
                )
            return interp
        interp = cls(
            TorchBackend(model, device=device, precision=precision),
            variant=weights.value.variant,
            weights=source,
            max_batch=max_batch,
        )
        interp.budget = Budget(weights.value.arch, precision=precision, device=interp.device, limit=limit)
        return interp

    @classmethod
    def from_export(
        cls,
        export_dir,
        *,
        backend: str = "onnxruntime",
        device="cpu",
        max_batch: Optional[int] = None,
        options=None,
        max_memory=None,
    ) -> "Interpolator":
        """Run a ``gimm-export`` directory (``<out>/<variant>-<precision>-<resolution>``).

        Args:
            export_dir: written by ``gimm-export`` / ``gimm_trt.export.export``.
            backend: ``"onnxruntime"`` (CUDA provider on ``cuda``, CPU otherwise) or ``"tensorrt"`` (builds the
                engines under ``<export_dir>/engines`` when missing).
            device: ``"cpu"`` (onnxruntime only), ``"cuda"`` or ``"cuda:N"``.
            max_batch: timesteps per synthesis call; tensorrt defaults to the export's ``max_timesteps``.
            options: ``OrtOptions(threads=...)`` or ``TrtOptions(cuda_graph=..., build=...)``.
            max_memory: bytes or ``"6GiB"``: timesteps per batch from the memory model (the exports run untiled).

        Frames must pad to the export's size and ``ds_scale`` must be the export's: otherwise an ExportError
        names both.
        """
        from .on_demand import open_export

        max_batch = check_max_batch(max_batch)
        limit = None if max_memory is None else parse_bytes(max_memory)
        be = open_export(export_dir, backend=backend, device=device, options=options)
        if max_batch is None and SPECS[backend].batch_bound:
            max_batch = be.info.max_timesteps
        weights = be.info.weights
        if weights.startswith("random"):
            weights = f"{weights}, not a trained model"
            warnings.warn(f"GIMM-VFI-{be.info.variant} runs with {weights}: outputs are not meaningful", stacklevel=2)
        else:
            weights = f"{weights} ({LICENSE_NOTE})"
        interp = cls(be, variant=be.info.variant, weights=weights, max_batch=max_batch)
        if limit is not None:
            arch = Weights.verify(be.info.variant).value.arch
            interp.budget = Budget(arch, precision=be.precision, device=interp.device, limit=limit, tiles=False)
        return interp

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
        ds = self._check_size(x0, ds_scale)
        batches = list(self._pair(x0, x1, ts, ds))
        return batches[0] if len(batches) == 1 else torch.cat(batches)

    def _check_size(self, x: torch.Tensor, ds_scale) -> float:
        """The ds to use for frames of ``x``'s size; an error if the model or the export cannot serve it."""
        ds = self._ds(ds_scale)
        processing_size(x.shape[2], x.shape[3], ds)
        self.backend.check_frames(x.shape[2], x.shape[3])  # an export serves one padded size: said before any work
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
        if self.budget is not None and self.max_batch is None:  # an explicit max_batch is the caller's choice
            step = min(step, self._plan(x0, ds, len(ts)))
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

    def _plan(self, x0, ds: float, timesteps: int) -> int:
        """Timesteps per batch for padded frames like ``x0`` under the budget; sets the backend's tile."""
        batch, tile = self.budget.plan(x0.shape[2], x0.shape[3], ds, timesteps)
        self.backend.use_tile(tile)
        return batch

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
                ds = self._check_size(cur, ds_scale)
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
        ds_scale = check_ds(ds_scale)
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
