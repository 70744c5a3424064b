"""Strict checkpoint loading: both formats, and one clear error for each way a file can be wrong."""

import logging

import pytest
import torch

from gimm_trt.model.checkpoint import CheckpointError, Weights, load_model, read_checkpoint, read_state_dict
from gimm_trt.model.checkpoint_files import CheckpointFiles
from gimm_trt.model.synthetic import synthetic_state_dict


@pytest.fixture(scope="module")
def r_state():
    return synthetic_state_dict("r", seed=0)


@pytest.fixture(scope="module")
def r_pt(tmp_path_factory, r_state):
    path = tmp_path_factory.mktemp("ckpt") / "gimmvfi_r_arb_lpips.pt"
    torch.save({"state_dict": r_state}, path)
    return path


def _flat_params(model):
    return torch.cat([p.flatten() for p in model.state_dict().values() if p.is_floating_point()])


def test_pt_and_safetensors_load_the_same_weights(tmp_path, r_state, r_pt):
    from safetensors.torch import save_file

    st = tmp_path / "r.safetensors"
    # safetensors refuses shared storage: the aliased norm3/downsample.1 entries are separate copies on disk
    save_file({k: v.clone().contiguous() for k, v in r_state.items()}, str(st))
    a = load_model(r_pt, variant="R-P")
    b = load_model(st, variant="R")
    assert torch.equal(_flat_params(a), _flat_params(b))
    # and they are the synthetic values, not an initialisation
    key = "flow.estimator.update_block.flow_head.conv2.weight"
    assert torch.equal(a.state_dict()[key], r_state["flow_estimator.update_block.flow_head.conv2.weight"])


def test_default_lookup_uses_official_name(tmp_path, monkeypatch, r_pt):
    monkeypatch.setenv("GIMM_TRT_CHECKPOINTS", str(r_pt.parent))
    assert Weights.verify("R-P").default_path() == r_pt
    load_model(variant="R-P")
    with pytest.raises(CheckpointError, match=r"checkpoint not found: .*gimmvfi_r_arb\.pt.*huggingface"):
        load_model(variant="R")


def test_truncated_file(tmp_path, r_pt):
    bad = tmp_path / "cut.pt"
    bad.write_bytes(r_pt.read_bytes()[: r_pt.stat().st_size // 2])
    with pytest.raises(CheckpointError, match=r"cannot read checkpoint .*cut\.pt: truncated or not a checkpoint"):
        read_state_dict(bad)


def test_wrong_variant_is_named(r_pt):
    with pytest.raises(CheckpointError, match=r"is a GIMM-VFI-R or R-P checkpoint, not F-P"):
        load_model(r_pt, variant="F-P")


def test_missing_and_unexpected_keys_summarised(tmp_path, r_state):
    sd = dict(r_state)
    for k in list(sd)[:40]:
        del sd[k]
    sd["extra.weight"] = torch.zeros(1)
    path = tmp_path / "partial.pt"
    torch.save({"state_dict": sd}, path)
    with pytest.raises(CheckpointError) as e:
        load_model(path, variant="R")
    msg = str(e.value)
    assert "40 missing keys (" in msg and "1 unexpected keys (extra.weight)" in msg and "partial.pt" in msg
    assert len(msg) < 400 and "\n" not in msg


def test_wrong_shape(tmp_path, r_state):
    sd = dict(r_state)
    sd["amt_comb_block.0.weight"] = torch.zeros(18, 9, 3, 3)
    path = tmp_path / "shape.pt"
    torch.save({"state_dict": sd}, path)
    with pytest.raises(
        CheckpointError, match=r"amt_comb_block\.0\.weight has shape \(18, 9, 3, 3\), expected \(18, 9, 7, 7\)"
    ):
        load_model(path, variant="R")


def test_pickled_code_is_refused(tmp_path):
    # weights_only loading: a checkpoint that would execute code on load is rejected, not run
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "evil.pt"
    torch.save({"state_dict": {"x": Evil()}}, path)
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        read_state_dict(path)


def test_unknown_variant():
    with pytest.raises(ValueError, match=r"unknown variant 'X': choose one of R, R-P, F, F-P"):
        Weights.verify("X")


def test_checkpoint_and_random_weights_are_exclusive(r_pt):
    with pytest.raises(ValueError, match="either checkpoint or random_weights"):
        load_model(r_pt, variant="R", random_weights=True)


def _name_warnings(caplog) -> list:
    return [r.getMessage() for r in caplog.records if r.name == "gimm_trt.model" and r.levelname == "WARNING"]


def test_a_file_named_for_the_other_variant_of_its_pair_is_warned_once(r_pt, r_state, caplog):
    # R and R-P weights share one layout: only the file's name can say which of the two it holds
    caplog.set_level(logging.WARNING, logger="gimm_trt.model")
    model = load_model(r_pt, variant="R")  # gimmvfi_r_arb_lpips.pt: the name says R-P
    assert _name_warnings(caplog) == [
        f"{r_pt} is named for GIMM-VFI-R-P and runs as GIMM-VFI-R (the weights of both have one layout: if it "
        "holds R-P's, pass --variant R-P)"
    ]
    key = "update_block.flow_head.conv2.weight"  # a warning, not a refusal: the file's weights are loaded
    assert torch.equal(model.state_dict()[f"flow.estimator.{key}"], r_state[f"flow_estimator.{key}"])
    caplog.clear()
    load_model(r_pt, variant="R-P")  # the name agrees
    assert _name_warnings(caplog) == []


def test_a_name_of_the_other_architecture_is_warned_and_the_weights_decide(tmp_path, r_pt, caplog):
    caplog.set_level(logging.WARNING, logger="gimm_trt.model")
    misnamed = tmp_path / "gimmvfi_f_arb.pt"
    misnamed.write_bytes(r_pt.read_bytes())
    read_checkpoint(CheckpointFiles(misnamed), Weights.R)  # RAFT weights: they run as R, whatever the name
    assert _name_warnings(caplog) == [
        f"{misnamed} is named for GIMM-VFI-F and runs as GIMM-VFI-R (its weights are GIMM-VFI-R or R-P's, so the "
        "name is wrong)"
    ]
    caplog.clear()
    # weights of the other architecture than the variant asked for stay an error, naming what the name says
    with pytest.raises(CheckpointError, match=r"is a GIMM-VFI-R or R-P checkpoint, not F \(its name says R-P\)"):
        read_checkpoint(CheckpointFiles(r_pt), Weights.F)
    assert _name_warnings(caplog) == []
