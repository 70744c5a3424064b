"""Triton summation-splatting kernel, shared by the PyTorch CUDA path and the TensorRT plugin.

One ``@triton.jit`` source, ``splat_kernel``, with the parameter order TensorRT's AOT plugins need
(input pointers, int32 scalars, output pointer; see ``trt_plugin.py``)::

    splat_kernel(x, flow, metric, C, H, W, out, MODE, OWN_PLANE, BLOCK)

    x       [N,C,H,W]   fp32, fp16 or bf16   values to splat
    flow    [N,2,H,W]   fp32, fp16 or bf16   displacement in pixels (x then y)
    metric  [N,1,H,W]   fp32, fp16 or bf16   importance weight (not read when MODE == 0)
    out     [N,CO,H,W]  fp32                 CO = C (MODE 0) or C + 1 (the normaliser channel last)

fp16 and bf16 inputs come from the PyTorch path (autocast hands it reduced-precision latents); the TensorRT node
always takes fp32 (``schema.INPUT_DTYPES``), so the AOT kernel is compiled for fp32 only.

The kernel fuses the metric weighting of the ``*-zeroeps`` modes: channel c < C receives
``x * w`` and channel C receives ``w`` (w = metric, or exp(metric) for MODE 2); the divide by the
normaliser stays outside (``gimm_trt.plugins.normalise``), because it needs every contribution first.

Two launch formulations of the same source (constexpr ``OWN_PLANE``), grids from ``launch_grid``:

* ``OWN_PLANE=False`` (PyTorch path and the plugin's JIT implementation): grid ``(cdiv(H*W, BLOCK), N*CO)``, a
  grid over pixel tiles: program ``(i, n * CO + c)`` takes source pixels ``[i*BLOCK, (i+1)*BLOCK)`` of channel c
  of image n and adds them to ``out[n, c]`` with fp32 atomics, so every (plane, pixel) has one program and the
  GPU fills at any T and C. ``out`` is zeroed once before the launch (``torch.zeros``).
* ``OWN_PLANE=True`` (TensorRT AOT path): grid ``(N*CO,)``; a program owns one output plane
  ``out[n, c]``. Every contribution to that plane comes from source channel c of image n, so the program
  zeroes the plane, synchronises its own threads, then splats into it: no other program touches it. One
  launch, no pre-zeroed buffer, which is all an AOT TensorRT plugin gets: TensorRT hands it an output it has not
  cleared and runs one kernel, and a grid over tiles would need every tile's zeros to land before any program's
  first add, an order no barrier in one launch can give without memory that is already in a known state.

Contributions are bitwise those of the official kernel (same fp32 expressions, no FMA contraction is
possible in them); only the order of the atomic sums differs.

On CPU tensors the same source runs in Triton's interpreter when ``TRITON_INTERPRET=1`` is set before
``triton`` is first imported: Triton 3.x reads it when each ``@triton.jit`` decorator runs, its own
``triton.language`` helpers included, so setting it later has no effect (the tests use a subprocess).
"""

import contextlib
import inspect
import re
import subprocess
from dataclasses import dataclass
from types import SimpleNamespace

import torch
import triton
import triton.language as tl

from ..core.cuda import driver_cuda_version
from ..core.errors import InputError, MissingDependency
from . import schema

__all__ = [
    "splat_kernel",
    "splat_sum",
    "accumulate",
    "launch",
    "launch_config",
    "launch_grid",
    "MODE_IDS",
    "compile_aot",
    "aot_launch_dims",
    "aot_ptx_version",
    "strip_hidden_params",
    "CompiledSplat",
    "AOT_PARAMS",
    "AOT_TACTICS",
    "MIN_TRITON_AOT",
    "require_triton_aot",
]

MODE_IDS = {"sum": 0, "linear-zeroeps": 1, "softmax-zeroeps": 2}
# what the PyTorch path hands the kernel: autocast makes the motion latents fp16 or bf16 (precision "fp16" / "bf16");
# the kernel widens every load to fp32
JIT_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
MAX_GRID_Y = 65535  # CUDA's limit on a grid's y extent, where the tiled launch puts the output planes


@triton.jit(do_not_specialize=["C", "H", "W"])  # sizes stay runtime i32 (1 would become a constexpr)
def splat_kernel(
    x_ptr,
    flow_ptr,
    metric_ptr,
    C,
    H,
    W,
    out_ptr,
    MODE: tl.constexpr,
    OWN_PLANE: tl.constexpr,
    BLOCK: tl.constexpr,
):
    hw = H * W
    if MODE == 0:
        CO = C
    else:
        CO = C + 1  # the normaliser channel comes last
    wf = W.to(tl.float32)
    hf = H.to(tl.float32)
    lanes = tl.arange(0, BLOCK)
    if OWN_PLANE:
        plane = tl.program_id(0)  # n * CO + c
    else:
        plane = tl.program_id(1)
    n = plane // CO
    c = plane % CO
    if OWN_PLANE:
        start = 0
        stop = hw
        out_plane = out_ptr + plane.to(tl.int64) * hw
        for zero_at in range(0, hw, BLOCK):
            tl.store(out_plane + zero_at + lanes, tl.zeros([BLOCK], tl.float32), mask=zero_at + lanes < hw)
        # the zeros must land before any thread of this program adds to them (bar.sync orders global memory
        # within the block; no other program writes this plane)
        tl.debug_barrier()
    else:
        start = tl.program_id(0) * BLOCK
        stop = start + BLOCK
    base = n.to(tl.int64) * hw
    for at in range(start, stop, BLOCK):
        src = at + lanes
        live = src < hw
        fx = tl.load(flow_ptr + (2 * base + src), mask=live, other=0.0).to(tl.float32)
        fy = tl.load(flow_ptr + (2 * base + hw + src), mask=live, other=0.0).to(tl.float32)
        px = (src % W).to(tl.float32) + fx
        py = (src // W).to(tl.float32) + fy
        # isfinite: false for +-inf and NaN; such sources are skipped like in the official kernel
        live = live & (tl.abs(px) < float("inf")) & (tl.abs(py) < float("inf"))
        px = tl.where(live, px, 0.0)
        py = tl.where(live, py, 0.0)
        x0f = tl.floor(px)
        y0f = tl.floor(py)
        x1f = x0f + 1.0
        y1f = y0f + 1.0
        w_nw = (x1f - px) * (y1f - py)
        w_ne = (px - x0f) * (y1f - py)
        w_sw = (x1f - px) * (py - y0f)
        w_se = (px - x0f) * (py - y0f)
        # clamp before the int conversion so huge coordinates cannot overflow; [-2, W] keeps every in-range
        # decision exact (x0 in range iff x0 in [0, W), x1 = x0 + 1 iff x0 in [-1, W-1))
        x0 = tl.minimum(tl.maximum(x0f, -2.0), wf).to(tl.int32)
        y0 = tl.minimum(tl.maximum(y0f, -2.0), hf).to(tl.int32)
        x1 = x0 + 1
        y1 = y0 + 1
        ok_x0 = (x0 >= 0) & (x0 < W)
        ok_x1 = (x1 >= 0) & (x1 < W)
        ok_y0 = live & (y0 >= 0) & (y0 < H)
        ok_y1 = live & (y1 >= 0) & (y1 < H)
        i_nw = y0 * W + x0
        if MODE == 0:
            weight = tl.zeros([BLOCK], tl.float32)
        else:
            weight = tl.load(metric_ptr + (base + src), mask=live, other=0.0).to(tl.float32)
            if MODE == 2:
                weight = tl.exp(weight)
        if MODE == 0:
            value = tl.load(x_ptr + ((base * C + c * hw) + src), mask=live, other=0.0).to(tl.float32)
        else:
            # the normaliser channel (c == C) reads channel C-1 and throws it away: no scalar-masked load
            xc = tl.minimum(c, C - 1)
            value = tl.load(x_ptr + ((base * C + xc * hw) + src), mask=live, other=0.0).to(tl.float32)
            value = tl.where(c < C, value * weight, weight)
        dst = out_ptr + (base * CO + c * hw) + i_nw
        tl.atomic_add(dst, value * w_nw, mask=ok_y0 & ok_x0, sem="relaxed")
        tl.atomic_add(dst + 1, value * w_ne, mask=ok_y0 & ok_x1, sem="relaxed")
        tl.atomic_add(dst + W, value * w_sw, mask=ok_y1 & ok_x0, sem="relaxed")
        tl.atomic_add(dst + W + 1, value * w_se, mask=ok_y1 & ok_x1, sem="relaxed")


# Own-plane launch configurations, by TensorRT tactic: one program per plane keeps only N*CO blocks resident,
# so bigger blocks hide more latency; TensorRT times each at build time and keeps the fastest. All use <= 64
# registers per thread (ptxas, sm_90), so even 1024-thread blocks launch.
AOT_TACTICS = {
    1: {"BLOCK": 1024, "num_warps": 8},
    2: {"BLOCK": 2048, "num_warps": 16},
    3: {"BLOCK": 4096, "num_warps": 32},
}


def launch_config(own_plane: bool, tactic: int = 1) -> dict:
    """BLOCK and num_warps per formulation (one place, read by the torch wrapper and the TensorRT plugin)."""
    return dict(AOT_TACTICS[tactic]) if own_plane else {"BLOCK": 512, "num_warps": 4}


def launch_grid(n: int, c: int, h: int, w: int, mode: str, own_plane: bool = False, block: int = None) -> tuple:
    """The kernel's grid for x [n, c, h, w]: ``(cdiv(h*w, BLOCK), n*CO)`` pixel tiles of every output plane, or
    ``(n*CO,)`` (one program per plane) for ``own_plane``. ``block`` as in ``launch``."""
    if own_plane:
        return (aot_launch_dims(n, c, h, w, mode)[0],)
    return (triton.cdiv(h * w, block or launch_config(own_plane)["BLOCK"]), n * schema.out_channels(c, mode))


def _kernel_for(device: torch.device):
    """The kernel to launch; CPU tensors need the interpreter (Triton's own ``tl`` helpers are jitted too, so
    it cannot be switched on after ``import triton``)."""
    if device.type != "cuda" and not _interpreting():
        raise RuntimeError(
            "the triton splat kernel runs on CPU tensors only under the Triton interpreter: set "
            "TRITON_INTERPRET=1 before triton is first imported, or use impl='torch'"
        )
    return splat_kernel


def _interpreting() -> bool:
    from triton.runtime.interpreter import InterpretedFunction

    return isinstance(splat_kernel, InterpretedFunction)


def accumulate(x, flow, metric=None, mode: str = "sum", own_plane: bool = False) -> torch.Tensor:
    """Splat ``x`` (weighted by the mode) and, for the ``*-zeroeps`` modes, the weight as one more channel.

    Args:
        x: [N,C,H,W] float32/float16/bfloat16; flow: [N,2,H,W] (pixels, x then y); metric: [N,1,H,W] (``*-zeroeps``).
        own_plane: use the TensorRT launch formulation (the kernel zeroes its output itself).

    Returns:
        [N,C,H,W] float32 for ``"sum"``; [N,C+1,H,W] float32 otherwise (unnormalised, normaliser last).
    """
    n, c, h, w = x.shape
    out = torch.empty(n, schema.out_channels(c, mode), h, w, device=x.device, dtype=torch.float32)
    return launch(x, flow, metric, out, mode, own_plane)


def launch(x, flow, metric, out, mode: str, own_plane: bool = False, block: int = None) -> torch.Tensor:
    """Run the kernel into ``out`` ([N,CO,H,W] float32, contiguous, any contents) on the current stream.

    ``block`` overrides ``launch_config``'s pixels per program step (a power of two; results do not depend on it).
    """
    schema.check_mode(mode)
    n, c, h, w = x.shape
    co = schema.out_channels(c, mode)
    if tuple(out.shape) != (n, co, h, w) or out.dtype != torch.float32 or not out.is_contiguous():
        raise InputError(f"splat: out must be contiguous float32 {(n, co, h, w)}, got {out.dtype} {tuple(out.shape)}")
    if x.device != flow.device or out.device != x.device or (metric is not None and metric.device != x.device):
        raise InputError("splat: x, flow, metric and out must be on one device")
    if n * co * h * w >= 2**31 or h * w * 2 >= 2**31:
        raise InputError(f"splat: tensor of shape {tuple(x.shape)} too large for int32 indexing")
    if not own_plane and n * co > MAX_GRID_Y:  # an own-plane grid puts the planes on x, which takes 2**31 - 1
        raise InputError(f"splat: {n} images of {co} output channels exceed the {MAX_GRID_Y} planes one launch takes")
    if mode != "sum" and metric is None:
        raise InputError(f"splat mode {mode!r} needs a metric")
    for t in (x, flow) + (() if metric is None else (metric,)):
        if t.dtype not in JIT_DTYPES:
            raise TypeError(f"splat inputs must be float32, float16 or bfloat16, got {t.dtype}")
    if out.numel() == 0:
        return out
    x = x.contiguous()
    flow = flow.contiguous()
    metric = x if metric is None or mode == "sum" else metric.contiguous()  # not read in "sum" mode
    cfg = launch_config(own_plane)
    if block is not None:
        cfg["BLOCK"] = block
    if not own_plane:
        out.zero_()
    grid = launch_grid(n, c, h, w, mode, own_plane, cfg["BLOCK"])
    kernel = _kernel_for(x.device)
    with torch.cuda.device(x.device) if x.is_cuda else contextlib.nullcontext():
        kernel[grid](
            x,
            flow,
            metric,
            c,
            h,
            w,
            out,
            MODE=MODE_IDS[mode],
            OWN_PLANE=own_plane,
            BLOCK=cfg["BLOCK"],
            num_warps=cfg["num_warps"],
            enable_fp_fusion=False,
        )
    return out


def splat_sum(x: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Summation splatting ``[N,C,H,W], [N,2,H,W] -> [N,C,H,W]`` float32 (the kernel contract of ``splat``)."""
    return accumulate(x, flow, None, "sum")


# --- ahead-of-time compilation for the TensorRT plugin --------------------------------------------------------

# what TensorRT passes an AOT kernel, in order: input pointers, int32 extra args, output pointers
AOT_PARAMS = schema.INPUTS + ("C", "H", "W") + schema.OUTPUTS
_KERNEL_PARAMS = ("x_ptr", "flow_ptr", "metric_ptr", "C", "H", "W", "out_ptr")  # splat_kernel's, same order


@dataclass(frozen=True)
class CompiledSplat:
    """An AOT-compiled kernel: what the plugin's ``aot_impl`` hands TensorRT."""

    name: str
    ptx: str
    num_warps: int
    shared: int
    block: int


def aot_launch_dims(n, c, h, w, mode: str):
    """Grid and int32 extra args of the AOT (own-plane) launch, on ints or on TensorRT shape expressions.

    Returns ``(grid_x, (C, H, W))``: one program per output plane.
    """
    return n * schema.out_channels(c, mode), (c, h, w)


def strip_hidden_params(ptx: str, keep: int) -> str:
    """Drop the ``.entry`` parameters after the first ``keep`` from ``ptx``; the kernel must never read them."""
    match = re.search(r"\.entry\s+[\w$]+\s*\((.*?)\)", ptx, re.S)
    if match is None:
        raise ValueError("no .entry in the PTX")
    params = [p.strip() for p in match.group(1).split(",") if p.strip()]
    if len(params) < keep:
        raise ValueError(f"the kernel has {len(params)} parameters, expected at least {keep}")
    body = ptx[match.end() :]
    for extra in params[keep:]:
        name = extra.split()[-1]
        if re.search(rf"\b{re.escape(name)}\b", body):
            raise ValueError(f"the kernel reads {name}: it needs Triton scratch memory, which TensorRT does not pass")
    kept = ",\n".join("\t" + p for p in params[:keep])
    return ptx[: match.start(1)] + "\n" + kept + "\n" + ptx[match.end(1) :]


def compile_aot(mode: str, tactic: int = 1, target=None, ptx_version: int = None) -> CompiledSplat:
    """Compile ``splat_kernel`` in its own-plane form for a TensorRT AOT plugin, fp32 inputs; needs Triton >= 3.3.

    Args:
        mode: a ``schema.MODES`` entry (a constexpr of the kernel).
        tactic: a key of ``AOT_TACTICS`` (block size and warps).
        target: ``triton.backends.compiler.GPUTarget``; default the current GPU.
        ptx_version: PTX ISA as Triton counts it (84 = 8.4); default ``aot_ptx_version(target.arch)``.

    Triton >= 3.3 appends hidden pointer parameters (global and profile scratch) to every kernel; TensorRT
    passes exactly inputs, extra args, outputs. So the kernel must need no scratch (checked) and the unused
    trailing parameters are removed from the PTX: its entry is exactly ``AOT_PARAMS``.
    """
    from triton.runtime.jit import JITFunction

    require_triton_aot()
    fn = splat_kernel if isinstance(splat_kernel, JITFunction) else JITFunction(splat_kernel.fn)  # interpreter on
    cfg = launch_config(own_plane=True, tactic=tactic)
    types = ("*fp32", "*fp32", "*fp32", "i32", "i32", "i32", "*fp32")
    signature = dict(zip(_KERNEL_PARAMS, types), MODE="constexpr", OWN_PLANE="constexpr", BLOCK="constexpr")
    src = triton.compiler.ASTSource(
        fn=fn,
        signature=signature,
        constexprs={"MODE": MODE_IDS[schema.check_mode(mode)], "OWN_PLANE": True, "BLOCK": cfg["BLOCK"]},
    )
    if target is None:
        target = triton.runtime.driver.active.get_current_target()
    options = {"num_warps": cfg["num_warps"], "enable_fp_fusion": False}
    ptx_version = aot_ptx_version(target.arch) if ptx_version is None else ptx_version
    if ptx_version is not None:
        options["ptx_version"] = ptx_version
    compiled = triton.compile(src, target=target, options=options)
    meta = compiled.metadata
    if getattr(meta, "global_scratch_size", 0) or getattr(meta, "profile_scratch_size", 0):
        raise RuntimeError("the splat kernel asks for Triton scratch memory, which a TensorRT AOT plugin cannot give")
    ptx = strip_hidden_params(compiled.asm["ptx"], keep=len(AOT_PARAMS))
    return CompiledSplat(name=meta.name, ptx=ptx, num_warps=meta.num_warps, shared=meta.shared, block=cfg["BLOCK"])


MIN_TRITON_AOT = (3, 3)  # first release whose ASTSource takes constexprs= (3.2 takes constants=)


def require_triton_aot() -> None:
    """MissingDependency (an ImportError) when this Triton cannot compile the splat kernel ahead of time for
    TensorRT: said before a build, where TensorRT would print it inside its launch callback and end the build as
    an "Invalid Engine"."""
    if "constexprs" not in inspect.signature(triton.compiler.ASTSource).parameters:
        need = ".".join(map(str, MIN_TRITON_AOT))
        raise MissingDependency(
            f"compiling the splat kernel for TensorRT needs Triton >= {need}, found "
            f"{triton.__version__}: pip install -U 'triton>={need}'"
        )


def aot_ptx_version(arch: int):
    """PTX ISA (Triton's numbering, 84 = 8.4) for the AOT kernel of GPU arch ``arch`` (e.g. 90).

    The PTX must pass two assemblers: ``triton.compile`` runs Triton's bundled ptxas on it, and TensorRT hands
    it to the CUDA driver's JIT. Each rejects an ISA newer than itself, so this is the lower of the two; None
    (Triton's own default) when neither can be asked.
    """
    known = [v for v in (_driver_isa(), _ptxas_isa(arch)) if v is not None]
    return min(known, default=None)


def _driver_isa():
    """Highest PTX ISA the installed CUDA driver JIT-compiles, or None if unknown (no driver, or a CUDA
    release this Triton cannot map: Triton <= 3.4 raises for CUDA 13)."""
    cuda = driver_cuda_version()
    if cuda is None:
        return None
    try:
        from triton.backends.nvidia.compiler import ptx_get_version

        return ptx_get_version(cuda)
    except (ImportError, RuntimeError):
        return None


def _ptxas_isa(arch: int):
    """Highest PTX ISA Triton's bundled ptxas for ``arch`` assembles (Triton's default), or None if unknown."""
    try:
        from triton.backends.nvidia.compiler import get_ptx_version_from_options

        return get_ptx_version_from_options(SimpleNamespace(ptx_version=None), arch)
    except (ImportError, RuntimeError, OSError, AttributeError, TypeError, subprocess.CalledProcessError):
        return None
