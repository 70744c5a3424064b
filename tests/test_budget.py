"""The memory budget: sizes parsed, the batch the runtime picks from the memory model, an impossible budget."""

import pytest
import torch
from click.testing import CliRunner

from gimm_trt import Interpolator
from gimm_trt.cli import interpolate
from gimm_trt.core.checks import parse_bytes
from gimm_trt.core.errors import InputError
from gimm_trt.runtime.budget import Budget

MIB = 2**20


def test_parse_bytes():
    assert parse_bytes("6GiB") == 6 * 2**30
    assert parse_bytes("500MB") == 500 * 10**6
    assert parse_bytes("1.5 gib") == 3 * 2**29
    assert parse_bytes(1234) == 1234
    for bad in ("6 GiBs", "-1GB", 0, "", True, 1.5):
        with pytest.raises(InputError, match="max_memory"):
            parse_bytes(bad)


@pytest.fixture(scope="module")
def peaks():
    budget = Budget("r", precision="fp32", device=torch.device("cpu"), limit=1)
    return {(n, tile): budget.peak(128, 128, 1.0, n, tile) for n, tile in ((5, None), (4, None), (1, 64))}


def test_many_timesteps_run_in_the_batch_the_budget_allows(peaks):
    # 9 timesteps (factor 10) run 4 at a time: the largest batch that fits under the budget
    limit = peaks[(4, None)] + MIB
    assert peaks[(5, None)] > limit
    interp = Interpolator.from_checkpoint(variant="R", random_weights=True, max_memory=limit)
    calls = []
    synthesis = interp.backend.synthesis
    interp.backend.synthesis = lambda *a, **k: calls.append(a[3].shape[0]) or synthesis(*a, **k)
    g = torch.Generator().manual_seed(0)
    a, b = torch.rand(3, 128, 128, generator=g), torch.rand(3, 128, 128, generator=g)
    out = interp.interpolate(a, b, [i / 10 for i in range(1, 10)])
    assert out.shape == (9, 3, 128, 128)
    assert calls == [4, 4, 1]
    assert interp.backend.tile is None


def test_an_impossible_budget_names_the_smallest(peaks):
    budget = Budget("r", precision="fp32", device=torch.device("cpu"), limit=peaks[(1, 64)] - MIB)
    budget.tiles = (None, 64)  # the smallest plan at this size: tiles of 64
    runs = []
    estimate = budget._estimate
    budget._estimate = lambda *key: runs.append(key) or estimate(*key)
    with pytest.raises(InputError, match=f"at least {peaks[(1, 64)] / 2**30:.2f} GiB.*tiles of 64"):
        budget.plan(128, 128, 1.0, 7)
    assert runs == [(128, 128, 1.0, 1, 64)]  # the smallest plan is tried first: no search before the error


def test_cpu_default_is_one_timestep_per_batch():
    budget = Budget("r", precision="fp32", device=torch.device("cpu"))
    assert budget.plan(1088, 1920, 1.0, 7) == (1, None)  # no model run needed: nothing batched on a CPU


def test_cli_rejects_a_bad_budget(tmp_path):
    args = ["--demo", str(tmp_path / "o"), "--random-weights", "--max-memory", "lots"]
    result = CliRunner().invoke(interpolate, args)
    assert result.exit_code == 2
    assert "max_memory" in result.output
