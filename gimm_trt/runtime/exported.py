"""Exported backends: open a ``gimm-export`` directory, or export a loaded model on demand into a cache.

``open_export(dir, backend=...)`` returns an ``OrtBackend`` or a ``TrtBackend``. ``OnDemandBackend`` is what
``Interpolator.from_checkpoint(..., backend="onnxruntime" | "tensorrt")`` uses: exports are made for one padded
frame size and one ``ds_scale``, so it exports at the first pair of each (padded size, ds) it meets, into
``$GIMM_TRT_CACHE`` (default ``~/.cache/gimm_trt``), and reuses what an earlier process left there.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Callable, Optional

__all__ = ["EXPORTED_BACKENDS", "open_export", "cache_root", "OnDemandBackend"]

EXPORTED_BACKENDS = ("onnxruntime", "tensorrt")
ORT_SPLAT = "portable"  # stock ORT runs it on any provider; the custom op is a Python callback on the CPU


def open_export(export_dir, *, backend: str = "onnxruntime", device="cpu", **options):
    """The backend that runs ``export_dir``; ``options`` go to ``TrtBackend`` (``cuda_graph``, ``build``, ...)
    or ``OrtBackend`` (``threads``)."""
    if backend == "onnxruntime":
        from .ort_backend import OrtBackend

        return OrtBackend(export_dir, device=device, **options)
    if backend == "tensorrt":
        from .trt_backend import TrtBackend

        return TrtBackend(export_dir, device=device, **options)
    raise ValueError(f"backend {backend!r} does not run exports: choose one of {', '.join(EXPORTED_BACKENDS)}")


def cache_root() -> Path:
    """Where on-demand exports go: ``$GIMM_TRT_CACHE`` or ``~/.cache/gimm_trt``."""
    return Path(os.environ.get("GIMM_TRT_CACHE") or Path.home() / ".cache" / "gimm_trt")


class OnDemandBackend:
    """Exports ``model`` for each padded frame size and ds it is asked to run, then runs that export.

    Args:
        model: the loaded ``GIMMVFI`` (exported from the CPU; it is not moved).
        backend: ``"onnxruntime"`` or ``"tensorrt"``.
        options: an ``ExportOptions`` template; its resolution and ds_scale are replaced per frame size.
        weights: ``export.Weights`` identity of the model's weights (None: computed from ``options``).
        log: progress lines of the exports (default: ``logging`` at INFO level, logger ``gimm_trt.export``:
            an export takes minutes at 4K, so a caller may want to show it).
    """

    ds_scale = None  # any: each (size, ds) gets its own export

    def __init__(self, model, *, backend: str, device, options, weights=None, cache_dir=None,
                 log: Optional[Callable[[str], None]] = None, **backend_options):
        from .backends import resolve_device

        if backend not in EXPORTED_BACKENDS:
            raise ValueError(f"backend {backend!r} does not run exports: choose one of {', '.join(EXPORTED_BACKENDS)}")
        self.name = backend
        self.device = resolve_device(device)
        if backend == "tensorrt" and self.device.type != "cuda":
            raise ValueError(f"the tensorrt backend runs on CUDA devices, got device={str(self.device)!r}")
        if backend == "onnxruntime":
            from .ort_backend import providers_for

            providers_for(self.device)  # no CUDA provider: said now, not after an export
        self.model = model
        self.options = options
        self.precision = options.precision
        self._weights = weights
        self.cache_dir = Path(cache_dir) if cache_dir is not None else cache_root()
        self.log = log if log is not None else logging.getLogger("gimm_trt.export").info
        self.backend_options = backend_options
        self._open = {}  # (Hp, Wp, ds) -> backend
        self._current = None

    @property
    def export_dirs(self) -> list:
        return [b.export_dir for b in self._open.values()]

    def flow(self, img0, img1, ds: float) -> dict:
        key = (int(img0.shape[-2]), int(img0.shape[-1]), float(ds))
        if key not in self._open:
            self._open[key] = self._export(*key)
        self._current = self._open[key]
        return self._current.flow(img0, img1, ds)

    def motion(self, flow01, flow10, t):
        return self._current.motion(flow01, flow10, t)

    def synthesis(self, img0, img1, feats: dict, flowt, t, ds: float):
        return self._current.synthesis(img0, img1, feats, flowt, t, ds)

    def _export(self, hp: int, wp: int, ds: float):
        from dataclasses import replace

        from ..export.exporter import export, export_key, weights_of

        options = replace(self.options, resolution=f"{wp}x{hp}", ds_scale=ds)
        if self._weights is None:
            self._weights = weights_of(options)
        # keyed by every input, so different weights or scales never share (or fight over) a directory
        out = self.cache_dir / export_key(options, self._weights)[:16]
        export_dir = export(options, out, model=self.model, weights=self._weights, log=self.log)
        return open_export(export_dir, backend=self.name, device=self.device, **self.backend_options)
