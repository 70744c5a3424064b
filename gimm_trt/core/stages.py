"""The three stages, the names of their tensors, and the timestep axis.

The ONNX graphs, the TensorRT engines and every backend use exactly these names. ``T`` is the one dynamic
axis: the first axis of ``t``, ``flowt`` and ``frames``.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import InputError

__all__ = [
    "STAGES",
    "FLOW_INPUTS",
    "FLOW_OUTPUTS",
    "MOTION_INPUTS",
    "MOTION_OUTPUTS",
    "SYNTHESIS_INPUTS",
    "SYNTHESIS_OUTPUTS",
    "IO",
    "T_AXIS",
    "T_INPUTS",
    "T_OUTPUTS",
    "TimestepProfile",
]

STAGES = ("flow", "motion", "synthesis")
FLOW_INPUTS = ("img0", "img1")
FLOW_OUTPUTS = ("flow01", "flow10", "feat4_0", "feat4_1", "feat8_0", "feat8_1", "corr0", "corr1")
MOTION_INPUTS = ("flow01", "flow10", "t")
MOTION_OUTPUTS = ("flowt",)
SYNTHESIS_INPUTS = ("img0", "img1", "feat4_0", "feat4_1", "feat8_0", "feat8_1", "corr0", "corr1", "flowt", "t")
SYNTHESIS_OUTPUTS = ("frames",)
IO = {
    "flow": (FLOW_INPUTS, FLOW_OUTPUTS),
    "motion": (MOTION_INPUTS, MOTION_OUTPUTS),
    "synthesis": (SYNTHESIS_INPUTS, SYNTHESIS_OUTPUTS),
}

T_AXIS = "T"
T_INPUTS = ("t", "flowt")  # inputs whose first axis is T
T_OUTPUTS = ("flowt", "frames")


@dataclass(frozen=True)
class TimestepProfile:
    """How many timesteps one motion/synthesis call takes: TensorRT builds for ``min..max``, tuned at ``opt``.

    The default serves ``factor=8`` (7 new frames per pair) in one call. ``TimestepProfile.up_to(n)`` is the
    profile of engines that take at most ``n`` timesteps.
    """

    max: int = 8
    opt: int = 7
    min: int = 1

    def __post_init__(self):
        for name in ("min", "opt", "max"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise InputError(f"timestep profile {name} must be an integer >= 1, got {value!r}")
        if not self.min <= self.opt <= self.max:
            raise InputError(f"timestep profile needs min <= opt <= max, got {self.min}, {self.opt}, {self.max}")

    @classmethod
    def up_to(cls, max_timesteps: int) -> TimestepProfile:
        return cls(max=max_timesteps, opt=min(cls.opt, max_timesteps) if isinstance(max_timesteps, int) else 1)

    @property
    def tag(self) -> str:
        """``"t1-7-8"``: the part of a plan's name that says which profile it was built for."""
        return f"t{self.min}-{self.opt}-{self.max}"

    def as_dict(self) -> dict:
        return {"min": self.min, "opt": self.opt, "max": self.max}
