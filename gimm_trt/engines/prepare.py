"""``prepare``: export a model (``gimm_trt.export``), check the graphs against TensorRT's ONNX parser, optionally
compare them with PyTorch in ONNX Runtime and build their TensorRT engines: what ``gimm-export`` does, as one
call."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from ..core.errors import DeviceError
from ..export.exporter import ExportOptions, export
from ..export.trt_support import require_parsable

__all__ = ["Prepared", "prepare"]


@dataclass
class Prepared:
    """The export directory, the ONNX Runtime check (``compare_export``'s report), the plans built, and what the
    parser check found for TensorRT versions not targeted here (``trt_support.Finding``; the others raise)."""

    export_dir: Path
    check: Optional[dict] = None
    plans: dict = field(default_factory=dict)
    parser_notes: list = field(default_factory=list)


def prepare(
    options: ExportOptions,
    out="exports",
    *,
    check: bool = False,
    build_engines: bool = False,
    force: bool = False,
    log: Optional[Callable[[str], None]] = None,
) -> Prepared:
    """Export ``options`` under ``out``, check it against TensorRT's ONNX parser; then, if asked, compare it
    with PyTorch and build its engines.

    The parser check (``trt_support.require_parsable``) raises ExportError naming each node the parser would
    reject or silently change in the TensorRT targeted: the one installed here, else every major we support
    (10.9+, 11.x). Findings only for a major not targeted are logged and kept in ``parser_notes``: an export
    for TensorRT 11 is not failed for a limit of 10.9. The export directory is written either way.

    Building needs TensorRT and a CUDA GPU: both are checked before the export starts, not after minutes
    of it.
    """
    log = log or (lambda message: None)
    device = options.model.device
    if build_engines:
        from . import compat

        compat.import_trt()
        if str(device or "cuda").startswith("cpu"):
            raise DeviceError("building TensorRT engines needs a CUDA GPU (TensorRT builds on --device, default cuda)")
        compat.cuda_device(device)
    if options.model.random_weights:
        log("random weights: the export is not a trained model (speed work and tests only)")
    result = Prepared(export_dir=export(options, out, force=force, log=log))
    log("checking the graphs against TensorRT's ONNX parser (static: ops, types, attributes, constants)")
    result.parser_notes = require_parsable(result.export_dir, log=log)
    if check:
        from ..export.compare import compare_export
        from ..model.checkpoint import load_model

        log("checking: each graph in ONNX Runtime against PyTorch (fp32) on a synthetic pair, same inputs")
        spec = options.model
        model = load_model(
            spec.checkpoint,
            variant=spec.variant,
            flow_checkpoint=spec.flow_checkpoint,
            random_weights=spec.random_weights,
            seed=spec.seed,
        )
        result.check = compare_export(result.export_dir, model)
    if build_engines:
        from .build import build_engines as build

        log("building TensorRT engines (minutes per stage on the first build; cached after)")
        result.plans = build(result.export_dir, profile=options.profile, device=device)
    return result
