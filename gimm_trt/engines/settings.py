"""The builder settings an engine is built with, described once: they configure the build and name the plan.

A plan built with other settings computes differently (TF32 rounds fp32 inner products to 10-bit mantissas; a
network that is not strongly typed lets TensorRT choose layer precisions), so the settings are part of the
``EngineKey`` and its plan name, as a tag such as ``typed-notf32``: one code per setting, ``no`` in front
when it is off.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields

from ..core.errors import InputError

__all__ = ["BuilderSettings", "TAG_PATTERN"]

# setting -> its code in the tag; the order is the tag's order
_CODES = {"strongly_typed": "typed", "tf32": "tf32"}
TAG_PATTERN = "-".join(f"(?:no)?{code}" for code in _CODES.values())


@dataclass(frozen=True, kw_only=True)
class BuilderSettings:
    """How every engine is built, whatever the family.

    ``strongly_typed``: layer types follow the ONNX graph (fp16 engines come from the fp16 graph with its fp32
    islands; TensorRT 11 has no ``BuilderFlag.FP16``). ``tf32``: fp32 matmuls and convolutions may use TF32
    (off, so fp32 engines compare with the reference).
    """

    strongly_typed: bool = True
    tf32: bool = False

    def __post_init__(self):
        for field in fields(self):
            if not isinstance(getattr(self, field.name), bool):
                raise InputError(
                    f"BuilderSettings.{field.name} must be True or False, got {getattr(self, field.name)!r}"
                )

    @property
    def tag(self) -> str:
        """``"typed-notf32"``: the part of a plan's name that says how it was built."""
        return "-".join(code if getattr(self, name) else f"no{code}" for name, code in _CODES.items())

    @classmethod
    def from_tag(cls, tag: str) -> BuilderSettings:
        """The settings a ``tag`` was written from; InputError for any other string."""
        match = re.fullmatch(TAG_PATTERN, tag)
        if match is None:
            raise InputError(f"builder settings tag must match {TAG_PATTERN}, got {tag!r}")
        return cls(**{name: not part.startswith("no") for name, part in zip(_CODES, tag.split("-"))})

    def differences(self, other: BuilderSettings) -> list:
        """``["tf32 (plan: on, wanted: off)", ...]``: the settings where ``other`` (a plan's) differs."""
        on = {True: "on", False: "off"}
        return [
            f"{name} (plan: {on[getattr(other, name)]}, wanted: {on[getattr(self, name)]})"
            for name in _CODES
            if getattr(self, name) != getattr(other, name)
        ]

    def network_flags(self, trt) -> int:
        """``NetworkDefinitionCreationFlag`` bits for ``Builder.create_network`` of module ``trt``."""
        return 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED) if self.strongly_typed else 0

    def configure(self, config, trt) -> None:
        """Set these settings on an ``IBuilderConfig`` of module ``trt``."""
        (config.set_flag if self.tf32 else config.clear_flag)(trt.BuilderFlag.TF32)
