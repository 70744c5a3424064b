"""``prepare``: export a model (``gimm_trt.export``), check the graphs against TensorRT's ONNX parser, optionally
compare them with PyTorch in ONNX Runtime and build their TensorRT engines: what ``gimm-export`` does, as one
call."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from ..core.errors import DeviceError, ExportError, InputError
from ..export.exporter import ExportOptions, export
from ..export.trt_support import RTX, check_file, require_parsable

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
    family: str = "tensorrt",
    compute_capabilities=None,
    force: bool = False,
    log: Optional[Callable[[str], None]] = None,
) -> Prepared:
    """Export ``options`` under ``out``, check it against TensorRT's ONNX parser; then, if asked, compare it
    with PyTorch and build its engines.

    The parser check (``trt_support.require_parsable``) raises ExportError naming each node the parser would
    reject or silently change in the TensorRT targeted: the one installed here, else every major we support
    (10.9+, 11.x). Findings only for a major not targeted are logged and kept in ``parser_notes``: an export
    for TensorRT 11 is not failed for a limit of 10.9. The export directory is written either way.

    Building needs the family's module and, for TensorRT, a CUDA GPU (``options.model.device``); TensorRT-RTX
    builds on the CPU, for ``compute_capabilities`` (default: its own set). Both are checked before the export
    starts, not after minutes of it.
    """
    log = log or (lambda message: None)
    device = options.model.device
    if build_engines:
        from . import compat

        compat.import_trt(family)
        if not compat.family(family).scatter_add and options.splat == "portable":
            raise InputError(
                f"{compat.family(family).title} has no scatter-add for the portable splat: export with "
                "--splat plugin (the motion stage then runs as engines around our splat kernel)"
            )
        if compat.family(family).aot:
            compat.rtx_compute_capabilities(compute_capabilities)  # a bad value fails before the export
        elif str(device or "cuda").startswith("cpu"):
            raise DeviceError("building TensorRT engines needs a CUDA GPU (TensorRT builds on --device, default cuda)")
        else:
            compat.cuda_device(device)
    if options.model.random_weights:
        log("random weights: the export is not a trained model (speed work and tests only)")
    result = Prepared(export_dir=export(options, out, force=force, log=log))
    log("checking the graphs against TensorRT's ONNX parser (static: ops, types, attributes, constants)")
    result.parser_notes = require_parsable(result.export_dir, log=log)
    if build_engines and family == RTX:
        _require_rtx_parsable(result.export_dir, log)
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

        title = compat.family(family).title
        log(f"building {title} engines (minutes per stage on the first build; cached after)")
        result.plans = build(
            result.export_dir,
            profile=options.profile,
            device=device,
            family=family,
            compute_capabilities=compute_capabilities,
        )
    return result


def _require_rtx_parsable(export_dir: Path, log) -> None:
    """The graphs TensorRT-RTX builds (the motion stage as its parts) against its column of the parser table:
    ExportError naming the node before any build."""
    from .build import graphs_to_build

    log("checking the graphs TensorRT-RTX builds (motion as its parts) against its parser's table")
    for name, path in graphs_to_build(export_dir, family=RTX).items():
        blocking = [f for f in check_file(path, graph=name, targets=(RTX,)).findings if RTX in f.versions]
        if blocking:
            raise ExportError(f"TensorRT-RTX's ONNX parser would reject {path.name}: {blocking[0]}")
