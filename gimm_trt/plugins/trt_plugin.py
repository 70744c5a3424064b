"""The splat op as a TensorRT quickly-deployable plugin (``tensorrt.plugin``); needs TensorRT >= 10.9.

Importing this module registers ``gimm_trt::splat`` with TensorRT (once per process; a reload finds the
registration and does not repeat it) and does nothing else. Import it before parsing an ONNX file that holds
splat nodes; without TensorRT >= 10.9 the import raises ImportError. Registered, all under ``schema.PLUGIN_ID``:

* ``splat_desc(x, flow, metric, mode: str)``: output ``acc`` [N,CO,H,W] float32, CO = C + 1 for the
  ``*-zeroeps`` modes and C for ``"sum"`` (the node is the accumulation; the normalise ops after it are
  ordinary layers);
* ``splat_autotune``: x, flow, metric and the output FP32 (``schema.INPUT_DTYPES``: fp16 graphs cast in front of
  the node), all LINEAR; tactics ``triton_kernel.AOT_TACTICS`` (block sizes of the AOT kernel, timed by TensorRT at
  build);
* ``splat_aot_impl``: ``triton_kernel.splat_kernel`` compiled to PTX at build time (``compile_aot``), so an
  engine runs without Python (trtexec, C++). ``mode`` becomes a constexpr of the kernel: AOT attributes are not
  serialised into the engine;
* ``splat_impl``: the same kernel launched from Python (JIT fallback, for nodes with ``aot=0``).

Zeroing the output: an AOT plugin is one kernel launch into a buffer TensorRT does not clear, and a scatter
needs zeros before anything is added. The kernel runs in its ``OWN_PLANE`` form: program ``n * CO + c`` owns
the output plane ``acc[n, c]`` (every contribution to it comes from input channel c of image n), zeroes it,
synchronises its own threads and then splats into it. No other program touches that plane, so no grid-wide
barrier, pre-zeroed or aliased buffer is needed. Parallelism is N * CO programs (136 for T = 8 and C = 16),
each looping over H * W pixels. (The alternative, a zero input aliased to the output, needs
``PreviewFeature.ALIASED_PLUGIN_IO_10_03`` and is unverified for AOT plugins.) The JIT path zeroes with torch
and uses the grid form, as the PyTorch path does.

String attributes may arrive with a trailing NUL: TensorRT's ONNX parser copies a string attribute as a C
string, terminator included, and ``tensorrt.plugin`` decodes every byte of the field. ``_mode`` drops it
wherever the attribute is read.

Kernel parameters, in the order TensorRT passes them: ``x, flow, metric`` pointers, int32 ``C, H, W``,
``acc`` pointer (``triton_kernel.AOT_PARAMS``); grid ``(N * CO, 1, 1)``; block ``num_warps * 32`` threads
(256, 512 or 1024 by tactic).
"""

import contextlib
from typing import Union

from ..core.trt import import_trt
from . import schema
from .triton_kernel import AOT_TACTICS, aot_launch_dims, compile_aot

trt = import_trt()  # ImportError with the install command when TensorRT is missing, unusable or < 10.9
import tensorrt.plugin as trtp  # noqa: E402


def _mode(value: str) -> str:
    """The ``mode`` attribute as the op knows it: without the NUL terminator the ONNX parser may append."""
    return schema.check_mode(value.rstrip("\0"))


def _require_fp32(*descs) -> None:
    """TypeError unless every tensor is FP32 (the one combination ``splat_autotune`` offers)."""
    for desc in descs:
        if desc.dtype != trt.float32:
            raise TypeError(f"splat plugin inputs are FP32, got {desc.dtype}")


@contextlib.contextmanager
def _on_trt_stream(tensors, stream: int):
    """Torch views of TensorRT's device buffers (``trtp.Tensor`` has ``__cuda_array_interface__``), with
    TensorRT's stream current so the launch is ordered with the rest of the engine."""
    import torch

    with torch.cuda.stream(torch.cuda.ExternalStream(stream)):
        yield [torch.as_tensor(t, device="cuda") for t in tensors]


def _define() -> None:
    @trtp.register(schema.PLUGIN_ID)
    def splat_desc(x: trtp.TensorDesc, flow: trtp.TensorDesc, metric: trtp.TensorDesc, mode: str) -> trtp.TensorDesc:
        shape = x.shape_expr
        channels = schema.out_channels(shape[1], _mode(mode))  # works on shape expressions too
        return trtp.from_shape_expr((shape[0], channels, shape[2], shape[3]), dtype=trt.float32)

    @trtp.autotune(schema.PLUGIN_ID)
    def splat_autotune(
        x: trtp.TensorDesc, flow: trtp.TensorDesc, metric: trtp.TensorDesc, outputs: tuple[trtp.TensorDesc]
    ) -> list[trtp.AutoTuneCombination]:
        return [trtp.AutoTuneCombination("FP32, FP32, FP32, FP32", "LINEAR", list(AOT_TACTICS))]

    @trtp.aot_impl(schema.PLUGIN_ID)
    def splat_aot_impl(
        x: trtp.TensorDesc,
        flow: trtp.TensorDesc,
        metric: trtp.TensorDesc,
        mode: str,
        outputs: tuple[trtp.TensorDesc],
        tactic: int,
    ) -> tuple[Union[str, bytes], Union[str, bytes], trtp.KernelLaunchParams, trtp.SymIntExprs]:
        mode = _mode(mode)
        _require_fp32(x, flow, metric)
        kernel = compile_aot(mode, tactic)
        grid_x, extra = aot_launch_dims(*x.shape_expr, mode)
        params = trtp.KernelLaunchParams()
        params.grid_x = grid_x
        params.block_x = kernel.num_warps * 32
        params.shared_mem = kernel.shared
        return kernel.name, kernel.ptx, params, trtp.SymIntExprs.from_tuple([trtp.SymInt32(e) for e in extra])

    @trtp.impl(schema.PLUGIN_ID)
    def splat_impl(
        x: trtp.Tensor,
        flow: trtp.Tensor,
        metric: trtp.Tensor,
        mode: str,
        outputs: tuple[trtp.Tensor],
        stream: int,
        tactic: int,
    ) -> None:  # the tactics are AOT block sizes; JIT always runs one way
        from .triton_kernel import launch

        with _on_trt_stream((x, flow, metric, outputs[0]), stream) as (x_t, flow_t, metric_t, out_t):
            launch(x_t, flow_t, metric_t, out_t, _mode(mode), own_plane=False)

    global FUNCTIONS
    FUNCTIONS = {"register": splat_desc, "autotune": splat_autotune, "aot_impl": splat_aot_impl, "impl": splat_impl}


FUNCTIONS = {}  # role -> the decorated function, for tests and tools (empty when the module was reloaded)
if not hasattr(getattr(trtp.op, schema.NAMESPACE, None), schema.OP_NAME):  # tensorrt.plugin raises on a second one
    _define()
