"""The one description of the splatting op that every implementation reads.

The exporter writes nodes from it, the ONNX Runtime custom op registers from it and the TensorRT plugin
registers under the same id, so a test can check that all of them agree.
"""

OP_NAME = "splat"
NAMESPACE = "gimm_trt"  # ONNX domain of the node and TensorRT plugin namespace
VERSION = 1
PLUGIN_ID = f"{NAMESPACE}::{OP_NAME}"

MODES = ("sum", "linear-zeroeps", "softmax-zeroeps")
DEFAULT_MODE = "linear-zeroeps"  # what the released GIMM-VFI checkpoints use

INPUTS = ("x", "flow", "metric")  # [N,C,H,W], [N,2,H,W] (x then y, pixels), [N,1,H,W]
OUTPUTS = ("y",)  # [N,C,H,W] float32
INPUT_DTYPES = ("float32", "float16")  # x, flow and metric share one dtype
OUTPUT_DTYPE = "float32"  # accumulation and output are always fp32


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise ValueError(f"splat mode must be one of {MODES}, got {mode!r}")
    return mode
