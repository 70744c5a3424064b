"""The ``onnxruntime`` backend: the three graphs of a ``gimm-export`` directory run by ONNX Runtime.

CUDA execution provider for ``device="cuda"`` (inputs and outputs stay on the GPU through IO binding), CPU
otherwise. Graphs with the splat custom node run its onnxruntime-extensions implementation
(``gimm_trt.plugins.onnx_node``); portable graphs need nothing extra.
"""
from __future__ import annotations

from pathlib import Path

import torch

from ..model.gimm import FLOW_OUTPUTS, SYNTHESIS_INPUTS
from .backends import resolve_device

__all__ = ["OrtBackend", "ort_session", "providers_for", "import_ort"]

STAGES = ("flow", "motion", "synthesis")
INSTALL_HINT = "pip install gimm-trt[onnx]"


def import_ort():
    """The ``onnxruntime`` module, or an ImportError that says how to install it."""
    try:
        import onnxruntime
    except ImportError as err:
        raise ImportError(f"the onnxruntime backend needs ONNX Runtime ({err}): `{INSTALL_HINT}`") from None
    return onnxruntime


def providers_for(device: torch.device) -> list:
    """ONNX Runtime providers for ``device``; ValueError when CUDA is asked for and ORT has no CUDA provider."""
    ort = import_ort()

    if device.type != "cuda":
        return ["CPUExecutionProvider"]
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        raise ValueError(f"device {str(device)!r}: this onnxruntime has no CUDA execution provider (providers: "
                         f"{', '.join(ort.get_available_providers())}); install onnxruntime-gpu or use device='cpu'")
    return [("CUDAExecutionProvider", {"device_id": device.index or 0}), "CPUExecutionProvider"]


def ort_session(path, *, providers, threads: int = 0):
    """An ``InferenceSession`` for one graph; splat custom nodes are mapped to the ORT custom op first."""
    import onnx

    from ..plugins import onnx_node, schema

    ort = import_ort()

    model = onnx.load(str(path))
    custom = any(n.domain == schema.NAMESPACE for n in model.graph.node)
    options = onnx_node.session_options() if custom else ort.SessionOptions()
    options.log_severity_level = 3  # ORT warns about every initializer its own fusions make unused
    options.intra_op_num_threads = threads
    source = onnx_node.for_onnxruntime(model).SerializeToString() if custom else str(path)
    return ort.InferenceSession(source, options, providers=providers)


class OrtBackend:
    """Runs an export with ONNX Runtime; ``ds_scale`` and the padded frame size are the export's."""

    name = "onnxruntime"

    def __init__(self, export_dir, *, device="cpu", threads: int = 0):
        from ..export.manifest import ExportInfo

        self.info = ExportInfo.read(export_dir)
        self.device = resolve_device(device)
        self.precision = self.info.precision
        self.ds_scale = self.info.ds_scale
        providers = providers_for(self.device)
        self.sessions = {s: ort_session(self.info.onnx_path(s), providers=providers, threads=threads) for s in STAGES}
        self._outputs = {s: [(o["name"], o["shape"]) for o in self.info.stages[s]["outputs"]] for s in STAGES}

    @property
    def export_dir(self) -> Path:
        return self.info.path

    def check_frames(self, height: int, width: int) -> None:
        self.info.check_frames(height, width)

    def flow(self, img0, img1, ds: float) -> dict:
        self.info.check_padded(img0, ds)
        return dict(zip(FLOW_OUTPUTS, self._run("flow", {"img0": img0, "img1": img1}, 1)))

    def motion(self, flow01, flow10, t) -> torch.Tensor:
        return self._run("motion", {"flow01": flow01, "flow10": flow10, "t": t}, t.shape[0])[0]

    def synthesis(self, img0, img1, feats: dict, flowt, t, ds: float) -> torch.Tensor:
        self.info.check_ds(ds)
        feed = {"img0": img0, "img1": img1, "flowt": flowt, "t": t, **feats}
        return self._run("synthesis", {k: feed[k] for k in SYNTHESIS_INPUTS}, t.shape[0])[0]

    def _run(self, stage: str, feed: dict, timesteps: int) -> list:
        session = self.sessions[stage]
        if self.device.type != "cuda":
            outs = session.run(None, {k: v.detach().to("cpu", torch.float32).contiguous().numpy()
                                      for k, v in feed.items()})
            return [torch.from_numpy(o) for o in outs]
        return self._run_bound(session, stage, feed, timesteps)

    def _run_bound(self, session, stage: str, feed: dict, timesteps: int) -> list:
        # IO binding: ORT reads torch's device memory and writes into tensors torch allocated
        import numpy as np

        index = self.device.index if self.device.index is not None else torch.cuda.current_device()
        binding = session.io_binding()
        keep = []
        for name, tensor in feed.items():
            tensor = tensor.to(self.device, torch.float32).contiguous()
            keep.append(tensor)
            binding.bind_input(name, "cuda", index, np.float32, tuple(tensor.shape), tensor.data_ptr())
        outs = []
        for name, dims in self._outputs[stage]:
            shape = tuple(timesteps if d == "T" else d for d in dims)
            out = torch.empty(shape, dtype=torch.float32, device=self.device)
            binding.bind_output(name, "cuda", index, np.float32, shape, out.data_ptr())
            outs.append(out)
        torch.cuda.current_stream(self.device).synchronize()  # ORT runs on its own stream
        session.run_with_iobinding(binding)  # synchronises its stream before returning
        return outs
