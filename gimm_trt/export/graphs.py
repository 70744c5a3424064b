"""The three stages as exportable modules, their example inputs, and the trace to ONNX.

Each graph module binds what the export fixes (the processing scale ``ds``) and takes exactly the tensors
named in ``gimm_trt.core.stages`` (``FLOW_INPUTS`` ...), so the ONNX input names are the stage's. Spatial
sizes are static; the one dynamic axis is ``T`` (timesteps), the first axis of ``t``, ``flowt`` and ``frames``.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ..core.errors import InputError
from ..core.stages import IO, STAGES, T_AXIS, T_INPUTS

__all__ = ["FlowGraph", "MotionGraph", "SynthesisGraph", "stage_module", "example_inputs", "dynamic_shapes", "trace"]

EXAMPLE_T = 3  # traced with 3 timesteps: 0 and 1 would be specialised by torch.export


class FlowGraph(nn.Module):
    """``FlowStage`` at a fixed ``ds``: (img0, img1) [1,3,Hp,Wp] -> ``FLOW_OUTPUTS``."""

    def __init__(self, flow: nn.Module, ds: float):
        super().__init__()
        self.flow = flow
        self.ds = float(ds)

    def forward(self, img0, img1):
        return tuple(self.flow(img0, img1, self.ds))


class MotionGraph(nn.Module):
    """``MotionNetwork`` as is: (flow01, flow10 [1,2,h,w], t [T]) -> flowt [T,2,h,w]."""

    def __init__(self, motion: nn.Module):
        super().__init__()
        self.motion = motion

    def forward(self, flow01, flow10, t):
        return self.motion(flow01, flow10, t)


class SynthesisGraph(nn.Module):
    """``Synthesis`` at a fixed ``ds``: ``SYNTHESIS_INPUTS`` -> frames [T,3,Hp,Wp]."""

    def __init__(self, synthesis: nn.Module, ds: float):
        super().__init__()
        self.synthesis = synthesis
        self.ds = float(ds)

    def forward(self, img0, img1, feat4_0, feat4_1, feat8_0, feat8_1, corr0, corr1, flowt, t):
        return self.synthesis(img0, img1, feat4_0, feat4_1, feat8_0, feat8_1, corr0, corr1, flowt, t, self.ds)


def stage_module(model: nn.Module, stage: str, ds: float) -> nn.Module:
    """The graph module of ``stage`` of a ``GIMMVFI``, in eval mode."""
    if stage == "flow":
        module = FlowGraph(model.flow, ds)
    elif stage == "motion":
        module = MotionGraph(model.motion)
    elif stage == "synthesis":
        module = SynthesisGraph(model.synthesis, ds)
    else:
        raise InputError(f"unknown stage {stage!r}: one of {STAGES}")
    return module.eval()


def example_inputs(stage: str, padded: tuple, processing: tuple, *, timesteps: int = EXAMPLE_T, seed: int = 0) -> tuple:
    """Random inputs of the right shapes (values do not matter to the trace; shapes do).

    Args:
        padded: (Hp, Wp) frame size after padding; processing: (h, w) = padded * ds.
    """
    g = torch.Generator().manual_seed(seed)
    hp, wp = padded
    h, w = processing
    t = torch.linspace(0.25, 0.75, timesteps)
    if stage == "flow":
        return torch.rand(1, 3, hp, wp, generator=g), torch.rand(1, 3, hp, wp, generator=g)
    if stage == "motion":
        return 3 * torch.randn(1, 2, h, w, generator=g), 3 * torch.randn(1, 2, h, w, generator=g), t
    if stage == "synthesis":
        # widths as FlowStage documents them
        def feat(c, s):
            return torch.randn(1, c, h // s, w // s, generator=g)

        return (
            torch.rand(1, 3, hp, wp, generator=g),
            torch.rand(1, 3, hp, wp, generator=g),
            feat(128, 4),
            feat(128, 4),
            feat(256, 8),
            feat(256, 8),
            feat(256, 8),
            feat(256, 8),
            3 * torch.randn(timesteps, 2, h, w, generator=g),
            t,
        )
    raise InputError(f"unknown stage {stage!r}: one of {STAGES}")


def dynamic_shapes(stage: str):
    """``dynamic_shapes`` for torch.export: axis 0 of ``t`` and ``flowt`` is ``T``; everything else static."""
    if stage == "flow":
        return None
    t_dim = torch.export.Dim(T_AXIS, min=1)
    inputs = IO[stage][0]
    return {name: ({0: t_dim} if name in T_INPUTS else None) for name in inputs}


def trace(module: nn.Module, args: tuple, *, stage: str, opset: int, splat: str):
    """torch -> ONNX with the dynamo exporter (``torch.onnx.export(dynamo=True)``); returns an ``onnx_ir.Model``.

    The exporter's own optimiser is off: its pattern rewriter is quadratic in graph size (minutes on the
    unrolled 20-32 flow iterations) and ``passes.clean`` does the folding and clean-up instead.
    ``splat``: ``"plugin"`` (one ``gimm_trt::splat`` node) or ``"portable"`` (standard ONNX ops).
    """
    import warnings

    from ..plugins import onnx_node
    from .passes import quiet

    inputs, outputs = IO[stage]
    with (
        onnx_node.export_splat_mode(splat) as table,
        torch.inference_mode(False),
        warnings.catch_warnings(),
        quiet("torch.onnx", "onnxscript"),
    ):
        warnings.simplefilter("ignore")  # the exporter's deprecation and tracer chatter
        program = torch.onnx.export(
            module,
            args,
            dynamo=True,
            opset_version=opset,
            custom_translation_table=table or None,
            input_names=list(inputs),
            output_names=list(outputs),
            dynamic_shapes=dynamic_shapes(stage),
            optimize=False,
            verbose=False,
            report=False,
        )
    return program.model
