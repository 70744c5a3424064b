"""The exported backends through the public API: ``from_checkpoint(backend="onnxruntime")`` exports on demand
into the cache, ``from_export`` runs an export, and frames or scales an export cannot serve are clear errors."""

import json

import pytest
import torch
from conftest import assert_close_robust, load_case

from gimm_trt import Interpolator
from gimm_trt.export import graphs

CASE = "r_s1_147x225_n2_ds1"  # odd size: padded to 160x256 inside, cropped back


@pytest.fixture(scope="module")
def on_demand(tmp_path_factory):
    """R (seed 1) from a checkpoint-less ``from_checkpoint``, exported at its first pair into a fresh cache."""
    cache = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GIMM_TRT_CACHE", str(cache))
        interp = Interpolator.from_checkpoint(variant="R", random_weights=True, seed=1, backend="onnxruntime")
        case = load_case(CASE)
        frames = interp.interpolate(case["img0"], case["img1"], case["timesteps"].tolist())
    return {"interp": interp, "cache": cache, "case": case, "frames": frames}


def test_on_demand_export_matches_official(on_demand):
    interp, case = on_demand["interp"], on_demand["case"]
    assert interp.backend.name == "onnxruntime" and "random weights" in interp.weights
    assert on_demand["frames"].shape == (1, 3, 147, 225)
    assert_close_robust(
        "r_s1 on-demand onnxruntime", on_demand["frames"], case["imgt_pred"], mean=2e-4, p99=1e-3, thr=1e-2
    )
    (export_dir,) = interp.backend.export_dirs
    assert export_dir.parent.parent == on_demand["cache"] and export_dir.name == "R-fp32-256x160"
    data = json.loads((export_dir / "manifest.json").read_text())
    assert data["padded_size"] == [160, 256] and data["splat"]["form"] == "portable"


def test_on_demand_reuses_the_cache(on_demand, monkeypatch):
    monkeypatch.setenv("GIMM_TRT_CACHE", str(on_demand["cache"]))
    monkeypatch.setattr(graphs, "trace", lambda *a, **k: pytest.fail("re-exported instead of reusing the cache"))
    again = Interpolator.from_checkpoint(variant="R", random_weights=True, seed=1, backend="onnxruntime")
    assert again.backend._export(160, 256, 1.0).export_dir == on_demand["interp"].backend.export_dirs[0]


@pytest.fixture(scope="module")
def exported(on_demand):
    return Interpolator.from_export(on_demand["interp"].backend.export_dirs[0], backend="onnxruntime")


def test_from_export_serves_its_size_and_scale(exported, on_demand):
    assert exported.backend.ds_scale == 1.0 and exported.variant == "R"
    case = load_case("r_s0_128x224_n4_ds1")  # pads to 128x224, not 160x256
    with pytest.raises(ValueError, match=r"224x128.*256x160"):
        exported.interpolate(case["img0"], case["img1"], [0.5])
    img = on_demand["case"]["img0"]
    with pytest.raises(ValueError, match=r"ds_scale=1.0.*0.5"):
        exported.interpolate(img, img, [0.5], ds_scale=0.5)
    exported.backend.check_frames(150, 230)  # any size that pads to the export's 160x256 is served
    with pytest.raises(ValueError, match="gimm-export --resolution 225x161"):
        exported.backend.check_frames(161, 225)


def test_device_and_backend_errors(on_demand, tmp_path):
    export_dir = on_demand["interp"].backend.export_dirs[0]
    with pytest.raises(ValueError, match="CUDA"):
        Interpolator.from_export(export_dir, backend="tensorrt", device="cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA"):
            Interpolator.from_export(export_dir, backend="onnxruntime", device="cuda")
    with pytest.raises(ValueError, match="an export runs on an exported backend .*, not 'torch'"):
        Interpolator.from_export(export_dir, backend="torch")
    with pytest.raises(ValueError, match="not a gimm-export directory"):
        Interpolator.from_export(tmp_path, backend="onnxruntime")
