"""``manifest.json`` of an export directory: what was exported, from what, with what; and when to reuse it.

An export is reused when its manifest records the same ``inputs_sha256`` (a digest of everything the graphs
depend on: weights, variant, precision, sizes, ds, splat form, opset, gimm_trt version and source) and every
ONNX file still has the sha256 the manifest records. Anything else re-exports. The manifest is written last
(atomically) and removed before a re-export starts, so a killed export never looks complete.

Reading is light (json only): the runtime opens exports through ``ExportInfo``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath

from ..core.errors import ExportError, ExportMissingError
from ..core.files import sha256_file, write_json
from ..core.sizes import padded_size

__all__ = [
    "SCHEMA",
    "MANIFEST",
    "ExportInfo",
    "read_manifest",
    "export_file",
    "write_manifest",
    "inputs_digest",
    "source_digest",
    "stage_digest",
    "reuse_problem",
    "reusable_stage",
    "tool_versions",
]

SCHEMA = "gimm-export/1"
MANIFEST = "manifest.json"


def read_manifest(export_dir) -> dict:
    """The manifest of ``export_dir``; ExportError when it is missing or not one of ours."""
    path = Path(export_dir) / MANIFEST
    if not path.is_file():
        raise ExportError(f"{export_dir} is not a gimm-export directory (no {MANIFEST}); create one with gimm-export")
    try:
        data = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as err:
        raise ExportError(f"{path} is not valid JSON ({err}); re-run gimm-export") from None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise ExportError(f"{path} is not a {SCHEMA} manifest; re-run gimm-export")
    stages = data.get("stages", {})
    if not isinstance(stages, dict):
        raise ExportError(f"{path} lists its stages as {type(stages).__name__}, not by name; re-run gimm-export")
    for stage, entry in stages.items():
        if isinstance(entry, dict) and "file" in entry:  # an entry without one is named where its file is needed
            export_file(export_dir, entry["file"], f"{path}: the {stage} stage's file")
    return data


def export_file(export_dir, name, what: str) -> Path:
    """``export_dir / name`` for a file name an export lists (``what``: which, and where), checked before the file is
    opened: an ExportError unless it lies inside ``export_dir``, so an export from elsewhere makes us read or run
    nothing outside its folder. Refused: a name that is not a relative path (absolute, a drive, empty), one with
    a ``..`` part, and one that resolves outside the folder (through a symlink, of the file or of a folder on the
    way)."""
    folder = Path(export_dir)
    if not isinstance(name, str) or not name or "\0" in name:
        raise ExportError(f"{what} is {name!r}, not a file name; re-run gimm-export")
    as_windows = PureWindowsPath(name)  # both separators, and drives
    if PurePosixPath(name).is_absolute() or as_windows.anchor or ".." in as_windows.parts:
        raise ExportError(
            f"{what} {name!r} lies outside the export folder (an absolute path or '..'): an export's "
            "files must lie in its folder; re-run gimm-export"
        )
    path = folder / name
    try:
        inside = path.resolve().is_relative_to(folder.resolve())
    except (OSError, RuntimeError):  # a symlink loop
        inside = False
    if not inside:
        raise ExportError(
            f"{what} {name!r} leads outside the export folder (a symlink): an export's files must lie "
            "in its folder; re-run gimm-export"
        )
    return path


def write_manifest(export_dir, data: dict) -> Path:
    return write_json(data, Path(export_dir) / MANIFEST)


# the other flow estimator's files: an edit there leaves this variant's graphs as they are
_OTHER_ESTIMATOR = {"r": ("flow/flowformer.py", "flow/twins.py"), "f": ("flow/raft.py",)}


def source_digest(arch: str) -> str:
    """sha256 over the gimm_trt sources the graphs of ``arch`` (``"r"``/``"f"``) are made by (model, plugins,
    the trace and graph passes): an edited model invalidates exports while the package version stays the same."""
    root = Path(__file__).resolve().parent.parent
    skip = {root / "model" / name for name in _OTHER_ESTIMATOR[arch]}
    files = [
        *(root / "model").rglob("*.py"),
        *(root / "model").rglob("*.json"),
        *(root / "plugins").rglob("*.py"),
        *(root / "export" / name for name in ("graphs.py", "passes.py", "fp16.py")),
    ]
    digest = hashlib.sha256()
    for path in sorted(set(files) - skip):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def inputs_digest(fields: dict) -> str:
    """sha256 of the export's inputs (a JSON-able dict, key order irrelevant)."""
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()


# what each graph does not depend on: a re-export that changes only these keeps the stage's file
_STAGE_IGNORES = {
    "flow": ("splat", "resolution"),
    "synthesis": ("splat", "resolution"),
    "motion": ("resolution", "padded_size", "ds_scale"),
}


def stage_digest(fields: dict, stage: str) -> str:
    """sha256 of the inputs one stage's graph depends on."""
    kept = {k: v for k, v in fields.items() if k not in _STAGE_IGNORES[stage]}
    return inputs_digest({**kept, "stage": stage})


def reusable_stage(export_dir, stage: str, digest: str):
    """The ONNX file of ``stage`` in ``export_dir`` when its manifest entry was made from ``digest`` and the
    file is intact; else None. Reads the manifest even when the export as a whole differs."""
    try:
        entry = read_manifest(export_dir)["stages"][stage]
        path = Path(export_dir) / entry["file"]
        if entry.get("inputs_sha256") == digest and path.is_file() and sha256_file(path) == entry.get("sha256"):
            return path
    except (ExportError, KeyError, TypeError):
        pass
    return None


def tool_versions() -> dict:
    import importlib.metadata as md

    from ..core.version import __version__

    versions = {"gimm_trt": __version__}
    for dist in ("torch", "onnx", "onnxscript", "onnx-ir", "onnxruntime", "onnxruntime-extensions"):
        try:
            versions[dist] = md.version(dist)
        except md.PackageNotFoundError:
            versions[dist] = None
    return versions


def reuse_problem(export_dir, digest: str):
    """None when ``export_dir`` holds a complete export with inputs ``digest``; else why it must be redone."""
    export_dir = Path(export_dir)
    if not (export_dir / MANIFEST).is_file():
        return "no manifest"
    try:
        data = read_manifest(export_dir)
    except ExportError as err:
        return str(err)
    if data.get("inputs_sha256") != digest:
        return "made from different inputs"
    for entry in data.get("stages", {}).values():
        path = export_dir / entry["file"]
        if not path.is_file():
            return f"{entry['file']} is missing"
        if sha256_file(path) != entry.get("sha256"):
            return f"{entry['file']} does not match its manifest"
    return None


@dataclass(frozen=True, kw_only=True)
class ExportInfo:
    """What a runtime needs from a manifest: sizes, scale, precision, splat form, tensor names."""

    path: Path
    variant: str
    precision: str
    weights: str
    ds_scale: float
    padded_size: tuple  # (Hp, Wp)
    processing_size: tuple  # (h, w)
    resolution: str
    max_timesteps: int
    splat: str
    stages: dict  # stage -> manifest entry (file, inputs, outputs, sha256, ...)

    @classmethod
    def read(cls, export_dir) -> ExportInfo:
        path = Path(export_dir)
        data = read_manifest(path)
        try:
            return cls(
                path=path,
                variant=data["variant"],
                precision=data["precision"],
                weights=data["weights"],
                ds_scale=float(data["ds_scale"]),
                padded_size=tuple(data["padded_size"]),
                processing_size=tuple(data["processing_size"]),
                resolution=data["resolution"]["name"],
                max_timesteps=int(data["max_timesteps"]),
                splat=data["splat"]["form"],
                stages=data["stages"],
            )
        except (KeyError, TypeError) as err:
            raise ExportError(f"{path / MANIFEST} lacks {err}; re-run gimm-export") from None

    def onnx_path(self, stage: str) -> Path:
        return self.path / self.stages[stage]["file"]

    def verify_files(self) -> None:
        """ExportError unless every stage's file is there with the sha256 the manifest records: a damaged or
        changed graph would otherwise run and give wrong frames (hashing reads each file once, about 0.1 s per
        100 MB)."""
        for stage, entry in self.stages.items():
            try:
                path, recorded = self.path / entry["file"], entry["sha256"]
            except (KeyError, TypeError):
                raise ExportError(
                    f"{self.path / MANIFEST} lacks the file or sha256 of the {stage} stage; re-run gimm-export"
                ) from None
            if not path.is_file():
                raise ExportMissingError(f"{path} is missing from the export; re-run gimm-export")
            if sha256_file(path) != recorded:
                raise ExportError(
                    f"{path} does not match the sha256 its manifest records: the file is damaged or "
                    "was changed after export; re-run gimm-export"
                )

    def check_frames(self, height: int, width: int) -> None:
        """ExportError unless frames of ``height`` x ``width`` pad to the size this export was made for."""
        padded = padded_size(height, width, self.ds_scale)
        if padded != self.padded_size:
            hp, wp = self.padded_size
            raise ExportError(
                f"frames of {width}x{height} (padded to {padded[1]}x{padded[0]}) do not fit this export "
                f"({self.path}), made for frames that pad to {wp}x{hp} ({self.resolution}); export for "
                f"{width}x{height} with gimm-export --resolution {width}x{height}"
            )

    def check_ds(self, ds: float) -> None:
        if float(ds) != self.ds_scale:
            raise ExportError(
                f"this export ({self.path}) was made for ds_scale={self.ds_scale}; got ds_scale={ds} "
                f"(re-export with --ds-scale {ds})"
            )

    def check_padded(self, img, ds: float) -> None:
        """What the exported flow stage is given: frames already padded to the export's size, at its ds."""
        self.check_ds(ds)
        if tuple(img.shape[-2:]) != self.padded_size:
            self.check_frames(*img.shape[-2:])  # names the export's size when the frames pad to another
            raise ExportError(
                f"flow takes frames padded to {self.padded_size}, got {tuple(img.shape[-2:])} (Interpolator pads them)"
            )
