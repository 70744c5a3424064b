"""What is installed: backend availability (with what to install) and package versions, without importing much."""
import importlib
import importlib.util
from typing import Optional

# backend -> (python module it needs, what to install)
NEEDS = {
    "onnxruntime": ("onnxruntime", "pip install 'gimm-trt[onnx]' (onnxruntime-gpu for CUDA)"),
    "tensorrt": ("tensorrt", "pip install 'gimm-trt[tensorrt]' (needs an NVIDIA GPU)"),
}


def missing_backend(backend: str, device=None) -> Optional[str]:
    """None when ``backend`` can run on ``device`` here, else one line saying why not and what to install."""
    if backend in NEEDS:
        module, install = NEEDS[backend]
        if importlib.util.find_spec(module) is None:
            return f"backend {backend!r} needs {module}, which is not installed: {install}"
    if backend == "tensorrt" and device is not None and not str(device).startswith("cuda"):
        return f"backend 'tensorrt' runs on CUDA devices only, not {str(device)!r} (use --device cuda)"
    return None


def version(module: str) -> Optional[str]:
    """``module.__version__`` if the module imports, else None."""
    if importlib.util.find_spec(module) is None:
        return None
    try:
        return str(importlib.import_module(module).__version__)
    except Exception:  # a broken install reports as absent rather than failing a benchmark
        return None
