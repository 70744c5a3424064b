"""The input boundary under random input: shapes, dtypes, layouts, value ranges, timesteps, scales and factors
through ``Interpolator.interpolate`` and ``Interpolator.stream``. Every call either returns finite frames in
[0, 1] of the right shape or raises the project's ``InputError``: never NaN, never another exception.

Most examples run on ``fakes.CrossFade`` (milliseconds each; its synthesis divides by t and 1 - t in float32 as
the real one does, so a timestep the checks let through wrongly shows as NaN); a few run the real model with
random weights on 128x128 frames (seconds per timestep on a CPU). The real model's stream is tested in
test_interpolator.py.
"""

import math

import numpy as np
import pytest
import torch
from fakes import crossfade
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from gimm_trt import Interpolator
from gimm_trt.core.errors import InputError
from gimm_trt.runtime.frames import T_MAX, T_MIN, check_timesteps

FAST = settings(
    max_examples=200,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
REAL = settings(max_examples=1, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])

# (height, width): sizes the model runs (after padding to 32) and sizes it refuses, empty ones included
SIZES = [(128, 128), (127, 161), (150, 130), (96, 128), (128, 60), (1, 1), (0, 128), (128, 0)]
DTYPES = ["float32", "float64", "float16", "bfloat16", "uint8", "uint16", "int32", "int64", "bool", "complex64"]
LAYOUTS = ["chw", "1chw", "hwc", "hw", "2chw", "4hw", "big-endian", "strided", "readonly"]
RANGES = ["unit", "overshoot", "byte", "signed", "huge", "nan", "inf"]
BAD_OBJECTS = [None, "frame.png", [[0.5] * 4] * 3, 0.5, object()]


@st.composite
def frame_specs(draw):
    return {
        "size": draw(st.sampled_from(SIZES)),
        "dtype": draw(st.sampled_from(DTYPES)),
        "layout": draw(st.sampled_from(LAYOUTS)),
        "range": draw(st.sampled_from(RANGES)),
        "torch": draw(st.booleans()),
        "seed": draw(st.integers(0, 2**16)),
    }


@st.composite
def valid_specs(draw):
    """Specs of frames the API takes, so that examples reach the model often."""
    return {
        "size": draw(st.sampled_from(SIZES[:4])),
        "dtype": draw(st.sampled_from(["float32", "uint8", "float64"])),
        "layout": draw(st.sampled_from(["chw", "1chw", "readonly"])),
        "range": draw(st.sampled_from(["unit"] * 3 + ["overshoot"])),
        "torch": draw(st.booleans()),
        "seed": draw(st.integers(0, 2**16)),
    }


def make_frame(spec: dict):
    """A frame as a spec describes: uint8 frames in HWC order, others in CHW order, unless the layout says."""
    (h, w), dtype, layout, kind = spec["size"], spec["dtype"], spec["layout"], spec["range"]
    rng = np.random.default_rng(spec["seed"])
    x = rng.random((3, h, w))
    x = {
        "unit": x,
        "overshoot": x * 1.01 - 0.005,
        "byte": x * 255,
        "signed": x * 2 - 1,
        "huge": x * 1e30,
        "nan": np.where(x > 0.99, np.nan, x),
        "inf": np.where(x > 0.99, np.inf, x),
    }[kind]
    if dtype in ("uint8", "uint16", "int32", "int64", "bool"):
        x = np.nan_to_num(np.clip(x, 0, 1) * (255 if dtype == "uint8" else 65535), posinf=255)
    if dtype == "uint8" or layout == "hwc":
        x = x.transpose(1, 2, 0)
    x = {
        "1chw": lambda a: a[None],
        "hw": lambda a: a[0] if len(a) else a[:, 0],
        "2chw": lambda a: np.stack([a, a]),
        "4hw": lambda a: np.concatenate([a, a[:1]]),
    }.get(layout, lambda a: a)(x)
    if dtype == "bfloat16":
        return torch.from_numpy(np.ascontiguousarray(x, np.float32)).to(torch.bfloat16)
    with np.errstate(over="ignore", invalid="ignore"):  # 1e30 in float16 is inf, as meant
        arr = x.astype(np.dtype(dtype).newbyteorder(">") if layout == "big-endian" else dtype)
    if layout == "strided":
        arr = np.repeat(arr, 2, axis=-1)[..., ::2]
    if layout == "readonly":
        arr.flags.writeable = False
    return torch.from_numpy(np.ascontiguousarray(arr).copy()) if spec["torch"] and layout != "big-endian" else arr


def frame_size(frame):
    """(H, W) the API reads from a frame it accepts."""
    return tuple(frame.shape[:2]) if frame.dtype in (np.uint8, torch.uint8) else tuple(frame.shape[-2:])


frames = st.one_of(frame_specs().map(make_frame), valid_specs().map(make_frame), st.sampled_from(BAD_OBJECTS))
floats = st.floats(allow_nan=True, allow_infinity=True)
unit_floats = st.floats(min_value=0.0, max_value=1.0)
EDGE_TIMESTEPS = [0.0, 1.0, 0.99999999, 1e-50, 1e-40, T_MIN, T_MAX, T_MIN / 2, math.nan, 0.5]
timesteps = st.one_of(
    st.lists(unit_floats, min_size=1, max_size=3),
    st.lists(st.floats(min_value=0.01, max_value=0.99), min_size=1, max_size=3),
    st.lists(st.sampled_from(EDGE_TIMESTEPS), min_size=1, max_size=3),
    floats,
    st.lists(floats, max_size=3),
    unit_floats.map(np.float32),
    st.lists(unit_floats, min_size=1, max_size=3).map(np.array),
    st.lists(unit_floats, min_size=1, max_size=3).map(torch.tensor),
    st.sampled_from(
        ["0.5", ["0.5"], None, [], [[0.5]], [0.5, None], True, np.array([[0.5]]), torch.tensor([1j]), complex(0.5, 0)]
    ),
)
scales = st.sampled_from([None, 1.0, 0.5, 0.25, 0.3, 0.0, -1.0, 2.0, math.nan, math.inf, "0.5", np.float32(1.0), True])


def check_frames(out, count: int, size: tuple) -> None:
    assert out.shape == (count, 3, *size), (out.shape, count, size)
    assert out.dtype == torch.float32 and bool(torch.isfinite(out).all()), "non-finite frames"
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0


@pytest.fixture(scope="module")
def fake():
    return crossfade()


@FAST
@given(img0=frames, img1=st.one_of(st.none(), frames), ts=timesteps, ds=scales)
def test_interpolate_returns_finite_frames_or_an_input_error(fake, img0, img1, ts, ds):
    img1 = img0 if img1 is None else img1  # often the same frame: then only the shared checks decide
    try:
        out = fake.interpolate(img0, img1, ts, ds_scale=ds)
    except InputError:
        return
    check_frames(out, len(check_timesteps(ts)), frame_size(img0))


@FAST
@given(
    items=st.lists(st.one_of(valid_specs().map(make_frame), frames), max_size=4),
    factor=st.sampled_from([2, 3, np.int64(2), 1, 0, 2.0, True, "2", None]),
    ds=scales,
)
def test_stream_yields_finite_frames_or_an_input_error(fake, items, factor, ds):
    try:
        out = list(fake.stream(iter(items), factor=factor, ds_scale=ds))
    except InputError:
        return
    n = len(items)
    assert len(out) == (0 if n == 0 else n + (n - 1) * (int(factor) - 1))
    if out:
        check_frames(torch.stack(out), len(out), frame_size(items[0]))


# -------------------------------------------------------------------------------- the real model
@pytest.fixture(scope="module")
def model():
    with pytest.warns(UserWarning, match="random weights"):
        return Interpolator.from_checkpoint(variant="R", random_weights=True, seed=0)


@pytest.fixture(scope="module")
def pair():
    g = torch.Generator().manual_seed(3)
    return torch.rand(3, 128, 128, generator=g), torch.rand(3, 128, 128, generator=g)


@REAL
@given(t=st.floats(min_value=T_MIN, max_value=T_MAX))
@example(t=0.99999999)
def test_the_model_gives_finite_frames_at_and_between_the_float32_limits(model, pair, t):
    # one call, three timesteps: the synthesis stage's cost is per timestep, the flow's per call
    try:
        out = model.interpolate(*pair, [T_MIN, t, T_MAX])
    except InputError:
        assert float(np.float32(t)) == 1.0  # refused only when t rounds to 1 in float32
        return
    check_frames(out, 3, (128, 128))
