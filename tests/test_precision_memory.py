"""The paths that make the torch backend fast and small: on-the-fly correlation, fp32 islands under
reduced precision, per-frame encoder reuse. Each is checked against the exact fp32 reference."""

import warnings

import pytest
import torch
from conftest import assert_close_robust, load_case, run_stages

import gimm_trt.model.flow._utils as flow_utils
from gimm_trt import Interpolator
from gimm_trt.model._utils import resize, warp
from gimm_trt.model.checkpoint import load_model
from gimm_trt.model.flow._utils import Correlation
from gimm_trt.runtime import torch_backend
from gimm_trt.runtime.torch_backend import TorchBackend, cpu_has_bf16


def _grid(n, h, w):
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    return torch.stack([xs, ys]).expand(n, 2, h, w)


@pytest.mark.parametrize("shared", [False, True])
def test_features_correlation_equals_the_volume(monkeypatch, shared):
    g = torch.Generator().manual_seed(0)
    b, q = (1, 5) if shared else (2, 2)
    f0, f1 = torch.randn(b, 32, 16, 28, generator=g), torch.randn(b, 32, 16, 28, generator=g)
    # centres inside, near and beyond the borders, at fractional positions
    coords = _grid(q, 16, 28) + 6 * torch.randn(q, 2, 16, 28, generator=g)
    vol = Correlation(f0, f1, scale=0.125, mode="volume")(coords, shared=shared)
    assert vol.shape == (q, 4 * 81, 16, 28)
    monkeypatch.setattr(flow_utils, "CHUNK_BYTES", 4 * 32 * 81 * q * 5)  # chunks of 5 pixels: exercises the seams
    feat = Correlation(f0, f1, scale=0.125, mode="features")(coords, shared=shared)
    assert (vol - feat).abs().max() < 1e-5 * vol.abs().max()
    assert vol.abs().mean() > 0.05  # not trivially zero


def test_auto_mode_switches_by_size():
    small = torch.zeros(1, 8, 16, 28)
    assert Correlation(small, small).mode == "volume"
    big = torch.zeros(1, 8, 136, 240)  # 1080p at ds 1: a 5.3 GiB volume
    assert Correlation(big, big).mode == "features"


def test_model_parity_with_on_the_fly_correlation(monkeypatch):
    case = load_case("r_s0_128x224_n4_ds1")
    monkeypatch.setattr(flow_utils, "VOLUME_BYTES", 0)  # a zero budget: "auto" always computes on the fly
    ours = run_stages(case, load_model(variant="R", random_weights=True, seed=0))
    for key in ("raft_flow", "flowt", "imgt_pred"):
        bound = dict(raft_flow=(1e-4, 1e-3, 1e-2), flowt=(1e-3, 1e-2, 0.1), imgt_pred=(2e-4, 1e-3, 1e-2))[key]
        assert_close_robust(key, ours[key], case[key], mean=bound[0], p99=bound[1], thr=bound[2])


def test_islands_stay_fp32_under_autocast():
    g = torch.Generator().manual_seed(1)
    x, flow = torch.randn(2, 8, 32, 48, generator=g), 3 * torch.randn(2, 2, 32, 48, generator=g)
    f = torch.randn(1, 16, 16, 24, generator=g)
    c = _grid(3, 16, 24) + torch.randn(3, 2, 16, 24, generator=g)
    exact = warp(x, flow), resize(flow, 0.5), Correlation(f, f, scale=0.25)(c, shared=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = warp(x, flow), resize(flow, 0.5), Correlation(f, f, scale=0.25)(c, shared=True)
        conv = torch.nn.functional.conv2d(x, torch.randn(4, 8, 3, 3))
    assert conv.dtype == torch.bfloat16  # autocast is on ...
    for a, b in zip(exact, low):  # ... and the islands ignore it
        assert b.dtype == torch.float32 and torch.equal(a, b)


@pytest.mark.skipif(
    not cpu_has_bf16(), reason="this CPU emulates bf16 convolutions (~80x slower than fp32): minutes for one pair"
)
def test_bf16_backend_accuracy():
    case = load_case("r_s0_128x224_n4_ds1")
    interp = Interpolator.from_checkpoint(variant="R", random_weights=True, seed=0, precision="bf16")
    out = interp.interpolate(case["img0"], case["img1"], case["timesteps"].tolist())
    assert out.dtype == torch.float32
    psnr = -10 * torch.log10(((out - torch.from_numpy(case["imgt_pred"])) ** 2).mean())
    assert psnr > 40.0, f"bf16 vs official fp32: {psnr:.1f} dB"  # measured 52 dB; fp32 gives > 130 dB


def test_bf16_on_a_cpu_without_it_warns(monkeypatch):
    monkeypatch.setattr(torch_backend, "cpu_has_bf16", lambda: False)
    model = load_model(variant="R", random_weights=True)
    with pytest.warns(UserWarning, match="no native bf16.*80x slower than fp32"):
        TorchBackend(model, device="cpu", precision="bf16")
    monkeypatch.setattr(torch_backend, "cpu_has_bf16", lambda: True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        TorchBackend(model, device="cpu", precision="bf16")
        TorchBackend(model, device="cpu", precision="fp32")


def test_fp16_on_cpu_is_refused_with_the_alternative():
    with pytest.raises(ValueError, match="precision 'fp16' of backend 'torch' does not run on the CPU.*'bf16'"):
        Interpolator.from_checkpoint(variant="R", random_weights=True, precision="fp16")


def test_encoding_frames_separately_is_exact():
    case = load_case("r_s1_147x225_n2_ds1")
    model = load_model(variant="R", random_weights=True, seed=1)
    a = torch.nn.functional.pad(torch.from_numpy(case["img0"]), (15, 16, 6, 7), mode="replicate")
    b = torch.nn.functional.pad(torch.from_numpy(case["img1"]), (15, 16, 6, 7), mode="replicate")
    with torch.inference_mode():
        pair = model.flow(a, b, 1.0)
        reused = model.flow.estimate(model.flow.encode(a, 1.0), model.flow.encode(b, 1.0))
    for x, y in zip(pair, reused):
        assert torch.equal(x, y)
