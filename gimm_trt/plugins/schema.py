"""The one description of the splatting op that every implementation reads.

The exporter writes nodes from it, the ONNX Runtime custom op registers from it and the TensorRT plugin
registers under the same id, so a test can check that all of them agree.
"""

from ..core.errors import InputError

OP_NAME = "splat"
NAMESPACE = "gimm_trt"  # ONNX domain of the node and TensorRT plugin namespace
VERSION = 1
PLUGIN_ID = f"{NAMESPACE}::{OP_NAME}"

MODES = ("sum", "linear-zeroeps", "softmax-zeroeps")
DEFAULT_MODE = "linear-zeroeps"  # what the released GIMM-VFI checkpoints use
# how an export writes the op: one custom node (TensorRT plugin, ONNX Runtime custom op) or standard ops only
FORMS = ("plugin", "portable")

INPUTS = ("x", "flow", "metric")  # [N,C,H,W], [N,2,H,W] (x then y, pixels), [N,1,H,W]; metric always passed
# The op node computes the accumulation: [N,C,H,W] for "sum", [N,C+1,H,W] for the *-zeroeps modes (x * w in
# channels 0..C-1, the normaliser w last, unnormalised). The zero-normaliser rule and the divide are ordinary
# graph ops after it (`gimm_trt.plugins.normalise`): they need every contribution first, which one kernel launch
# cannot wait for.
OUTPUTS = ("acc",)  # always float32, whatever the inputs' types: fp16 sums of many weights would lose precision
# The node takes float32 only: fp16 graphs keep it an fp32 island (Casts in front of it), so an fp16 form of the
# TensorRT kernel would never run. The PyTorch kernels still take fp16 (autocast hands them fp16 latents).
INPUT_DTYPES = ("float32",)
MODE_ATTR = "mode"  # string attribute of the ONNX node and of the TensorRT plugin


def out_channels(channels: int, mode: str) -> int:
    """Channels of the op's output for ``channels`` input channels."""
    return channels if check_mode(mode) == "sum" else channels + 1


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise InputError(f"splat mode must be one of {MODES}, got {mode!r}")
    return mode
