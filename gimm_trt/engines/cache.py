"""The engine cache: names, hashes, atomic writes and a lock that works across processes.

An engine is named by everything it is bound to (DESIGN.md, "Export directory")::

    engines/<stage>.<gpu>-sm<cc>.trt<version>.<onnx-sha12>[.t<min>-<opt>-<max>].plan
    engines/timing.<gpu>-sm<cc>.trt<version>.cache

so a plan built for another GPU, compute capability, TensorRT version, ONNX file or timestep profile is
never loaded: its name does not match the key that is asked for. (The ``.t1-7-8`` part extends DESIGN's
name: a plan built for at most 4 timesteps must not be picked when 8 are asked for. Graphs without a
timestep axis, the flow stage, have no such part.) Plans are written to a temporary file in the same
directory, fsynced, then renamed over the final name, so a reader sees a whole plan or none.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
import threading
from dataclasses import dataclass, fields
from pathlib import Path
from typing import NamedTuple

from .compat import Target

__all__ = [
    "ENGINE_DIR", "EngineKey", "PlanName", "EngineMissingError", "sha256_file", "atomic_write", "file_lock",
    "parse_plan_name", "explain_missing", "remove_stale_tmp", "timing_name",
]

ENGINE_DIR = "engines"  # under the export directory
_SHA_CHARS = 12  # of the ONNX sha256 in a plan name; the key keeps all 64

_SAFE = {
    "stage": re.compile(r"[a-z0-9_]+"),
    "gpu": re.compile(r"[a-z0-9][a-z0-9-]*"),
    "sm": re.compile(r"[0-9]+"),
    "trt_version": re.compile(r"[0-9][0-9A-Za-z.+_-]*"),
    "onnx_sha256": re.compile(r"[0-9a-f]{64}"),
    "profile": re.compile(r"(t[0-9]+-[0-9]+-[0-9]+)?"),
}
_LABELS = {"stage": "stage", "gpu": "GPU", "sm": "compute capability", "trt_version": "TensorRT version",
           "onnx_sha256": "ONNX hash"}


class EngineMissingError(FileNotFoundError):
    """No plan matches the key and building is off; the message says which of its parts differ."""


class PlanName(NamedTuple):
    """A plan file name read back: the key's parts, with only 12 characters of the ONNX hash."""

    stage: str
    gpu: str
    sm: str
    trt_version: str
    onnx_sha12: str
    profile: str = ""


@dataclass(frozen=True, kw_only=True)
class EngineKey:
    """Everything a serialized engine is bound to. Two keys are equal exactly when one plan serves both."""

    stage: str
    gpu: str
    sm: str
    trt_version: str
    onnx_sha256: str
    profile: str = ""  # "t<min>-<opt>-<max>" of the timestep axis; "" for a graph without one

    def __post_init__(self):
        for field in fields(self):
            value = getattr(self, field.name)
            if not isinstance(value, str) or not _SAFE[field.name].fullmatch(value):
                raise ValueError(f"EngineKey.{field.name} must match {_SAFE[field.name].pattern}, got {value!r}")

    @classmethod
    def of(cls, stage: str, onnx_path, target: Target, profile: str = "") -> "EngineKey":
        """The key of the engine for ``onnx_path`` on ``target`` (hashes the file)."""
        return cls(stage=stage, gpu=target.gpu, sm=target.sm, trt_version=target.trt_version,
                   onnx_sha256=sha256_file(onnx_path), profile=profile)

    @property
    def target(self) -> Target:
        return Target(gpu=self.gpu, sm=self.sm, trt_version=self.trt_version)

    @property
    def plan_name(self) -> str:
        profile = f".{self.profile}" if self.profile else ""
        return f"{self.stage}.{_platform(self.target)}.{self.onnx_sha256[:_SHA_CHARS]}{profile}.plan"

    @property
    def timing_name(self) -> str:
        return timing_name(self.target)

    def differences(self, plan: PlanName) -> list:
        """Human-readable differences between this key and a plan found on disk (empty: it matches)."""
        found = []
        for name in ("stage", "gpu", "sm", "trt_version"):
            if getattr(self, name) != getattr(plan, name):
                found.append(f"{_LABELS[name]} (plan: {getattr(plan, name)}, wanted: {getattr(self, name)})")
        if self.onnx_sha256[:_SHA_CHARS] != plan.onnx_sha12:
            found.append(f"{_LABELS['onnx_sha256']} (plan: {plan.onnx_sha12}, wanted: "
                         f"{self.onnx_sha256[:_SHA_CHARS]}: the ONNX file changed after the plan was built)")
        if self.profile != plan.profile:
            found.append(f"timestep profile (plan: {plan.profile or 'none'}, wanted: {self.profile or 'none'})")
        return found


def _platform(target: Target) -> str:
    return f"{target.gpu}-sm{target.sm}.trt{target.trt_version}"


def timing_name(target: Target) -> str:
    """The timing cache file name: one per GPU and TensorRT version, shared by the stages (tactic timings
    are per layer and shape, not per network)."""
    return f"timing.{_platform(target)}.cache"


def parse_plan_name(name: str):
    """The ``PlanName`` of a file name written by ``EngineKey.plan_name``, or None for any other name."""
    match = re.fullmatch(r"(?P<stage>[a-z0-9_]+)\.(?P<gpu>[a-z0-9][a-z0-9-]*)-sm(?P<sm>[0-9]+)"
                         r"\.trt(?P<trt>[0-9][0-9A-Za-z.+_-]*)\.(?P<sha>[0-9a-f]{12})"
                         r"(?:\.(?P<profile>t[0-9]+-[0-9]+-[0-9]+))?\.plan", name)
    if match is None:
        return None
    return PlanName(match["stage"], match["gpu"], match["sm"], match["trt"], match["sha"], match["profile"] or "")


def explain_missing(key: EngineKey, engine_dir) -> str:
    """Why no plan in ``engine_dir`` serves ``key``: each plan of the same stage and what differs."""
    engine_dir = Path(engine_dir)
    lines = [f"no TensorRT engine for stage {key.stage!r} matches this machine in {engine_dir}, and building "
             f"is off; wanted {key.plan_name}"]
    plans = sorted(engine_dir.glob(f"{key.stage}.*.plan")) if engine_dir.is_dir() else []
    for path in plans:
        plan = parse_plan_name(path.name)
        if plan is not None and plan.stage == key.stage:
            lines.append(f"  {path.name} differs in " + "; ".join(key.differences(plan)))
    if len(lines) == 1:
        lines.append("  (no plan for this stage was found)")
    lines.append("build it with gimm_trt.engines.build_engines(export_dir) or `gimm-export --build-engines`")
    return "\n".join(lines)


def sha256_file(path, chunk_bytes: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks so a large ONNX file never sits in memory twice."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk_bytes), b""):
            digest.update(block)
    return digest.hexdigest()


def _tmp_prefix(path: Path) -> str:
    return f".{path.name}."


def atomic_write(path, data) -> Path:
    """Write ``data`` to ``path`` so that readers see the old file, or the whole new one, never a part.

    ``data`` is bytes-like (bytes, memoryview, ``trt.IHostMemory``) or a callable that writes into the open
    binary file. The bytes go to a temporary file in the same directory (same file system, so the rename
    is atomic), are flushed and fsynced, then ``os.replace`` puts them under the final name. On any error
    the temporary file is removed and the old file, if any, is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=_tmp_prefix(path), suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            if callable(data):
                data(f)
            else:
                f.write(memoryview(data))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)  # make the rename itself durable
    return path


def remove_stale_tmp(path) -> None:
    """Remove temporary files a killed writer of ``path`` left; call only under the lock its writers take."""
    path = Path(path)
    for tmp in path.parent.glob(f"{_tmp_prefix(path)}*.tmp"):
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def _fsync_dir(directory: Path) -> None:
    if os.name != "posix":  # directories cannot be opened for fsync on Windows; NTFS renames are journaled
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_thread_locks: dict = {}
_thread_locks_guard = threading.Lock()


def _thread_lock(lock_path: str) -> threading.Lock:
    with _thread_locks_guard:
        return _thread_locks.setdefault(lock_path, threading.Lock())


@contextlib.contextmanager
def file_lock(path):
    """Exclusive lock on ``path`` for other processes and other threads of this one.

    Across processes this is Polygraphy's ``util.LockFile`` (``fcntl.lockf`` on ``<path>.lock``, msvcrt on
    Windows); it waits, no timeout. POSIX record locks belong to a process, so two threads of one process
    would both get them, and one closing its handle would drop the other's: a per-path thread lock comes
    first. The ``.lock`` file stays (deleting it would let a late opener lock a different inode).
    """
    from polygraphy import util

    path = str(Path(path))
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with _thread_lock(os.path.abspath(path)), util.LockFile(path):
        yield
