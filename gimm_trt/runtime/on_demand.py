"""Exported backends run on exports made on demand from a loaded model, into a cache.

``OnDemandBackend`` is what ``Interpolator.from_spec`` uses for an exported backend given a checkpoint (an
``export`` directory is opened by the backend's class itself): exports are made for one padded
frame size and one ``ds_scale``, so it exports at the first pair of each (padded size, ds) it meets, into
``$GIMM_TRT_CACHE`` (default ``~/.cache/gimm_trt``), and reuses what an earlier process left there.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Optional

from ..core.errors import InputError
from ..export.exporter import ExportOptions, WeightsSource, export, export_key, weights_of
from .backend import Backend
from .exported_backend import ExportedBackend
from .registry import EXPORTED_BACKENDS, backend_class

__all__ = ["exported_class", "cache_root", "OnDemandBackend"]


def exported_class(backend: str) -> type:
    """The class of ``backend``, which must run exports; InputError naming those that do otherwise."""
    if backend not in EXPORTED_BACKENDS:
        raise InputError(f"backend {backend!r} does not run exports: choose one of {', '.join(EXPORTED_BACKENDS)}")
    return backend_class(backend)


def cache_root() -> Path:
    """Where on-demand exports go: ``$GIMM_TRT_CACHE`` or ``~/.cache/gimm_trt``."""
    return Path(os.environ.get("GIMM_TRT_CACHE") or Path.home() / ".cache" / "gimm_trt")


class OnDemandBackend(Backend):
    """Exports ``model`` for each padded frame size and ds it is asked to run, then runs that export.

    Args:
        model: the loaded ``GIMMVFI`` (exported from the CPU; it is not moved).
        backend: ``"onnxruntime"`` or ``"tensorrt"``.
        export_options: an ``ExportOptions`` template; its resolution and ds_scale are replaced per frame size.
        options: ``OrtOptions`` / ``TrtOptions`` of the backend that runs each export.
        weights: identity of the model's weights (None: computed from ``export_options``).
        log: progress lines of the exports (default: ``logging`` at INFO level, logger ``gimm_trt.export``:
            an export takes minutes at 4K, so a caller may want to show it).

    The export that runs a pair is chosen from the pair's frames at each stage call, so threads interpolating
    frames of different sizes each run their own export.
    """

    def __init__(
        self,
        model,
        *,
        backend: str,
        device,
        export_options: ExportOptions,
        options=None,
        weights: Optional[WeightsSource] = None,
        cache_dir=None,
        log: Optional[Callable[[str], None]] = None,
    ):
        self.runner = exported_class(backend)
        # e.g. no CUDA provider: said now, not after an export
        self.device = self.runner.check(device, export_options.model.precision)
        self.model = model
        self.export_options = export_options
        self.options = self.runner.make_options(options)
        self.precision = export_options.model.precision
        self._weights = weights
        self.cache_dir = Path(cache_dir) if cache_dir is not None else cache_root()
        self.log = log if log is not None else logging.getLogger("gimm_trt.export").info
        self._open = {}  # (Hp, Wp, ds) -> backend
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return self.runner.name

    @property
    def export_dirs(self) -> list:
        return [b.export_dir for b in self._open.values()]

    def _for(self, img, ds: float) -> ExportedBackend:
        key = (int(img.shape[-2]), int(img.shape[-1]), float(ds))
        with self._lock:  # one export per key, even when threads ask for it together
            if key not in self._open:
                self._open[key] = self._export(*key)
            return self._open[key]

    def encode(self, img, ds: float):
        return self._for(img, ds).encode(img, ds)

    def estimate(self, enc0, enc1, ds: float) -> dict:
        return self._for(enc0, ds).estimate(enc0, enc1, ds)

    def motion(self, flow01, flow10, t):
        # any export of this scale serves: motion depends on the processing size only, which flows carry
        return self._by_flow(flow01).motion(flow01, flow10, t)

    def synthesis(self, img0, img1, feats: dict, flowt, t, ds: float):
        return self._for(img0, ds).synthesis(img0, img1, feats, flowt, t, ds)

    def _by_flow(self, flow) -> ExportedBackend:
        h, w = int(flow.shape[-2]), int(flow.shape[-1])
        with self._lock:
            for backend in self._open.values():
                if tuple(backend.info.processing_size) == (h, w):
                    return backend
        raise InputError(f"no export serves flows of {w}x{h}: run the flow stage first")

    def _export(self, hp: int, wp: int, ds: float) -> ExportedBackend:
        options = replace(
            self.export_options, resolution=f"{wp}x{hp}", model=self.export_options.model.replace(ds_scale=ds)
        )
        if self._weights is None:
            self._weights = weights_of(options)
        # keyed by every input, so different weights or scales never share (or fight over) a directory
        out = self.cache_dir / export_key(options, self._weights)[:16]
        export_dir = export(options, out, model=self.model, weights=self._weights, log=self.log)
        return self.runner(export_dir, device=self.device, options=self.options)
