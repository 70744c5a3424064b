"""The engine cache: plan and timing-cache names, and why a plan on disk does not serve a key.

An engine is named by everything it is bound to::

    engines/<stage>.<gpu>-sm<cc>.trt<version>.<settings>.<onnx-sha12>[.t<min>-<opt>-<max>].plan   (tensorrt)
    engines/<stage>.sm<ccs>.rtx<version>.<settings>.<onnx-sha12>[.t<min>-<opt>-<max>].plan        (tensorrt-rtx)
    engines/timing.<gpu>-sm<cc>.trt<version>.cache

so a plan built for another engine family, GPU, compute capability (or set of them, for TensorRT-RTX's
ahead-of-time builds: ``default`` or ``86_89``), library version, builder settings (``BuilderSettings.tag``),
ONNX file or timestep profile is never loaded: its name does not match the key that is asked for (a plan built
for at most 4 timesteps must not be picked when 8 are asked for; the flow stage has no timestep axis and no
such part). A stage may be a part of one (``motion.0``). Plans are written with ``core.files.atomic_write``, so a
reader sees a whole plan or none.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from pathlib import Path
from typing import NamedTuple

from ..core.errors import InputError
from ..core.files import sha256_file
from ..core.trt import FAMILIES
from .compat import AOT_SM, PATTERNS, Target
from .settings import TAG_PATTERN, BuilderSettings

__all__ = ["ENGINE_DIR", "EngineKey", "PlanName", "parse_plan_name", "explain_missing", "timing_name"]

ENGINE_DIR = "engines"  # under the export directory
_SHA_CHARS = 12  # of the ONNX sha256 in a plan name; the key keeps all 64

# every part of a plan name, as a regular expression (the Target's parts come from compat)
_PROFILE = r"t[0-9]+-[0-9]+-[0-9]+"  # TimestepProfile.tag
_STAGE = r"[a-z0-9_]+(?:\.[0-9]+)?"  # a stage, or a numbered part of one ("motion.0")
_SAFE = {"stage": _STAGE, "settings": TAG_PATTERN, "onnx_sha256": r"[0-9a-f]{64}", "profile": rf"({_PROFILE})?"}
_VERSION = PATTERNS["trt_version"]
_PLAN_NAME = re.compile(
    rf"(?P<stage>{_STAGE})\."
    rf"(?:(?P<gpu>{PATTERNS['gpu']})-sm(?P<sm>{PATTERNS['sm']})\.trt(?P<trt>{_VERSION})"
    rf"|sm(?P<ccs>{AOT_SM})\.rtx(?P<rtx>{_VERSION}))"
    rf"\.(?P<settings>{TAG_PATTERN})\.(?P<sha>[0-9a-f]{{{_SHA_CHARS}}})(?:\.(?P<profile>{_PROFILE}))?\.plan"
)
_LABELS = {
    "family": "engine family",
    "gpu": "GPU",
    "sm": "compute capability",
    "trt_version": "TensorRT version",
    "onnx_sha256": "ONNX hash",
}


class PlanName(NamedTuple):
    """A plan file name read back: the key's parts, with only 12 characters of the ONNX hash."""

    stage: str
    family: str
    gpu: str
    sm: str
    trt_version: str
    settings: str
    onnx_sha12: str
    profile: str = ""


@dataclass(frozen=True, kw_only=True)
class EngineKey:
    """Everything a serialized engine is bound to. Two keys are equal exactly when one plan serves both.

    ``family``, ``gpu``, ``sm``, ``trt_version`` are a ``compat.Target``'s parts; ``settings`` is a
    ``BuilderSettings.tag``.
    """

    stage: str
    family: str = "tensorrt"
    gpu: str
    sm: str
    trt_version: str
    settings: str = BuilderSettings().tag
    onnx_sha256: str
    profile: str = ""  # "t<min>-<opt>-<max>" of the timestep axis; "" for a graph without one

    def __post_init__(self):
        for field in fields(self):
            value = getattr(self, field.name)
            if field.name in _SAFE and (not isinstance(value, str) or not re.fullmatch(_SAFE[field.name], value)):
                raise InputError(f"EngineKey.{field.name} must match {_SAFE[field.name]}, got {value!r}")
        _ = self.target  # validates the family, GPU, compute capability and version

    @classmethod
    def of(
        cls, stage: str, onnx_path, target: Target, profile: str = "", settings: BuilderSettings = BuilderSettings()
    ) -> EngineKey:
        """The key of the engine for ``onnx_path`` on ``target`` built with ``settings`` (hashes the file)."""
        return cls(
            stage=stage,
            family=target.family,
            gpu=target.gpu,
            sm=target.sm,
            trt_version=target.trt_version,
            settings=settings.tag,
            onnx_sha256=sha256_file(onnx_path),
            profile=profile,
        )

    @property
    def target(self) -> Target:
        return Target(family=self.family, gpu=self.gpu, sm=self.sm, trt_version=self.trt_version)

    @property
    def builder_settings(self) -> BuilderSettings:
        return BuilderSettings.from_tag(self.settings)

    @property
    def plan_name(self) -> str:
        profile = f".{self.profile}" if self.profile else ""
        sha = self.onnx_sha256[:_SHA_CHARS]
        return f"{self.stage}.{_platform(self.target)}.{self.settings}.{sha}{profile}.plan"

    @property
    def timing_name(self) -> str:
        return timing_name(self.target)

    def differences(self, plan: PlanName) -> list:
        """Human-readable differences between this key and a plan found on disk (empty: it matches)."""
        found = []
        for name in ("stage", "family", "gpu", "sm", "trt_version"):
            if getattr(self, name) != getattr(plan, name):
                label = _LABELS.get(name, name)
                if name == "sm" and FAMILIES[self.family].aot:
                    label = "target compute capabilities"
                if name == "trt_version":
                    label = f"{FAMILIES[self.family].title} version"
                found.append(
                    f"{label} (plan: {getattr(plan, name) or 'none'}, wanted: {getattr(self, name) or 'none'})"
                )
        if self.settings != plan.settings:
            what = "; ".join(self.builder_settings.differences(BuilderSettings.from_tag(plan.settings)))
            found.append(f"builder settings (plan: {plan.settings}, wanted: {self.settings}: {what})")
        if self.onnx_sha256[:_SHA_CHARS] != plan.onnx_sha12:
            found.append(
                f"{_LABELS['onnx_sha256']} (plan: {plan.onnx_sha12}, wanted: "
                f"{self.onnx_sha256[:_SHA_CHARS]}: the ONNX file changed after the plan was built)"
            )
        if self.profile != plan.profile:
            found.append(f"timestep profile (plan: {plan.profile or 'none'}, wanted: {self.profile or 'none'})")
        return found


def _platform(target: Target) -> str:
    family = FAMILIES[target.family]
    if family.aot:
        return f"sm{target.sm}.{family.tag}{target.trt_version}"
    return f"{target.gpu}-sm{target.sm}.{family.tag}{target.trt_version}"


def timing_name(target: Target) -> str:
    """The timing cache file name: one per GPU and TensorRT version, shared by the stages (tactic timings
    are per layer and shape, not per network)."""
    return f"timing.{_platform(target)}.cache"


def parse_plan_name(name: str):
    """The ``PlanName`` of a file name written by ``EngineKey.plan_name``, or None for any other name."""
    match = _PLAN_NAME.fullmatch(name)
    if match is None:
        return None
    if match["rtx"] is not None:
        family, gpu, sm, version = "tensorrt-rtx", "", match["ccs"], match["rtx"]
    else:
        family, gpu, sm, version = "tensorrt", match["gpu"], match["sm"], match["trt"]
    return PlanName(match["stage"], family, gpu, sm, version, match["settings"], match["sha"], match["profile"] or "")


def explain_missing(key: EngineKey, engine_dir) -> str:
    """Why no plan in ``engine_dir`` serves ``key``: each plan of the same stage and what differs."""
    engine_dir = Path(engine_dir)
    lines = [
        f"no {key.family} engine for stage {key.stage!r} matches this machine in {engine_dir}, and building "
        f"is off; wanted {key.plan_name}"
    ]
    plans = sorted(engine_dir.glob(f"{key.stage}.*.plan")) if engine_dir.is_dir() else []
    for path in plans:
        plan = parse_plan_name(path.name)
        if plan is not None and plan.stage == key.stage:
            lines.append(f"  {path.name} differs in " + "; ".join(key.differences(plan)))
    if len(lines) == 1:
        lines.append("  (no plan for this stage was found)")
    family = "" if key.family == "tensorrt" else f", family={key.family!r}"
    lines.append(f"build it with gimm_trt.engines.build_engines(export_dir{family}) or `gimm-export --build-engines`")
    return "\n".join(lines)
