"""What a benchmark row measures: stage and pair latency, peak memory, accuracy against the reference.

On CUDA, latencies come from CUDA events recorded on torch's current stream (every backend enqueues its work
there, see ``gimm_trt.engines.runner``) and are read after a device-wide synchronise; on CPU from
``time.perf_counter``.
"""

import contextlib
import os
import threading
import time
from typing import Optional

import numpy as np
import torch

from ..core.errors import InputError
from ..core.metrics import psnr_from_mse
from ..runtime.backend import Backend

MIB = 2.0**20


def summary(values) -> dict:
    """mean, median, p90, p99, min, max of a list of milliseconds."""
    v = np.asarray(values, dtype=np.float64)
    return {
        "mean": float(v.mean()),
        "median": float(np.median(v)),
        "p90": float(np.percentile(v, 90)),
        "p99": float(np.percentile(v, 99)),
        "min": float(v.min()),
        "max": float(v.max()),
    }


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)  # all streams, not just the current one


class StageTimer:
    """Collects (label, start, end) spans; ``take()`` returns milliseconds per label, summed, and forgets them."""

    def __init__(self, device: torch.device):
        self.device = device
        self._spans = []

    @contextlib.contextmanager
    def span(self, label: str):
        if self.device.type == "cuda":
            stream = torch.cuda.current_stream(self.device)  # the device's, even when it is not the current one
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record(stream)
            yield
            end.record(stream)
        else:
            start = time.perf_counter()
            yield
            end = time.perf_counter()
        self._spans.append((label, start, end))

    def take(self) -> dict:
        """Call after ``synchronize``: events can only be read once the device has passed them."""
        out = {}
        for label, start, end in self._spans:
            ms = start.elapsed_time(end) if self.device.type == "cuda" else (end - start) * 1e3
            out[label] = out.get(label, 0.0) + ms
        self._spans = []
        return out


class TimedBackend(Backend):
    """Another backend with each stage call timed (per-frame encoding counts as flow-stage work)."""

    def __init__(self, backend: Backend, timer: StageTimer):
        self.inner = backend
        self.timer = timer
        self.name = backend.name
        self.device = backend.device
        self.precision = backend.precision
        self.ds_scale = backend.ds_scale

    def check_frames(self, height: int, width: int) -> None:
        self.inner.check_frames(height, width)

    def use_tile(self, tile) -> None:
        self.inner.use_tile(tile)

    def flow(self, img0, img1, ds):
        with self.timer.span("flow"):
            return self.inner.flow(img0, img1, ds)

    def encode(self, img, ds):
        with self.timer.span("flow"):
            return self.inner.encode(img, ds)

    def estimate(self, enc0, enc1, ds):
        with self.timer.span("flow"):
            return self.inner.estimate(enc0, enc1, ds)

    def motion(self, flow01, flow10, t):
        with self.timer.span("motion"):
            return self.inner.motion(flow01, flow10, t)

    def synthesis(self, img0, img1, feats, flowt, t, ds):
        with self.timer.span("synthesis"):
            return self.inner.synthesis(img0, img1, feats, flowt, t, ds)


class PeakMemory:
    """Peak host RSS and device memory of this process while inside ``with``, sampled on a thread.

    Device memory is everything the process holds on the GPU, the CUDA context included: NVML's per-process
    figure (``pip install nvidia-ml-py``); where NVML cannot see the process (a container's PID namespace) the
    device's used memory minus what was used when this object was made; without NVML, torch's
    ``max_memory_reserved`` (allocator only: no context, no TensorRT memory). ``source`` says which.
    """

    def __init__(self, device: torch.device, interval_s: float = 0.01):
        self.device = device
        self.interval_s = interval_s
        self._nvml = self._baseline = None
        try:
            import psutil

            self._process = psutil.Process()
        except ImportError:
            self._process = None
        if device.type == "cuda":
            self._nvml = _nvml_handle(device)
            if self._nvml is not None:
                self._baseline = self._nvml[0].nvmlDeviceGetMemoryInfo(self._nvml[1]).used
        self.source = self._describe()
        self.host_mib = self.device_mib = None

    def _describe(self) -> Optional[str]:
        if self.device.type != "cuda":
            return None
        if self._nvml is not None:
            return "nvml"
        return "torch.cuda.max_memory_reserved (allocator only: CUDA context and TensorRT memory not included)"

    def _device_bytes(self) -> Optional[int]:
        if self._nvml is None:
            return None
        nvml, handle = self._nvml
        for proc in nvml.nvmlDeviceGetComputeRunningProcesses(handle):
            if proc.pid == os.getpid() and proc.usedGpuMemory is not None:
                return proc.usedGpuMemory
        self.source = "nvml (device used minus used at start: NVML cannot see this process)"
        return nvml.nvmlDeviceGetMemoryInfo(handle).used - self._baseline

    def _sample(self):
        if self._process is not None:
            self._host = max(self._host, self._process.memory_info().rss)
        dev = self._device_bytes()
        if dev is not None:
            self._dev = max(self._dev, dev)

    def _loop(self):
        while not self._stop.wait(self.interval_s):
            self._sample()

    def __enter__(self):
        self._host = self._dev = 0
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        self._stop = threading.Event()
        self._sample()
        self._thread = threading.Thread(target=self._loop, name="gimm-bench-memory", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self._sample()
        self.host_mib = self._host / MIB if self._process is not None else None
        if self._nvml is not None:
            self.device_mib = self._dev / MIB
        elif self.device.type == "cuda":
            self.device_mib = torch.cuda.max_memory_reserved(self.device) / MIB


def _nvml_handle(device: torch.device):
    """(pynvml module, handle of ``device``) or None when NVML is not installed or fails."""
    try:
        import pynvml

        pynvml.nvmlInit()
        index = device.index or 0  # not torch.cuda.current_device(): that would create a context early
        try:  # honours CUDA_VISIBLE_DEVICES (torch's index is not NVML's then)
            index = torch.cuda._get_nvml_device_index(index)
        except Exception:
            pass
        return pynvml, pynvml.nvmlDeviceGetHandleByIndex(index)
    except Exception:
        return None


class Accuracy:
    """PSNR (data range 1) and max |d| of frames against reference frames, accumulated pair by pair."""

    def __init__(self):
        self.sse = 0.0
        self.count = 0
        self.max_abs = 0.0

    def add(self, out: torch.Tensor, ref: torch.Tensor) -> None:
        if out.shape != ref.shape:
            raise InputError(f"output {tuple(out.shape)} and reference {tuple(ref.shape)} differ in shape")
        for o, r in zip(out, ref):  # frame by frame: a 4K pair in float64 at once would be gigabytes
            d = o.detach().cpu().double() - r.cpu().double()
            self.sse += float(d.square().sum())
            self.count += d.numel()
            self.max_abs = max(self.max_abs, float(d.abs().max()))

    def result(self) -> dict:
        """psnr_db is None when the frames are identical (infinite PSNR has no JSON spelling)."""
        return {"psnr_db": psnr_from_mse(self.sse / max(self.count, 1)), "max_abs": self.max_abs}
