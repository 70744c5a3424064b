"""gimm-trt: GIMM-VFI video frame interpolation made fast (PyTorch reference, ONNX, TensorRT).

The data flows checkpoint -> model -> export (ONNX) -> engines (TensorRT) -> runtime -> benchmarks;
each arrow is one subpackage. ``Interpolator`` is the public entry point; ``ModelSpec`` says what it runs.
"""

from .core.version import __version__

__all__ = ["Interpolator", "ModelSpec", "__version__"]


def __getattr__(name):
    # keep `import gimm_trt` light: torch and the model load only when the runtime is used
    if name == "Interpolator":
        from .runtime import Interpolator

        return Interpolator
    if name == "ModelSpec":
        from .model.spec import ModelSpec

        return ModelSpec
    raise AttributeError(f"module 'gimm_trt' has no attribute {name!r}")
