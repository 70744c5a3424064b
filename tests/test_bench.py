"""gimm-bench: the document it returns, the official-way reference, skipped rows, table, JSON, plot and CLI.

The model is a stand-in with the real stage signatures (a cross-fade for synthesis), so these tests check the
benchmark machinery in seconds; benchmarks/results/ holds a run of the real model.
"""

import copy
import json

import pytest
import torch
import torch.nn as nn
from click.testing import CliRunner

from gimm_trt.benchmarks import BenchConfig, format_table, interpolate_official_way, run, write_json, write_plot
from gimm_trt.cli import bench
from gimm_trt.core.sizes import parse_resolution
from gimm_trt.model.spec import ModelSpec
from gimm_trt.runtime.registry import unavailable
from gimm_trt.runtime.torch_backend import TorchBackend


class Stage(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn, self.calls = fn, 0

    def forward(self, *args):
        self.calls += 1
        return self.fn(*args)


def _flow(img0, img1, ds):
    h, w = int(img0.shape[2] * ds), int(img0.shape[3] * ds)
    z = lambda c, s: torch.zeros(1, c, h // s, w // s)  # noqa: E731
    return z(2, 1), z(2, 1), z(128, 4), z(128, 4), z(256, 8), z(256, 8), z(256, 8), z(256, 8)


def _synthesis(img0, img1, f4_0, f4_1, f8_0, f8_1, c0, c1, flowt, t, ds):
    # depends on position (a ramp), so a wrong pad or crop shows
    ramp = torch.linspace(0, 0.1, img0.shape[3]).view(1, 1, 1, -1)
    t = t.view(-1, 1, 1, 1)
    return ((1 - t) * img0 + t * img1) * 0.9 + ramp


class FakeGIMM(nn.Module):
    def __init__(self):
        super().__init__()
        self.flow = Stage(_flow)
        self.motion = Stage(lambda f01, f10, t: f01.expand(t.shape[0], -1, -1, -1).clone())
        self.synthesis = Stage(_synthesis)


def _patch(mp):
    """Every interpolator built from a checkpoint gets a fresh stand-in model; returns them in order."""
    models = []

    def load_model(checkpoint=None, *, variant="R-P", random_weights=False, seed=0, **kwargs):
        models.append(FakeGIMM())
        return models[-1]

    mp.setattr("gimm_trt.runtime.interpolator.load_model", load_model)
    return models


@pytest.fixture
def fake(monkeypatch):
    return _patch(monkeypatch)


@pytest.fixture(scope="module")
def run_and_models():
    with pytest.MonkeyPatch.context() as mp:
        models = _patch(mp)
        # onnxruntime is left out: it would export the stand-in model to ONNX
        config = BenchConfig(
            model=ModelSpec(device="cpu", random_weights=True),
            resolution="225x130",
            factor=4,
            pairs=2,
            warmup=1,
            backends=("torch", "tensorrt"),
            precisions=("fp32", "fp16"),
        )
        return run(config), models


@pytest.fixture
def doc(run_and_models):
    return copy.deepcopy(run_and_models[0])


def test_document_rows_and_official_way(doc, run_and_models):
    models = run_and_models[1]
    assert doc["schema"] == "gimm-bench/1"
    assert [r["name"] for r in doc["rows"]][:2] == ["reference", "torch-fp32"]
    ref, torch_row = doc["rows"][:2]
    assert ref["mode"] == "official-way" and torch_row["mode"] == "batched"
    # (1 warm-up + 2 timed pairs) x 3 timesteps: the reference calls motion and synthesis once per timestep,
    # the batched row once per pair; both run the flow stage once per pair
    assert (models[0].flow.calls, models[0].motion.calls, models[0].synthesis.calls) == (3, 9, 9)
    assert (models[1].flow.calls, models[1].motion.calls, models[1].synthesis.calls) == (3, 3, 3)
    for row in doc["rows"]:
        for stats in (row["latency_ms"]["pair"], row["latency_ms"]["frame"], *row["stage_ms"].values()):
            assert set(stats) == {"mean", "median", "p90", "p99", "min", "max"}
            assert 0 <= stats["min"] <= stats["median"] <= stats["p90"] <= stats["p99"] <= stats["max"]
        pair = row["latency_ms"]["pair"]["mean"]
        assert row["latency_ms"]["frame"]["mean"] == pytest.approx(pair / 3)
        assert row["fps"] == pytest.approx(3e3 / pair)
        assert sum(row["stage_ms"][s]["mean"] for s in ("flow", "motion", "synthesis")) <= pair
        assert row["peak_host_rss_mib"] > 10 and row["peak_device_mib"] is None  # no device memory on CPU
        assert "random weights" in row["weights"]
    mean = lambda row: row["latency_ms"]["pair"]["mean"]  # noqa: E731
    assert torch_row["speedup"] == pytest.approx(mean(ref) / mean(torch_row))
    # same stand-in model both ways: same frames
    assert torch_row["accuracy"]["max_abs"] < 1e-6
    assert torch_row["accuracy"]["psnr_db"] is None or torch_row["accuracy"]["psnr_db"] > 100


def test_unavailable_rows_are_skipped_with_the_reason(doc):
    skipped = {s["name"]: s["reason"] for s in doc["skipped"]}
    ran = {r["name"] for r in doc["rows"]}
    assert set(skipped) | ran == {"reference", "torch-fp32", "torch-fp16", "tensorrt-fp32", "tensorrt-fp16"}
    assert not set(skipped) & ran
    assert "torch-fp16" in ran or "precision 'fp16'" in skipped["torch-fp16"]  # the backend's own words
    assert "CUDA" in skipped["tensorrt-fp32"] or "pip install" in skipped["tensorrt-fp32"]


def test_missing_packages_say_what_to_install(monkeypatch):
    monkeypatch.setattr("importlib.util.find_spec", lambda name, *a: None)
    assert unavailable("torch") is None
    assert "pip install 'gimm-trt[onnx]'" in unavailable("onnxruntime", "cpu")
    assert "pip install 'gimm-trt[tensorrt]'" in unavailable("tensorrt", "cuda")


def test_environment_and_json(doc, tmp_path):
    env = doc["environment"]
    for key in ("gpu", "driver", "cuda", "torch", "tensorrt", "onnxruntime", "git_commit", "cpu", "torch_threads"):
        assert key in env
    assert env["torch"] == torch.__version__ and env["gpu"] is None
    c = doc["config"]
    assert (c["width"], c["height"], c["ds_scale"], c["timesteps"]) == (225, 130, 1.0, [0.25, 0.5, 0.75])
    assert any("warm-up: 1 pair" in n for n in doc["notes"])
    write_json(doc, tmp_path / "b.json")
    assert json.loads((tmp_path / "b.json").read_text())["rows"][1]["name"] == "torch-fp32"
    table = format_table(doc)
    assert "reference (1 t/call)" in table and "torch-fp32" in table and "skipped tensorrt-fp16:" in table
    write_plot(doc, tmp_path / "b.png")
    assert (tmp_path / "b.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_official_way_pads_and_crops_as_the_demo():
    backend = TorchBackend(FakeGIMM(), device="cpu")
    a, b = torch.rand(3, 130, 225), torch.rand(3, 130, 225)  # padded to 160x256: left 15, right 16
    out = interpolate_official_way(backend, a, b, [0.25, 0.5], ds_scale=1.0)
    ramp = torch.linspace(0, 0.1, 256)[15 : 15 + 225]
    expect = torch.stack([((1 - t) * a + t * b) * 0.9 + ramp for t in (0.25, 0.5)])
    assert out.shape == (2, 3, 130, 225) and torch.allclose(out, expect, atol=1e-6)
    with pytest.raises(ValueError, match=r"strictly inside \(0, 1\)"):
        interpolate_official_way(backend, a, b, [1.0])


@pytest.mark.parametrize(
    "text, expect",
    [
        ("4k", (3840, 2160, 0.25)),
        ("2K", (2560, 1440, 0.5)),
        ("1080p", (1920, 1080, 1.0)),
        ("720p", (1280, 720, 1.0)),
        ("448x256", (448, 256, 1.0)),
        ("2048x1080", (2048, 1080, 0.5)),
    ],
)
def test_resolutions(text, expect):
    r = parse_resolution(text)
    assert (r.width, r.height, r.default_ds_scale) == expect
    assert r.ds() == expect[2] and r.ds(0.5) == r.ds("0.5") == 0.5  # a given scale wins over the guidance


@pytest.mark.parametrize("text", ["4q", "1920*1080", "0x100", "1920x", "", "x"])
def test_bad_resolution(text):
    with pytest.raises(ValueError, match="resolution must be 720p, 1080p, 2k, 4k or WxH"):
        parse_resolution(text)


@pytest.mark.parametrize(
    "kwargs, error",
    [
        (dict(backends=("torch", "jax")), "backends must be"),
        (dict(precisions="fp32"), "precisions must be"),
        (dict(factor=1), "factor must be an integer >= 2"),
        (dict(pairs=0), "pairs must be an integer >= 1"),
        (dict(model=ModelSpec(variant="R", random_weights=True, export="x")), "runs no --export"),
        (dict(resolution="big"), "resolution must be"),
    ],
)
def test_bad_config(kwargs, error):
    with pytest.raises(ValueError, match=error):
        BenchConfig(**kwargs)


def test_cli_writes_table_json_and_plot(fake, tmp_path):
    out = tmp_path / "r.json"
    args = [
        "--resolution",
        "224x128",
        "--backends",
        "torch,tensorrt",
        "--precision",
        "fp32",
        "--factor",
        "2",
        "--pairs",
        "2",
        "--warmup",
        "0",
        "--random-weights",
        "--device",
        "cpu",
        "--json",
        str(out),
        "--plot",
        str(tmp_path / "r.png"),
    ]
    result = CliRunner().invoke(bench, args)
    assert result.exit_code == 0, result.output
    assert "reference (1 t/call)" in result.stdout and "skipped tensorrt-fp32" in result.stdout
    doc = json.loads(out.read_text())
    assert doc["schema"] == "gimm-bench/1" and [r["name"] for r in doc["rows"]] == ["reference", "torch-fp32"]
    assert (tmp_path / "r.png").stat().st_size > 1000
    # an existing result is not replaced silently, and the check comes before the (long) run
    again = CliRunner().invoke(bench, args)
    assert again.exit_code == 2 and again.stderr.strip().splitlines() == [
        f"error: {out} exists (use --overwrite to replace it)"
    ]
    assert CliRunner().invoke(bench, args + ["--overwrite"]).exit_code == 0


@pytest.mark.parametrize(
    "args, error",
    [
        (["--resolution", "4q"], "error: resolution must be 720p, 1080p, 2k, 4k or WxH (e.g. 1920x1080), got '4q'"),
        (["--backends", "torch,jax"], "error: Invalid value for '--backend' / '--backends': choose from torch"),
        (["--factor", "1"], "error: Invalid value for '--factor'"),
        (["--variant", "Q"], "error: Invalid value for '--variant'"),
    ],
)
def test_cli_user_errors_are_one_line(args, error):
    result = CliRunner().invoke(bench, ["--random-weights", "--device", "cpu", *args])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(error), result.stderr


def test_cli_exits_2_when_every_row_is_skipped(fake, tmp_path):
    out = tmp_path / "r.json"
    args = ["--resolution", "224x128", "--backends", "torch", "--precision", "fp32,fp16", "--factor", "2"]
    args += ["--pairs", "1", "--warmup", "0", "--random-weights", "--device", "cpu", "--json", str(out)]
    result = CliRunner().invoke(bench, [*args, "--max-memory", "1MiB"])
    assert result.exit_code == 2, result.output
    last = result.stderr.strip().splitlines()[-1]
    # the first skipped row's reason: no batch fits a 1 MiB budget; torch fp16 does not run on a CPU
    assert last.startswith("error: nothing was benchmarked: every row was skipped; torch-fp32: frames of 224x128 ")
    assert "the memory budget is 0.00 GiB: raise max_memory" in last and last.endswith("(and 1 more skipped)")
    assert result.stdout == "" and not out.exists()  # a table of the reference alone is no result
    # one row that runs is a result
    assert CliRunner().invoke(bench, args).exit_code == 0 and out.exists()
