"""The ``onnxruntime`` backend: the three graphs of a ``gimm-export`` directory run by ONNX Runtime.

CUDA execution provider for ``device="cuda"`` (inputs and outputs stay on the GPU through IO binding), CPU
otherwise. Graphs with the splat custom node run its onnxruntime-extensions implementation; portable graphs
need nothing extra.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..core.stages import IO, STAGES
from ..export.exporter import PRECISIONS as EXPORT_PRECISIONS
from ..export.ort import ort_session, providers_for, run_on_cpu
from .exported_backend import ExportedBackend

__all__ = ["OrtBackend", "OrtOptions"]


@dataclass(frozen=True, kw_only=True)
class OrtOptions:
    """Options of the onnxruntime backend: ``threads`` per session (0: ONNX Runtime's default)."""

    threads: int = 0


class OrtBackend(ExportedBackend):
    """Runs an export with ONNX Runtime."""

    name = "onnxruntime"
    # portable splats: stock ONNX Runtime runs them on any provider, the custom op is a CPU Python callback
    precisions = {"cpu": EXPORT_PRECISIONS, "cuda": EXPORT_PRECISIONS}
    options_type = OrtOptions
    needs = ("onnxruntime", "onnx")
    runs_exports = True
    splat = "portable"

    def __init__(self, export_dir, *, device="cpu", options: OrtOptions = None):
        super().__init__(export_dir, device=device)
        options = self.make_options(options)
        providers = providers_for(self.device)
        self.sessions = {
            s: ort_session(self.info.onnx_path(s), providers=providers, threads=options.threads) for s in STAGES
        }
        self._outputs = {s: [(o["name"], o["shape"]) for o in self.info.stages[s]["outputs"]] for s in STAGES}

    @classmethod
    def check(cls, device, precision=None):
        dev = super().check(device, precision)
        providers_for(dev)  # DeviceError when CUDA is asked for and this ORT has no CUDA provider
        return dev

    def _run(self, stage: str, feed: dict) -> dict:
        inputs, outputs = IO[stage]
        feed = {k: feed[k] for k in inputs}
        if self.device.type != "cuda":
            return run_on_cpu(self.sessions[stage], stage, feed)
        return self._run_bound(stage, feed)

    def _run_bound(self, stage: str, feed: dict) -> dict:
        # IO binding: ORT reads torch's device memory and writes into tensors torch allocated
        import numpy as np

        session = self.sessions[stage]
        timesteps = feed["t"].shape[0] if "t" in feed else 1
        index = self.device.index if self.device.index is not None else torch.cuda.current_device()
        binding = session.io_binding()
        keep = []
        for name, tensor in feed.items():
            tensor = tensor.to(self.device, torch.float32).contiguous()
            keep.append(tensor)
            binding.bind_input(name, "cuda", index, np.float32, tuple(tensor.shape), tensor.data_ptr())
        outs = {}
        for name, dims in self._outputs[stage]:
            shape = tuple(timesteps if d == "T" else d for d in dims)
            out = torch.empty(shape, dtype=torch.float32, device=self.device)
            binding.bind_output(name, "cuda", index, np.float32, shape, out.data_ptr())
            outs[name] = out
        torch.cuda.current_stream(self.device).synchronize()  # ORT runs on its own stream
        session.run_with_iobinding(binding)  # synchronises its stream before returning
        return outs
