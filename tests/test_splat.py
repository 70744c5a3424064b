"""The splatting op: torch reference and Triton kernel (interpreter) against an independent Python loop.

The Triton interpreter must be switched on before ``triton`` is first imported, so the Triton cases run in
one subprocess: this file run as a script with TRITON_INTERPRET=1 (``_worker``) saves the kernel's outputs
and this process compares them.
"""

import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from gimm_trt import plugins
from gimm_trt.core.errors import InputError
from gimm_trt.plugins import reference, schema

MODES = schema.MODES


def slow_splat_sum(x, flow):
    """Sum splatting by a per-pixel loop: float32 positions/weights/products (as every kernel), float64 sums."""
    x = x.float().numpy()
    flow = flow.float().numpy()
    n, c, h, w = x.shape
    out = np.zeros((n, c, h, w), np.float64)
    f32 = np.float32
    for b in range(n):
        for i in range(h):
            for j in range(w):
                px = f32(j) + flow[b, 0, i, j]
                py = f32(i) + flow[b, 1, i, j]
                if not (np.isfinite(px) and np.isfinite(py)):
                    continue
                left, top = math.floor(px), math.floor(py)
                for ty in (top, top + 1):
                    for tx in (left, left + 1):
                        if not (0 <= tx < w and 0 <= ty < h):
                            continue
                        wx = f32(left + 1) - px if tx == left else px - f32(left)
                        wy = f32(top + 1) - py if ty == top else py - f32(top)
                        out[b, :, ty, tx] += x[b, :, i, j] * f32(wx * wy)
    return out


def slow_splat(x, flow, metric, mode):
    """The whole op by the loop above: [N,C,H,W] float64."""
    if mode == "sum":
        return slow_splat_sum(x, flow)
    weight = metric.float().exp() if mode == "softmax-zeroeps" else metric.float()
    acc = slow_splat_sum(torch.cat([x.float() * weight, weight], 1), flow)
    norm = acc[:, -1:]
    return acc[:, :-1] / np.where(norm == 0.0, 1.0, norm)


def make_cases() -> dict:
    """name -> (x, flow, metric), small and deterministic, covering the edge cases of the op."""
    g = torch.Generator().manual_seed(5)

    def rand(*shape, scale=1.0):
        return torch.randn(*shape, generator=g) * scale

    cases = {}
    n, c, h, w = 2, 3, 7, 9
    flow = rand(n, 2, h, w, scale=2.5)
    # exact integer landings, targets off every border, a landing just left of 0, non-finite positions,
    # a huge finite one (must not overflow any integer conversion)
    flow[0, :, 0, 0] = torch.tensor([1.0, 2.0])
    flow[0, :, 1, 1] = torch.tensor([-1.0, 0.0])
    flow[0, :, 2, 2] = torch.tensor([-2.5, 0.25])
    flow[0, :, 3, 3] = torch.tensor([9.0, 0.5])
    flow[0, :, 4, 4] = torch.tensor([0.5, -5.5])
    flow[0, :, 5, 5] = torch.tensor([-5.0 - 1e-6, 0.0])
    flow[1, 0, 0, :3] = torch.tensor([float("nan"), float("inf"), -float("inf")])
    flow[1, 1, 1, :2] = torch.tensor([float("nan"), float("inf")])
    flow[1, :, 2, 2] = torch.tensor([3e30, -1e25])
    metric = torch.rand(n, 1, h, w, generator=g)
    metric[0, 0, :2] = 0.0  # sources of weight 0: targets reached only by them keep a zero normaliser
    cases["edges"] = (rand(n, c, h, w), flow, metric)
    cases["c1"] = (rand(1, 1, 6, 5), rand(1, 2, 6, 5, scale=1.5), torch.rand(1, 1, 6, 5, generator=g))
    cases["c64"] = (rand(1, 64, 4, 6), rand(1, 2, 4, 6, scale=2.0), torch.rand(1, 1, 4, 6, generator=g))
    cases["fp16"] = (
        rand(3, 4, 5, 8).half(),
        rand(3, 2, 5, 8, scale=2.0).half(),
        torch.rand(3, 1, 5, 8, generator=g).half(),
    )
    # what autocast at precision "bf16" hands the splat: bf16 latents, fp32 flow and weights
    cases["bf16"] = (rand(2, 3, 5, 6).bfloat16(), rand(2, 2, 5, 6, scale=2.0), torch.rand(2, 1, 5, 6, generator=g))
    xs = rand(1, 2, 6, 7)
    cases["shift"] = (
        xs,
        torch.tensor([2.0, -1.0]).view(1, 2, 1, 1).expand(1, 2, 6, 7).contiguous(),
        torch.rand(1, 1, 6, 7, generator=g) + 0.5,
    )
    return cases


def _tol(x):
    return 2e-5 * max(1.0, float(x.float().abs().max()))


# --- the torch reference --------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", ["edges", "c1", "c64", "fp16", "bf16", "shift"])
def test_reference_matches_loop(case, mode):
    x, flow, metric = make_cases()[case]
    got = plugins.splat(x, flow, metric, mode, impl="torch")
    want = slow_splat(x, flow, metric, mode)
    assert got.dtype == torch.float32 and got.shape == x.shape
    assert torch.isfinite(got).all()
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-5, atol=_tol(x))


def test_integer_shift_is_exact():
    x, flow, metric = make_cases()["shift"]
    got = reference.splat_sum(x, flow)
    want = torch.zeros_like(x)
    want[:, :, :5, 2:] = x[:, :, 1:, :5]  # every source moves 2 right and 1 up; the rest fall off
    assert torch.equal(got, want)
    # weighted by the metric and normalised, a one-to-one move gives back the moved values exactly where
    # they land (x * m / m rounds to x within an ulp) and 0 where nothing lands
    got = plugins.splat(x, flow, metric, "linear-zeroeps", impl="torch")
    torch.testing.assert_close(got, want, rtol=1e-6, atol=0)


def test_skips_and_drops():
    x, flow, metric = make_cases()["edges"]
    x = torch.ones_like(x)
    out = reference.splat_sum(x, flow)
    # every finite source lands with total weight 1 minus what falls outside; non-finite ones add nothing
    finite = torch.isfinite(flow).all(1)
    assert out.sum().item() <= finite.sum().item() * x.shape[1] + 1e-3
    single = torch.zeros(1, 1, 3, 4)
    single[0, 0, 1, 1] = 1.0
    moved = reference.splat_sum(single, torch.tensor([-1.75, 0.0]).view(1, 2, 1, 1).expand(1, 2, 3, 4))
    assert moved[0, 0, 1, 0].item() == 0.25  # x = -0.75: 0.25 to column 0, 0.75 to column -1 (dropped)
    assert moved.sum().item() == 0.25


def test_zero_normaliser_gives_zero():
    x = torch.randn(1, 2, 3, 3)
    metric = torch.zeros(1, 1, 3, 3)
    out = plugins.splat(x, torch.zeros(1, 2, 3, 3), metric, "linear-zeroeps", impl="torch")
    assert torch.equal(out, torch.zeros_like(out))


def test_bad_arguments():
    x = torch.zeros(1, 2, 3, 3)
    with pytest.raises(InputError, match="mode"):
        plugins.splat(x, torch.zeros(1, 2, 3, 3), mode="linear")
    with pytest.raises(InputError, match="metric"):
        plugins.splat(x, torch.zeros(1, 2, 3, 3), None, "linear-zeroeps")
    with pytest.raises(InputError, match="flow"):
        plugins.splat(x, torch.zeros(1, 2, 3, 4), mode="sum")
    with pytest.raises(InputError, match="impl"):
        plugins.splat(x, torch.zeros(1, 2, 3, 3), mode="sum", impl="numba")


def test_cupy_is_optional():
    pytest.importorskip("torch")
    try:
        import cupy  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match=r"gimm-trt\[cupy\]"):
            plugins.splat(torch.zeros(1, 1, 2, 2), torch.zeros(1, 2, 2, 2), mode="sum", impl="cupy")
    else:
        pytest.skip("CuPy is installed: the missing-CuPy message cannot be checked")


def test_triton_on_cpu_needs_the_interpreter():
    if os.environ.get("TRITON_INTERPRET") == "1":
        pytest.skip("the interpreter is on in this process")
    pytest.importorskip("triton")
    with pytest.raises(RuntimeError, match="TRITON_INTERPRET=1"):
        plugins.splat(torch.zeros(1, 1, 2, 2), torch.zeros(1, 2, 2, 2), mode="sum", impl="triton")


# --- the Triton kernel under the interpreter (subprocess) -----------------------------------------------------


def _worker(path: str) -> None:
    from gimm_trt.plugins import triton_kernel

    results = {}
    for name, (x, flow, metric) in make_cases().items():
        for mode in MODES:
            key = f"{name}/{mode}"
            results[f"{key}/splat"] = plugins.splat(x, flow, metric, mode, impl="triton")
            out = torch.empty(x.shape[0], schema.out_channels(x.shape[1], mode), *x.shape[2:])
            results[f"{key}/grid"] = triton_kernel.launch(x, flow, metric, out, mode, own_plane=False, block=16)
            if name == "c64" and mode != "linear-zeroeps":
                continue  # one program per output plane: the interpreter's time goes there
            # the TensorRT form must not depend on what the output buffer held; a small block makes every
            # program loop over several steps, as at real sizes
            out = torch.full_like(results[f"{key}/grid"], float("nan"))
            results[f"{key}/own_plane"] = triton_kernel.launch(x, flow, metric, out, mode, own_plane=True, block=16)
    torch.save(results, path)


@pytest.fixture(scope="module")
def interpreted(tmp_path_factory):
    pytest.importorskip("triton")
    path = tmp_path_factory.mktemp("splat") / "triton.pt"
    env = dict(os.environ, TRITON_INTERPRET="1")
    root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join([root] + [p for p in [env.get("PYTHONPATH")] if p])
    run = subprocess.run([sys.executable, __file__, str(path)], env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-4000:]
    return torch.load(path)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", ["edges", "c1", "c64", "fp16", "bf16", "shift"])
def test_triton_interpreter(interpreted, case, mode):
    x, flow, metric = make_cases()[case]
    want = plugins.splat(x, flow, metric, mode, impl="torch")
    got = interpreted[f"{case}/{mode}/splat"]
    assert got.dtype == torch.float32 and got.shape == x.shape
    np.testing.assert_allclose(got.numpy(), slow_splat(x, flow, metric, mode), rtol=1e-5, atol=_tol(x))
    # against the reference only the order of the fp32 sums differs (and exp's last bits in softmax mode)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    acc_want = plugins.accumulate(x, flow, metric, mode, impl="torch")
    for form in ("grid", "own_plane"):
        acc = interpreted.get(f"{case}/{mode}/{form}")
        if acc is None:
            assert (case, form) == ("c64", "own_plane") and mode != "linear-zeroeps"
            continue
        assert acc.shape == (x.shape[0], schema.out_channels(x.shape[1], mode)) + tuple(x.shape[2:])
        assert torch.isfinite(acc).all(), form
        torch.testing.assert_close(acc, acc_want, rtol=1e-5, atol=1e-6, msg=form)
    if case == "shift":  # no two sources meet: no summation order, so bitwise equal
        assert torch.equal(interpreted[f"{case}/{mode}/grid"], acc_want) or mode == "softmax-zeroeps"


# --- the launch grid -------------------------------------------------------------------------------------------

H200_SMS = 132


@pytest.mark.parametrize(
    "frame,ds,steps", [((2160, 3840), 0.25, 1), ((2160, 3840), 0.25, 8), ((1080, 1920), 1.0, 1)], ids=str
)
def test_launch_grid_fills_an_h200(frame, ds, steps):
    """At 4K (ds 0.25) and 1080p (ds 1), one frame pair and one timestep already launch many times the SMs of an
    H200: a row of cdiv(H*W, BLOCK) tile programs per plane. That the tiles cover every pixel once, a last partial
    tile included, is the kernel's to show: ``test_triton_interpreter`` runs this grid with a block of 16 on planes
    of 24 to 42 pixels against the reference."""
    pytest.importorskip("triton")
    from gimm_trt.core.sizes import processing_size
    from gimm_trt.plugins import triton_kernel

    _, _, h, w = processing_size(*frame, ds)
    c, mode = 16, schema.DEFAULT_MODE  # the motion latents' channels, the released checkpoints' mode
    block = triton_kernel.launch_config(own_plane=False)["BLOCK"]
    grid = triton_kernel.launch_grid(steps, c, h, w, mode)
    planes = steps * schema.out_channels(c, mode)
    assert grid == (-(-h * w // block), planes)
    assert grid[0] * grid[1] >= 100 * H200_SMS
    # the TensorRT AOT form keeps one program per plane (see triton_kernel): its grid is the planes alone
    assert triton_kernel.launch_grid(steps, c, h, w, mode, own_plane=True) == (planes,)


def test_launch_refuses_more_planes_than_a_grid_holds():
    pytest.importorskip("triton")
    from gimm_trt.plugins import triton_kernel

    x = torch.zeros(4097, 16, 1, 1)
    out = torch.empty(4097, 17, 1, 1)
    with pytest.raises(InputError, match="exceed the 65535 planes one launch takes"):
        triton_kernel.launch(x, torch.zeros(4097, 2, 1, 1), torch.zeros(4097, 1, 1, 1), out, "linear-zeroeps")


# --- on a GPU (skipped elsewhere) -------------------------------------------------------------------------------


@pytest.mark.gpu
@pytest.mark.parametrize("impl", ["triton", "cupy"])
def test_cuda_kernels(impl):
    pytest.importorskip(impl)
    from gimm_trt.plugins import triton_kernel

    g = torch.Generator().manual_seed(1)
    x = torch.randn(4, 16, 135, 240, generator=g)
    flow = torch.randn(4, 2, 135, 240, generator=g) * 8
    flow[0, :, :4, :4] = float("nan")
    metric = torch.rand(4, 1, 135, 240, generator=g)
    for mode in MODES:
        want = plugins.splat(x, flow, metric, mode, impl="torch")
        got = plugins.splat(x.cuda(), flow.cuda(), metric.cuda(), mode, impl=impl).cpu()
        # summation order differs: a few pixels that only receive weights ~1e-6 may flip
        close = torch.isclose(got, want, rtol=1e-4, atol=1e-4).float().mean().item()
        assert close > 0.9995, (mode, close)
        if impl == "triton":
            acc = plugins.accumulate(x, flow, metric, mode, impl="torch")
            out = torch.full(acc.shape, float("nan"), device="cuda")
            own = triton_kernel.launch(x.cuda().half(), flow.cuda(), metric.cuda(), out, mode, own_plane=True).cpu()
            acc16 = plugins.accumulate(x.half(), flow, metric, mode, impl="torch")
            assert torch.isclose(own, acc16, rtol=1e-4, atol=1e-4).float().mean().item() > 0.9995, mode


# --- the portable decomposition (what the "portable" export computes) -----------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_portable_matches_reference(mode):
    from gimm_trt.plugins import onnx_node

    for case in ("edges", "c64", "fp16"):
        x, flow, metric = make_cases()[case]
        want = plugins.splat(x, flow, metric, mode, impl="torch")
        with onnx_node.export_splat_mode("portable"):
            got = plugins.splat(x, flow, metric, mode)
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


if __name__ == "__main__":
    _worker(sys.argv[1])
