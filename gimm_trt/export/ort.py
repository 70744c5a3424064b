"""ONNX Runtime sessions for exported graphs: providers per device, splat custom nodes mapped to the ORT op."""

from __future__ import annotations

import torch

from ..core import deps
from ..core.errors import DeviceError
from ..core.stages import IO
from ..plugins import onnx_node, schema

__all__ = ["import_ort", "providers_for", "ort_session", "run_on_cpu", "part_runner"]


def import_ort():
    """The ``onnxruntime`` module, or MissingDependency saying how to install it."""
    return deps.require("onnxruntime", "the onnxruntime backend")


def providers_for(device) -> list:
    """ONNX Runtime providers for a ``torch.device``; DeviceError when CUDA is asked for and ORT has none."""
    ort = import_ort()
    if device.type != "cuda":
        return ["CPUExecutionProvider"]
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        raise DeviceError(
            f"device {str(device)!r}: this onnxruntime has no CUDA execution provider (providers: "
            f"{', '.join(ort.get_available_providers())}); install onnxruntime-gpu or use device='cpu'"
        )
    return [("CUDAExecutionProvider", {"device_id": device.index or 0}), "CPUExecutionProvider"]


def ort_session(path, *, providers, threads: int = 0):
    """An ``InferenceSession`` for one graph; splat custom nodes are mapped to the ORT custom op first."""
    import onnx

    ort = import_ort()
    model = onnx.load(str(path))
    custom = any(n.domain == schema.NAMESPACE for n in model.graph.node)
    options = onnx_node.session_options() if custom else ort.SessionOptions()
    options.log_severity_level = 3  # ORT warns about every initializer its own fusions make unused
    options.intra_op_num_threads = threads
    source = onnx_node.for_onnxruntime(model).SerializeToString() if custom else str(path)
    return ort.InferenceSession(source, options, providers=providers)


def run_on_cpu(session, stage: str, feed: dict) -> dict:
    """``stage``'s outputs by name (CPU float32 tensors) from a CPU ``session`` of its graph; ``feed`` maps at
    least the stage's input names to tensors, on any device and of any float type."""
    inputs, outputs = IO[stage]
    arrays = {k: feed[k].detach().to("cpu", torch.float32).contiguous().numpy() for k in inputs}
    return {name: torch.from_numpy(value) for name, value in zip(outputs, session.run(list(outputs), arrays))}


def part_runner(plan, export_dir=None, *, providers, threads: int = 0):
    """``run_part`` for ``partition.run_partitioned``: one ONNX Runtime session per part of ``plan``.

    Parts come from their ``model`` when the plan was just made, else from their file in ``export_dir``.
    Feeds and results are torch tensors; ONNX Runtime sees them as CPU numpy arrays.
    """
    from pathlib import Path

    import torch

    ort = import_ort()
    sessions = {}
    for step in plan.parts:
        options = ort.SessionOptions()
        options.log_severity_level = 3  # as in ort_session
        options.intra_op_num_threads = threads
        source = step.model.SerializeToString() if step.model is not None else str(Path(export_dir) / step.file)
        sessions[step.index] = ort.InferenceSession(source, options, providers=providers)

    def run_part(step, feeds: dict) -> dict:
        arrays = {name: value.detach().cpu().contiguous().numpy() for name, value in feeds.items()}
        values = sessions[step.index].run(list(step.outputs), arrays)
        return {name: torch.from_numpy(value) for name, value in zip(step.outputs, values)}

    return run_part
