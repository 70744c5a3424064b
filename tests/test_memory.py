"""The memory model: the live-bytes tracker against hand-counted bytes, the fake-tensor estimate against the
same accounting of a real run, and the gimm-bench --estimate-memory rows."""

import json

import pytest
import torch
from click.testing import CliRunner
from torch._subclasses.fake_tensor import FakeTensorMode

from gimm_trt.benchmarks.memory import estimate_peak
from gimm_trt.cli import bench
from gimm_trt.core.errors import InputError
from gimm_trt.model.checkpoint import load_model
from gimm_trt.model.memory import CUDA_BLOCK, LiveBytes, estimate, fake_model, run_pair


def test_tracker_counts_storages_alive_together():
    tracker = LiveBytes()
    with FakeTensorMode(), tracker:
        a = torch.empty(1024)  # 4 KiB
        b = a * 2  # a and b alive: 8 KiB
        view = b[:10]  # a view: no new bytes
        del a
        c = b + 1  # b and c: 8 KiB
        del b, c, view
        d = torch.empty(256)  # 1 KiB alone
        del d
        tracker._sample()
    assert tracker.peak == 8192
    assert tracker.now == 0


def test_tracker_rounds_like_the_cuda_allocator():
    tracker = LiveBytes(CUDA_BLOCK)
    with FakeTensorMode(), tracker:
        a = torch.empty(3)  # 12 bytes -> one 512-byte block
        b = torch.empty(129)  # 516 bytes -> two blocks
        assert tracker.now == 3 * 512
        del a, b


def test_fake_estimate_equals_the_real_run_accounting():
    # the same tracker counting real tensors of a real computation: fake tensors must give the same bytes
    real = LiveBytes()
    run_pair(load_model(variant="R-P", random_weights=True), real, 128, 224, 1.0, timesteps=3)
    est = estimate("r", 128, 224, 1.0, timesteps=3)
    assert est.total == real.peak
    assert est.stages == real.peaks
    assert est.weights == real.fixed > 70 * 2**20  # R-P holds ~75 MiB of fp32 parameters


def test_tiled_estimate_from_one_window_per_kind_equals_the_full_tiled_run():
    # the real run computes all 12 windows of 48 px (and the motion MLP in 48*48-pixel chunks); the estimate
    # runs one window of each kind. Windows of one kind are not byte-identical in the full run itself (their
    # peaks differ by a few hundred KiB, ~0.2%: storages the previous window left are freed at varying points),
    # so the estimate keeps the peak within 0.5%, the stages before synthesis exactly
    real = LiveBytes()
    run_pair(load_model(variant="R-P", random_weights=True), real, 128, 160, 1.0, timesteps=1, tile=48)
    est = estimate("r", 128, 160, 1.0, timesteps=1, tile=48)
    assert abs(est.total - real.peak) <= 0.005 * real.peak, (est.total, real.peak)
    assert est.stages["flow"] == real.peaks["flow"] and est.stages["motion"] == real.peaks["motion"]
    untiled = estimate("r", 128, 160, 1.0, timesteps=1)
    assert est.stages["synthesis"] < 0.7 * untiled.stages["synthesis"]
    assert est.stages["motion"] < untiled.stages["motion"]


def test_estimate_grows_with_the_batch_and_shrinks_with_fp16():
    fake = FakeTensorMode()
    model = fake_model("r", fake)
    one = estimate("r", 128, 224, 1.0, timesteps=1, model=model, fake_mode=fake)
    four = estimate("r", 128, 224, 1.0, timesteps=4, model=model, fake_mode=fake)
    half = estimate("r", 128, 224, 1.0, timesteps=4, precision="fp16", model=model, fake_mode=fake)
    assert four.stages["synthesis"] > 2 * one.stages["synthesis"]
    assert abs(four.stages["flow"] - one.stages["flow"]) < 64  # the flow stage sees only the timesteps vector
    assert half.stages["synthesis"] < 0.8 * four.stages["synthesis"]
    # a precision the model has no autocast dtype for is refused, not estimated as fp32
    with pytest.raises(InputError, match="unknown precision 'int8'"):
        estimate("r", 128, 224, 1.0, precision="int8", model=model, fake_mode=fake)


def test_bench_estimate_memory_cli(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # a CPU machine
    args = ["--estimate-memory", "--resolution", "224x128", "--precision", "fp32", "--factor", "3"]
    estimated = {}
    for device in ("cuda", None):  # cuda: planned on any machine; none given: this machine's, the CPU
        path = tmp_path / f"{device}.json"
        result = CliRunner().invoke(bench, [*args, *(["--device", device] if device else []), "--json", str(path)])
        assert result.exit_code == 0, result.output
        doc = json.loads(path.read_text())
        estimated[device] = rows = doc["rows"]
        assert [r["timesteps_per_batch"] for r in rows] == [2, 1]
        assert rows[0]["device"] == (device or "cpu")
        assert doc["notes"][0] == ("for cuda" if device else "for cpu (no --device: CUDA when available, else the CPU)")
        direct = estimate_peak("R-P", "224x128", ds=1.0, timesteps_per_batch=2, device=device or "cpu")
        assert rows[0]["estimated_peak_mib"] == direct["estimated_peak_mib"]
        assert rows[0]["estimated_peak_mib"] >= max(rows[0]["stages_mib"].values())
    # CUDA's allocator rounds each block up: the GPU figure is the larger one
    assert estimated["cuda"][0]["estimated_peak_mib"] > estimated[None][0]["estimated_peak_mib"]


def test_bench_compare_tiles_cli(tmp_path):
    path = tmp_path / "tiles.json"
    args = ["--compare-tiles", "48", "--resolution", "160x128", "--pairs", "1", "--device", "cpu"]
    result = CliRunner().invoke(bench, args + ["--json", str(path)])
    assert result.exit_code == 0, result.output
    doc = json.loads(path.read_text())
    assert doc["schema"] == "gimm-bench-tiles/1" and doc["padded_size"] == [128, 160]
    assert [r["tile"] for r in doc["rows"]] == [None, 48]
    assert doc["rows"][0]["relative_throughput"] == 1.0
    for row in doc["rows"]:
        assert row["seconds"] > 0 and row["max_abs_vs_untiled"] <= 1e-5  # tiles give the untiled frames
    bad = CliRunner().invoke(bench, ["--compare-tiles", "64,x", "--resolution", "160x128"])
    assert bad.exit_code == 2 and "--compare-tiles takes tile sides" in bad.output
