"""``export``: a GIMM-VFI model -> ``<out>/<variant>-<precision>-<resolution>/`` (three ONNX graphs + manifest).

Per stage: trace with the dynamo exporter (``graphs.trace``), clean (``passes.clean``), for fp16 convert with
fp32 islands (``fp16.to_fp16``), check (``onnx.checker``), write atomically. Re-running with the same inputs
reuses the directory (``manifest.reuse_problem``); different inputs re-export into it.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ..core import deps
from ..core.errors import InputError
from ..core.files import atomic_write, file_lock, sha256_file
from ..core.sizes import parse_resolution, processing_size
from ..core.stages import STAGES, T_AXIS, T_INPUTS, T_OUTPUTS, TimestepProfile
from ..model.checkpoint import Weights, checkpoint_files
from ..model.spec import ModelSpec
from ..plugins import schema
from . import graphs, manifest

__all__ = [
    "ExportOptions",
    "WeightsSource",
    "export",
    "export_key",
    "weights_of",
    "OPSETS",
    "DEFAULT_OPSET",
    "PRECISIONS",
]

OPSETS = (17, 18, 19)  # not 20: TensorRT 10 parses opset 20's GridSample as nearest, not bilinear
DEFAULT_OPSET = 18
PRECISIONS = ("fp32", "fp16")  # what graphs can be exported in (bf16 is a torch-backend-only precision)


@dataclass(frozen=True, kw_only=True)
class ExportOptions:
    """Everything an export is made from: the model (``ModelSpec``) and the graphs' own settings.

    Args:
        model: which variant and weights (``variant``, ``checkpoint``, ``flow_checkpoint``, ``random_weights``,
            ``seed``), in which ``precision`` (``"fp32"``, or ``"fp16"``: fp16 convolutions/matmuls with fp32
            islands and fp32 graph I/O), at which ``ds_scale`` (None: 1.0 up to 1080p, 0.5 for 2K, 0.25 for
            4K). Its backend and runtime fields do not change the graphs.
        resolution: ``"4k"``, ``"2k"``, ``"1080p"``, ``"720p"`` or ``"WxH"``: the frame size served (any frame
            that pads to the same multiple of 32).
        splat: ``"plugin"`` (one custom node: TensorRT plugin / ORT custom op) or ``"portable"`` (standard ops).
        opset: 17, 18 or 19.
        max_timesteps: the largest T the TensorRT engines are built for (recorded in the manifest).
    """

    model: ModelSpec = ModelSpec()
    resolution: str = "4k"
    splat: str = "plugin"
    opset: int = DEFAULT_OPSET
    max_timesteps: int = TimestepProfile().max

    def __post_init__(self):
        if not isinstance(self.model, ModelSpec):
            raise InputError(f"model must be a gimm_trt.model.ModelSpec, got {type(self.model).__name__}")
        if self.model.export is not None:
            raise InputError("an export is made from a checkpoint or random weights, not from another export")
        if self.model.precision not in PRECISIONS:
            raise InputError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.model.precision!r}")
        if self.splat not in schema.FORMS:
            raise InputError(f"splat must be one of {', '.join(schema.FORMS)}, got {self.splat!r}")
        if self.opset not in OPSETS:
            why = " (opset 20 changed GridSample, which TensorRT 10 then parses as nearest)" if self.opset >= 20 else ""
            raise InputError(f"opset must be one of {', '.join(map(str, OPSETS))}, got {self.opset}{why}")
        _ = self.profile, self.sizes  # validate max_timesteps, resolution and ds_scale now

    @property
    def frame(self):
        """The ``Resolution`` (name, width, height)."""
        return parse_resolution(self.resolution)

    @property
    def profile(self) -> TimestepProfile:
        """The timesteps per call the TensorRT engines of this export take."""
        return TimestepProfile.up_to(self.max_timesteps)

    @property
    def ds(self) -> float:
        return self.frame.ds(self.model.ds_scale)

    @property
    def sizes(self) -> tuple:
        """((Hp, Wp) padded, (h, w) processing); InputError when the model cannot run this size and scale."""
        res = self.frame
        hp, wp, hd, wd = processing_size(res.height, res.width, self.ds)
        return (hp, wp), (hd, wd)

    @property
    def name(self) -> str:
        """The directory name: ``<variant>-<precision>-<resolution>``."""
        return f"{self.model.variant}-{self.model.precision}-{self.frame.name}"


@dataclass(frozen=True, kw_only=True)
class WeightsSource:
    """Where the weights come from: ``label`` for people, ``sha256`` of the file (None for random weights; for a
    split pair, of both files' digests)."""

    label: str
    sha256: Optional[str] = None
    path: Optional[str] = None
    flow_path: Optional[str] = None  # the flow estimator file of a split pair

    @property
    def identity(self) -> str:
        return self.sha256 or self.label


def weights_of(options: ExportOptions) -> WeightsSource:
    """The weights ``options`` names; CheckpointError when a file is missing."""
    model = options.model
    if model.random_weights:
        return WeightsSource(label=f"random weights (seed {model.seed})")
    files = checkpoint_files(model.checkpoint, model.variant, flow_checkpoint=model.flow_checkpoint)
    digests = [sha256_file(p) for p in files.paths]
    sha = digests[0] if len(digests) == 1 else hashlib.sha256(" ".join(digests).encode()).hexdigest()
    return WeightsSource(
        label=str(files), sha256=sha, path=str(files.gimm), flow_path=None if files.flow is None else str(files.flow)
    )


def _fields(options: ExportOptions, weights: WeightsSource) -> dict:
    """The inputs an export depends on (hashed into ``inputs_sha256``); max_timesteps only affects engines."""
    from ..core.version import __version__

    padded, processing = options.sizes
    return {
        "weights": weights.identity,
        "variant": options.model.variant,
        "precision": options.model.precision,
        "resolution": options.frame.name,
        "padded_size": list(padded),
        "processing_size": list(processing),
        "ds_scale": options.ds,
        "splat": options.splat,
        "opset": options.opset,
        "gimm_trt": __version__,
        "source": manifest.source_digest(Weights.verify(options.model.variant).value.arch),
    }


def export_key(options: ExportOptions, weights: WeightsSource) -> str:
    """sha256 of the export's inputs: equal keys, equal graphs."""
    return manifest.inputs_digest(_fields(options, weights))


@contextlib.contextmanager
def _locked(export_dir: Path):
    """One exporter per directory at a time, across threads and processes."""
    export_dir.mkdir(parents=True, exist_ok=True)
    with file_lock(export_dir / ".export"):
        yield


def _io(values) -> list:
    import onnx

    out = []
    for vi in values:
        tt = vi.type.tensor_type
        dims = [d.dim_param or d.dim_value for d in tt.shape.dim]
        out.append({"name": vi.name, "shape": dims, "dtype": onnx.helper.tensor_dtype_to_np_dtype(tt.elem_type).name})
    return out


def export(
    options: ExportOptions,
    out="exports",
    *,
    model=None,
    weights: Optional[WeightsSource] = None,
    force: bool = False,
    log: Optional[Callable[[str], None]] = None,
) -> Path:
    """Write (or reuse) the export of ``options`` under ``out``; returns ``<out>/<options.name>``.

    A directory made from the same inputs is reused as is. Otherwise each stage is, in this order: kept when
    its own inputs did not change (a new splat form re-traces only motion), converted from the fp32 sibling
    export ``<variant>-fp32-<resolution>`` for fp16 when that one was made from the same inputs, or traced.

    Args:
        model: the ``GIMMVFI`` to export, already loaded from the weights ``weights`` describes (default: loaded
            from ``options`` when a stage needs tracing).
        weights: identity of the weights (default: ``weights_of(options)``, which hashes the checkpoint).
        force: trace every stage again.
        log: called with one line per step (the CLI prints them on stderr).
    """
    log = (lambda message: None) if log is None else log
    _require_onnx()
    weights = weights or weights_of(options)
    fields = _fields(options, weights)
    digest = manifest.inputs_digest(fields)
    export_dir = Path(out) / options.name
    with _locked(export_dir):
        problem = "forced" if force else manifest.reuse_problem(export_dir, digest)
        if problem is None:
            data = manifest.read_manifest(export_dir)
            if data.get("max_timesteps") != options.max_timesteps:  # engines only: no new graphs needed
                axis = {**data.get("dynamic_axis", {}), "profile": options.profile.as_dict()}
                manifest.write_manifest(
                    export_dir, {**data, "max_timesteps": options.max_timesteps, "dynamic_axis": axis}
                )
            log(f"reusing {export_dir} (made from the same inputs)")
            return export_dir
        if (export_dir / manifest.MANIFEST).exists():
            log(f"re-exporting {export_dir}: {problem}")
        sources = _Sources(options, weights, model, out, force, log)
        plan = {stage: sources.find(stage, export_dir, manifest.stage_digest(fields, stage)) for stage in STAGES}
        (export_dir / manifest.MANIFEST).unlink(missing_ok=True)  # incomplete until the new one is written
        stages = {stage: _make_stage(stage, found, options, sources, export_dir, log) for stage, found in plan.items()}
        for stage, entry in stages.items():
            entry["inputs_sha256"] = manifest.stage_digest(fields, stage)
        padded, processing = options.sizes
        data = {
            "schema": manifest.SCHEMA,
            "variant": options.model.variant,
            "weights": weights.label,
            # the file's sha256, or the label of random weights, under the name readers of manifests look up
            "checkpoint_sha256": weights.identity,
            "precision": options.model.precision,
            "resolution": {"name": options.frame.name, "width": options.frame.width, "height": options.frame.height},
            "padded_size": list(padded),
            "processing_size": list(processing),
            "ds_scale": options.ds,
            "max_timesteps": options.max_timesteps,
            "opset": options.opset,
            "splat": _splat_entry(options.splat),
            "dynamic_axis": {
                "name": T_AXIS,
                "inputs": list(T_INPUTS),
                "outputs": list(T_OUTPUTS),
                "profile": options.profile.as_dict(),
            },  # as the engines are built
            "stages": stages,
            "tools": manifest.tool_versions(),
            "inputs": fields,
            "inputs_sha256": digest,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        manifest.write_manifest(export_dir, data)
    log(f"wrote {export_dir}")
    return export_dir


def _require_onnx() -> None:
    for module in ("onnx", "onnxscript", "onnx_ir"):
        deps.require(module, "exporting")


def _splat_entry(form: str) -> dict:
    if form == "plugin":
        return {
            "form": form,
            "node": f"{schema.NAMESPACE}::{schema.OP_NAME}",
            "version": schema.VERSION,
            "note": "custom node: TensorRT plugin gimm_trt::splat, ONNX Runtime via onnxruntime-extensions",
        }
    return {"form": form, "node": "ScatterElements(reduction=add)", "note": "standard ONNX ops only"}


class _Sources:
    """Where each stage's graph comes from: the directory itself, the fp32 sibling, or a trace of the model."""

    def __init__(self, options, weights, model, out, force, log):
        self.options, self.weights, self._model = options, weights, model
        self.out, self.force, self.log = out, force, log

    def find(self, stage: str, export_dir: Path, digest: str):
        """("keep", entry) | ("fp32", path) | ("trace", None)."""
        if self.force:
            return "trace", None
        if manifest.reusable_stage(export_dir, stage, digest) is not None:
            return "keep", manifest.read_manifest(export_dir)["stages"][stage]
        if self.options.model.precision == "fp16":
            from dataclasses import replace

            fp32 = replace(self.options, model=self.options.model.replace(precision="fp32"))
            path = manifest.reusable_stage(
                Path(self.out) / fp32.name, stage, manifest.stage_digest(_fields(fp32, self.weights), stage)
            )
            if path is not None:
                return "fp32", path
        return "trace", None

    @property
    def model(self):
        if self._model is None:
            from ..model.checkpoint import load_model  # torch and the model load only when a stage is traced

            self.log(f"loading GIMM-VFI-{self.options.model.variant} ({self.weights.label})")
            self._model = load_model(
                self.weights.path,
                variant=self.options.model.variant,
                flow_checkpoint=self.weights.flow_path,
                random_weights=self.options.model.random_weights,
                seed=self.options.model.seed,
            )
        return self._model


def _make_stage(stage, found, options, sources, export_dir, log) -> dict:
    """Write ``<stage>.onnx`` (unless kept) and return its manifest entry."""
    import onnx_ir as ir

    from . import passes

    how, source = found
    if how == "keep":
        log(f"{stage}: unchanged, kept")
        return dict(source)
    start = time.perf_counter()
    padded, processing = options.sizes
    if how == "fp32":
        log(f"{stage}: converting {source} to fp16")
        ir_model = ir.load(str(source))
        entry = {"made_from": str(source)}
    else:
        model = sources.model  # loads it on first use
        start = time.perf_counter()
        log(
            f"{stage}: tracing with torch.onnx (dynamo), opset {options.opset}, "
            f"{padded[1]}x{padded[0]} padded, ds {options.ds:g}"
        )
        module = graphs.stage_module(model, stage, options.ds)
        ir_model = graphs.trace(
            module,
            graphs.example_inputs(stage, padded, processing),
            stage=stage,
            opset=options.opset,
            splat=options.splat,
        )
        entry = {"trace_seconds": round(time.perf_counter() - start, 2)}
        passes.clean(ir_model)
    if options.model.precision == "fp16":
        from . import fp16

        entry["fp16"] = fp16.to_fp16(ir_model, islands=fp16.island_classes()).as_dict()
        passes.prune(ir_model)  # the fp32 originals of converted weights
    proto = passes.to_proto(
        ir_model,
        name=f"gimm_{stage}",
        doc=f"GIMM-VFI-{options.model.variant} {stage} stage, {options.model.precision}, gimm_trt export",
    )
    passes.validate(proto)
    data = proto.SerializeToString()
    file = f"{stage}.onnx"
    atomic_write(export_dir / file, data)
    seconds = time.perf_counter() - start
    entry = {
        "file": file,
        "sha256": hashlib.sha256(data).hexdigest(),
        "bytes": len(data),
        "nodes": len(proto.graph.node),
        "ops": passes.op_counts(proto),
        "inputs": _io(proto.graph.input),
        "outputs": _io(proto.graph.output),
        "exporter": "torch.onnx.export(dynamo=True)",
        "export_seconds": round(seconds, 2),
        **entry,
    }
    log(f"{stage}: {entry['nodes']} nodes, {len(data) / 2**20:.1f} MiB, {seconds:.1f} s")
    return entry
