"""The environment a benchmark ran in: hardware, drivers, library versions and the code's git commit."""

import os
import platform
import subprocess
from pathlib import Path
from typing import Optional

import torch

from ..core.deps import version
from ..core.version import __version__


def environment(device: torch.device) -> dict:
    """Everything needed to compare two result files; absent tools are None."""
    env = {
        "gimm_trt": __version__,
        "git_commit": _git("rev-parse", "HEAD"),
        "git_dirty": None,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": None,
        "gpu": None,
        "gpu_memory_mib": None,
        "compute_capability": None,
        "driver": None,
        "tensorrt": version("tensorrt"),
        "onnxruntime": version("onnxruntime"),
        "device": str(device),
    }
    if env["git_commit"] is not None:
        env["git_dirty"] = bool(_git("status", "--porcelain", "--untracked-files=no"))
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        env.update(
            gpu=props.name,
            gpu_memory_mib=props.total_memory // 2**20,
            compute_capability=f"{props.major}.{props.minor}",
            cudnn=torch.backends.cudnn.version(),
            driver=_driver(),
        )
    return env


def cpu_model() -> Optional[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def _git(*args) -> Optional[str]:
    try:
        out = subprocess.run(
            ["git", *args], cwd=Path(__file__).resolve().parent, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def _driver() -> Optional[str]:
    try:
        import pynvml

        pynvml.nvmlInit()
        v = pynvml.nvmlSystemGetDriverVersion()
        return v.decode() if isinstance(v, bytes) else v
    except Exception:
        return None
