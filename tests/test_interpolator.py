"""The public API: parity through it, input forms, batching, ds_scale, stream, and clear errors."""

import pytest
import torch
import torch.nn.functional as F
from conftest import assert_close_robust, load_case

from gimm_trt import Interpolator
from gimm_trt.core.errors import InputError
from gimm_trt.model.synthetic import synthetic_state_dict
from gimm_trt.runtime import Backend


@pytest.fixture(scope="module")
def r0():
    return Interpolator.from_checkpoint(variant="R", random_weights=True, seed=0)


@pytest.fixture(scope="module")
def case0():
    return load_case("r_s0_128x224_n4_ds1")


def test_odd_size_from_safetensors_matches_official(tmp_path):
    # 147x225 is padded to 160x256 (l,r,t,b = 15,16,6,7) and cropped back
    from safetensors.torch import save_file

    case = load_case("r_s1_147x225_n2_ds1")
    path = tmp_path / "r1.safetensors"
    save_file({k: v.clone().contiguous() for k, v in synthetic_state_dict("r", 1).items()}, str(path))
    interp = Interpolator.from_checkpoint(path, variant="R-P")
    out = interp.interpolate(torch.from_numpy(case["img0"][0]), torch.from_numpy(case["img1"][0]), [0.5])
    assert out.shape == (1, 3, 147, 225) and out.dtype == torch.float32
    assert_close_robust("r_s1 via API", out, case["imgt_pred"], mean=2e-4, p99=1e-3, thr=1e-2)


def test_many_timesteps_match_official_and_single_calls(r0, case0):
    ts = case0["timesteps"].tolist()  # 1/4, 2/4, 3/4
    batched = r0.interpolate(case0["img0"], case0["img1"], ts)
    assert_close_robust("r_s0 via API", batched, case0["imgt_pred"], mean=2e-4, p99=1e-3, thr=1e-2)
    single = torch.cat([r0.interpolate(case0["img0"], case0["img1"], [t]) for t in ts])
    assert (batched - single).abs().max() < 1e-4


def test_max_batch_splits_without_changing_results(case0):
    interp = Interpolator.from_checkpoint(variant="R", random_weights=True, seed=0, max_batch=2)
    out = interp.interpolate(case0["img0"], case0["img1"], case0["timesteps"].tolist())
    assert_close_robust("max_batch=2", out, case0["imgt_pred"], mean=2e-4, p99=1e-3, thr=1e-2)


def test_uint8_hwc_equals_float_chw(r0, case0):
    u0 = (torch.from_numpy(case0["img0"][0]).permute(1, 2, 0) * 255).round().to(torch.uint8)
    u1 = (torch.from_numpy(case0["img1"][0]).permute(1, 2, 0) * 255).round().to(torch.uint8)
    a = r0.interpolate(u0.numpy(), u1, 0.5)
    b = r0.interpolate(u0.permute(2, 0, 1).float() / 255, u1.permute(2, 0, 1).float().unsqueeze(0) / 255, 0.5)
    assert a.shape == (1, 3, 128, 224)
    assert torch.equal(a, b)


def test_ds_half_runs_the_estimator_at_half_size(r0, case0):
    big0 = F.interpolate(torch.from_numpy(case0["img0"]), scale_factor=2.0, mode="bilinear")
    big1 = F.interpolate(torch.from_numpy(case0["img1"]), scale_factor=2.0, mode="bilinear")
    feats = r0.backend.flow(big0, big1, 0.5)
    assert feats["flow01"].shape == (1, 2, 128, 224)
    with torch.inference_mode():
        direct = r0.backend.model.flow.estimator(
            F.interpolate(big0, scale_factor=0.5, mode="bilinear"),
            F.interpolate(big1, scale_factor=0.5, mode="bilinear"),
        )
    assert torch.equal(feats["flow01"], direct[0])
    out = r0.interpolate(big0, big1, [0.5], ds_scale=0.5)
    assert out.shape == (1, 3, 256, 448)
    assert 0.0 <= out.min() and out.max() <= 1.0
    # the full-resolution frame follows the half-resolution one closely: same motion, finer detail
    half = r0.interpolate(
        F.interpolate(big0, scale_factor=0.5, mode="bilinear"),
        F.interpolate(big1, scale_factor=0.5, mode="bilinear"),
        [0.5],
    )
    assert (F.interpolate(out, scale_factor=0.5, mode="bilinear") - half).abs().mean() < 0.03


def test_stream_yields_originals_and_new_frames_in_order(r0, case0):
    frames = [case0["img0"][0], case0["img1"][0], case0["img0"][0]]
    out = list(r0.stream(iter(frames), factor=3))
    assert len(out) == 7
    for i, frame in zip((0, 3, 6), frames):
        assert torch.equal(out[i], torch.from_numpy(frame))
    mid = r0.interpolate(frames[1], frames[2], [1 / 3, 2 / 3])
    assert torch.allclose(torch.stack(out[4:6]), mid, atol=1e-5)


@pytest.mark.parametrize(
    "call, error",
    [
        (lambda i, a, b: i.interpolate(a, b[:, :, :64, :]), "differ in size"),
        (lambda i, a, b: i.interpolate(a[:, :, :96, :160], b[:, :, :96, :160]), ">= 128"),
        (lambda i, a, b: i.interpolate(a, b, ds_scale=0.5), ">= 128"),
        (lambda i, a, b: i.interpolate(a, b, ds_scale=0.3), "multiples of 8"),
        (lambda i, a, b: i.interpolate(a * float("nan"), b), "NaN or infinite"),
        (lambda i, a, b: i.interpolate(a, b, [0.0, 0.5]), r"strictly inside \(0, 1\)"),
        (lambda i, a, b: i.interpolate(a, b, [1.0]), r"strictly inside \(0, 1\)"),
        (lambda i, a, b: i.interpolate(a, b, []), "must not be empty"),
        (lambda i, a, b: i.interpolate(a.double().to(torch.int32), b), "dtype torch.int32"),
        (lambda i, a, b: i.interpolate(a[0, 0], b), r"must be \[3,H,W\]"),
        (lambda i, a, b: i.interpolate([1, 2], b), "must be a torch.Tensor or numpy.ndarray"),
        (lambda i, a, b: list(i.stream([a, b], factor=1)), "factor must be an integer >= 2"),
    ],
)
def test_bad_input_is_a_clear_error(r0, case0, call, error):
    a, b = torch.from_numpy(case0["img0"]), torch.from_numpy(case0["img1"])
    with pytest.raises((ValueError, TypeError), match=error):
        call(r0, a, b)


@pytest.mark.parametrize(
    "kwargs, error",
    [
        (dict(backend="tensorflow"), "unknown backend 'tensorflow'"),
        (dict(precision="int8"), "unknown precision 'int8'"),
        (dict(variant="Q"), "unknown variant 'Q'"),
        (dict(device="tpu"), "device must be"),
    ],
)
def test_bad_construction_is_a_clear_error(kwargs, error):
    with pytest.raises(ValueError, match=error):
        Interpolator.from_checkpoint(random_weights=True, **{"variant": "R", **kwargs})


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message shown when CUDA is absent")
def test_cuda_absent_is_a_clear_error():
    with pytest.raises(ValueError, match="CUDA is not available"):
        Interpolator.from_checkpoint(variant="R", random_weights=True, device="cuda")


def test_random_weights_say_so():
    with pytest.warns(UserWarning, match="random weights"):
        interp = Interpolator.from_checkpoint(variant="R", random_weights=True)
    assert "random weights" in interp.weights and "random weights" in repr(interp)


class FakeBackend(Backend):
    """Records what the Interpolator asks for; synthesis 'runs out of CUDA memory' above 2 timesteps."""

    name, ds_scale, device, precision = "fake", None, torch.device("cpu"), "fp32"

    def __init__(self):
        self.batches, self.encoded = [], 0

    def flow(self, x0, x1, ds):
        return {"flow01": torch.zeros(1, 2, 1, 1), "flow10": torch.zeros(1, 2, 1, 1)}

    def encode(self, x, ds):
        self.encoded += 1
        return (x,)

    def estimate(self, enc0, enc1, ds):
        return self.flow(enc0[0], enc1[0], ds)

    def motion(self, flow01, flow10, t):
        return t

    def synthesis(self, x0, x1, feats, flowt, t, ds):
        self.batches.append(len(t))
        if len(t) > 2:
            raise torch.cuda.OutOfMemoryError("fake out of memory")
        w = t.view(-1, 1, 1, 1)
        return x0 * (1 - w) + x1 * w


def test_out_of_memory_halves_the_batch_and_remembers_it():
    fake = FakeBackend()
    interp = Interpolator(fake, variant="R", weights="fake")
    a, b = torch.zeros(3, 128, 128), torch.ones(3, 128, 128)
    ts = [i / 8 for i in range(1, 8)]
    out = interp.interpolate(a, b, ts)
    assert fake.batches == [7, 3] + [1] * 7
    assert torch.allclose(out[:, 0, 0, 0], torch.tensor(ts))
    fake.batches.clear()
    interp.interpolate(a, b, ts[:2])
    assert fake.batches == [1, 1]  # starts from the batch that fit
    capped = Interpolator(FakeBackend(), variant="R", weights="fake", max_batch=4)
    with pytest.raises(torch.cuda.OutOfMemoryError):  # an explicit cap is the user's choice: not overridden
        capped.interpolate(a, b, ts)


def test_stream_encodes_each_frame_once():
    fake = FakeBackend()
    frames = [torch.full((3, 128, 128), v) for v in (0.0, 1.0, 0.0, 1.0)]
    out = list(Interpolator(fake, variant="R", weights="fake").stream(frames, factor=2))
    assert len(out) == 7 and fake.encoded == 4
    assert torch.allclose(torch.stack([o[0, 0, 0] for o in out]), torch.tensor([0, 0.5, 1, 0.5, 0, 0.5, 1.0]))


def test_stream_holds_one_batch_at_a_time():
    """A pair's frames leave batch by batch: with 999 timesteps only the running batch is alive, not the pair."""
    fake = FakeBackend()
    interp = Interpolator(fake, variant="R", weights="fake", max_batch=2)
    frames = [torch.zeros(3, 128, 128), torch.ones(3, 128, 128)]
    out = interp.stream(frames, factor=1000)
    assert torch.equal(next(out), frames[0])
    first = next(out)
    assert fake.batches == [2]  # the first new frame arrives before the second batch runs
    assert torch.allclose(first, torch.full((3, 128, 128), 0.001))
    rest = list(out)
    assert len(rest) == 999 and fake.batches == [2] * 499 + [1]
    assert torch.allclose(torch.stack([r[0, 0, 0] for r in rest[:-1]]), torch.arange(2, 1000) / 1000)
    assert torch.equal(rest[-1], frames[1])


def test_small_scales_pad_to_the_eighth_grid():
    from gimm_trt.core.sizes import Padding, pad_multiple, processing_size

    assert [pad_multiple(d) for d in (1.0, 0.75, 0.5, 0.25, 0.125, 0.0625, 0.3)] == [32, 32, 32, 32, 64, 128, 32]
    assert processing_size(2160, 3840, 0.25) == (2176, 3840, 544, 960)  # the official 4K padding is kept
    assert processing_size(4320, 7680, 0.125) == (4352, 7680, 544, 960)  # 8K: 4320 / 8 = 540 is off the grid
    pad = Padding.for_size(1056, 1000, 0.125)  # 1056 -> 1088, 1000 -> 1024
    assert (pad.left, pad.right, pad.top, pad.bottom) == (12, 12, 16, 16)
    with pytest.raises(InputError, match="multiples of 8"):
        processing_size(1080, 1920, 0.3)


def test_eighth_scale_runs_where_the_official_padding_cannot():
    """1056 rows pad to 1056 under the official multiple of 32, 132 rows at ds 1/8: off the grid. At 1088 they run,
    and the frame is the model's output on frames padded by hand, cropped back."""
    g = torch.Generator().manual_seed(3)
    a = torch.rand(1, 3, 1056, 1000, generator=g)
    b = torch.roll(a, shifts=(4, -6), dims=(2, 3))
    interp = Interpolator.from_checkpoint(variant="R", random_weights=True, seed=0)
    out = interp.interpolate(a, b, [0.5], ds_scale=0.125)
    assert out.shape == (1, 3, 1056, 1000)
    pa, pb = (F.pad(x, (12, 12, 16, 16), mode="replicate") for x in (a, b))
    model = interp.backend.model
    with torch.inference_mode():
        f = model.flow(pa, pb, 0.125)
        t = torch.tensor([0.5])
        ref = model.synthesis(pa, pb, *f[2:], model.motion(f[0], f[1], t), t, 0.125)[..., 16:-16, 12:-12]
    assert torch.equal(out, ref)


@pytest.mark.parametrize(
    "timesteps, error",
    [
        (
            {0.75, 0.25},
            r"^timesteps must be a sequence \(list, tuple, tensor or array\), got a set, which has no order",
        ),
        (frozenset({0.5}), r"got a frozenset, which has no order: pass sorted\(timesteps\)$"),
        (torch.tensor([0.5], device="meta"), r"^timesteps is on the meta device, which holds no values"),
        ([0.25, torch.tensor(0.5, device="meta")], r"^timesteps\[1\] is on the meta device, which holds no values"),
    ],
)
def test_unordered_or_valueless_timesteps_are_one_line_input_errors(timesteps, error):
    interp = Interpolator(FakeBackend(), variant="R", weights="fake")
    a, b = torch.zeros(3, 128, 128), torch.ones(3, 128, 128)
    with pytest.raises(InputError, match=error) as e:
        interp.interpolate(a, b, timesteps)
    assert "\n" not in str(e.value)


def test_a_sequence_of_timesteps_is_taken_in_its_own_order():
    """The frames come out in the order of the timesteps given, unsorted."""
    interp = Interpolator(FakeBackend(), variant="R", weights="fake")
    out = interp.interpolate(torch.zeros(3, 128, 128), torch.ones(3, 128, 128), [0.75, 0.25])
    assert torch.allclose(out[:, 0, 0, 0], torch.tensor([0.75, 0.25]))


def test_frames_on_the_meta_device_are_an_input_error():
    interp = Interpolator(FakeBackend(), variant="R", weights="fake")
    with pytest.raises(InputError, match=r"^img0 is on the meta device, which holds no values: pass it on the CPU"):
        interp.interpolate(torch.empty(3, 128, 128, device="meta"), torch.ones(3, 128, 128), [0.5])
