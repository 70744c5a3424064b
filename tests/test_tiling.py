"""Tiled synthesis: the full-size parts computed in windows with a halo give the untiled frames."""

import pytest
import torch
import torch.nn as nn

from gimm_trt.model._utils import halo, tiles
from gimm_trt.model.checkpoint import load_model


@pytest.fixture(scope="module")
def synthesis():
    return load_model(variant="R-P", random_weights=True, seed=1).synthesis


def _inputs(hp, wp, ds, n, seed=0):
    g = torch.Generator().manual_seed(seed)
    h, w = int(hp * ds), int(wp * ds)
    r = lambda *s: torch.randn(*s, generator=g)  # noqa: E731
    img0, img1 = torch.rand(1, 3, hp, wp, generator=g), torch.rand(1, 3, hp, wp, generator=g)
    feats = (
        r(1, 128, h // 4, w // 4),
        r(1, 128, h // 4, w // 4),
        r(1, 256, h // 8, w // 8),
        r(1, 256, h // 8, w // 8),
        r(1, 256, h // 8, w // 8),
        r(1, 256, h // 8, w // 8),
    )
    flowt = 4 * r(n, 2, h, w)
    t = torch.linspace(0.2, 0.8, n)
    return (img0, img1, *feats, flowt, t, ds)


def test_halo_walks_the_convolutions():
    stack = nn.Sequential(
        nn.Conv2d(1, 1, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(1, 1, 7, padding=3),
        nn.Conv2d(1, 1, 3, padding=2, dilation=2),
    )
    assert halo(stack) == 1 + 3 + 2
    assert halo(nn.Sequential(nn.Conv2d(1, 1, 3, stride=2), nn.Conv2d(1, 1, 3))) == 1 + 2
    # the receptive field of the real blocks: 1 + 3 ResBlocks x 5 + 1 (3x3), and two 7x7
    model = load_model(variant="R", random_weights=True).synthesis
    assert halo(model.final_decoder.convblock) == 17
    assert halo(model.combine) == 6
    assert halo(load_model(variant="R", random_weights=True).motion.refiner) == 5


def test_tiles_cover_the_frame_once():
    seen = torch.zeros(37, 53, dtype=torch.int32)
    for (y0, y1, x0, x1), (ry0, ry1, rx0, rx1) in tiles(37, 53, 16, 5):
        seen[y0:y1, x0:x1] += 1
        assert ry0 == max(y0 - 5, 0) and ry1 == min(y1 + 5, 37) and rx0 == max(x0 - 5, 0) and rx1 == min(x1 + 5, 53)
    assert bool((seen == 1).all())


@pytest.mark.parametrize(
    "hp, wp, ds, n, tile",
    [
        pytest.param(128, 224, 1.0, 2, 64, marks=pytest.mark.slow),
        (128, 224, 1.0, 1, 37),
        pytest.param(136, 152, 1.0, 3, 51, marks=pytest.mark.slow),
        pytest.param(256, 448, 0.5, 2, 100, marks=pytest.mark.slow),
        (256, 320, 0.5, 1, 33),
        (128, 160, 1.0, 2, 500),
    ],
)
def test_tiled_equals_untiled(synthesis, hp, wp, ds, n, tile):
    args = _inputs(hp, wp, ds, n)
    with torch.inference_mode():
        whole = synthesis(*args)
        tiled = synthesis(*args, tile=tile)
    assert tiled.shape == whole.shape == (n, 3, hp, wp)
    assert float((tiled - whole).abs().max()) <= 1e-5
    assert float(whole.std()) > 0.01  # frames with content, not a constant both paths would agree on


def test_tiled_decoder_and_composition_each_match(synthesis):
    # the decoder's four outputs separately: a wrong window in one could hide behind the clamp of the frame
    img0, img1, f4_0, f4_1, f8_0, f8_1, c0, c1, flowt, t, ds = _inputs(128, 224, 1.0, 2, seed=3)
    with torch.inference_mode():
        x0, x1 = img0, img1
        q = synthesis.quarter_flows(x0, x1, f8_0, f8_1, c0, c1, flowt, t)
        args = (
            q[2],
            synthesis.final_decoder.upsample(f4_0),
            synthesis.final_decoder.upsample(f4_1),
            q[0],
            q[1],
            q[3],
            2 * x0 - 1.0,
            2 * x1 - 1.0,
        )
        whole = synthesis.final_decoder(*args)
        tiled = synthesis.decode_tiled(args, 45)
    for a, b in zip(whole, tiled):
        assert float((a - b).abs().max()) <= 1e-5


@pytest.mark.parametrize("h, w, n, tile", [(64, 112, 2, 16), (41, 57, 3, 7), (64, 112, 1, 500)])
def test_tiled_motion_equals_whole(h, w, n, tile):
    # the refiner (reflect padding at the frame's sides, zeros inside) and the coordinate MLP per window
    motion = load_model(variant="R-P", random_weights=True, seed=2).motion
    g = torch.Generator().manual_seed(4)
    flow01, flow10 = 3 * torch.randn(1, 2, h, w, generator=g), 3 * torch.randn(1, 2, h, w, generator=g)
    t = torch.linspace(0.2, 0.8, n)
    with torch.inference_mode():
        whole = motion(flow01, flow10, t)
        chunked = motion(flow01, flow10, t, tile=tile)
    assert chunked.shape == whole.shape == (n, 2, h, w)
    assert float((chunked - whole).abs().max()) <= 1e-5 * float(whole.abs().max())
    assert float(whole.std()) > 0.01
