"""ComfyUI-GIMM-VFI's split checkpoints: a GIMM file plus the flow estimator alone (its own key names).

Split files are made here from the synthetic checkpoints: the estimator keys moved to their own file without
the ``flow_estimator.`` prefix, floats stored in fp32, fp16 or bf16. Each must give exactly what the single
official-layout file holding the same (upcast) numbers gives.
"""

import re

import pytest
import torch
from click.testing import CliRunner
from PIL import Image
from safetensors.torch import save_file

from gimm_trt import Interpolator
from gimm_trt.cli import interpolate as interpolate_cli
from gimm_trt.export.exporter import ExportOptions, weights_of
from gimm_trt.model.checkpoint import CheckpointError, Weights, load_model, read_checkpoint
from gimm_trt.model.checkpoint_files import CheckpointFiles
from gimm_trt.model.spec import ModelSpec
from gimm_trt.model.synthetic import synthetic_pair, synthetic_state_dict

FLOW = "flow_estimator."
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def _cast(state: dict, dtype) -> dict:
    """Floats stored as ``dtype`` (integers as they are), as separate contiguous tensors (safetensors wants them)."""
    return {k: (v.to(dtype) if v.is_floating_point() else v).clone().contiguous() for k, v in state.items()}


def _upcast(state: dict, dtype) -> dict:
    """The numbers a loader sees after upcasting a ``dtype`` file to float32."""
    return {k: v.to(dtype).float() if v.is_floating_point() else v.clone() for k, v in state.items()}


def _write_split(folder, state, arch, *, tag="fp32", gimm_estimator=None, gimm=None, flow=None):
    """Write ``state`` as a ComfyUI-style pair into ``folder``; returns (gimm path, flow path).

    ``gimm_estimator``: estimator weights (official names) the GIMM file holds too; None: it holds none.
    """
    folder.mkdir(parents=True, exist_ok=True)
    dtype = DTYPES[tag]
    rest = {k: v for k, v in state.items() if not k.startswith(FLOW)}
    if gimm_estimator is not None:
        rest.update({k: v for k, v in gimm_estimator.items() if k.startswith(FLOW)})
    own = {k[len(FLOW) :]: v for k, v in state.items() if k.startswith(FLOW)}
    gimm = folder / (gimm or f"gimmvfi_{arch}_arb_lpips_{tag}.safetensors")
    flow = folder / (flow or ("raft-things" if arch == "r" else "flowformer_sintel") + f"_{tag}.safetensors")
    save_file(_cast(rest, dtype), str(gimm))
    save_file(_cast(own, dtype), str(flow))
    return gimm, flow


def _write_single(path, state):
    torch.save({"state_dict": state}, path)
    return path


@pytest.fixture(scope="module")
def r_state():
    return synthetic_state_dict("r", seed=0)


@pytest.fixture(scope="module")
def pair():
    return synthetic_pair(128, 128, seed=3)


def _frames(checkpoint, pair, variant="R-P", **kwargs):
    interp = Interpolator.from_checkpoint(checkpoint, variant=variant, **kwargs)
    return interp.interpolate(pair[0], pair[1], [0.5]), interp.weights


@pytest.fixture(scope="module")
def r_frames(tmp_path_factory, r_state, pair):
    """Frames of the single official-layout file of ``r_state``."""
    return _frames(_write_single(tmp_path_factory.mktemp("single") / "r.pt", r_state), pair)[0]


def _same_model(a, b) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("tag", ["fp32", "fp16"])
def test_r_split_pair_equals_single_file(tmp_path, r_state, pair, r_frames, tag):
    gimm, flow = _write_split(tmp_path / "gimm-vfi", r_state, "r", tag=tag)
    out, weights = _frames(gimm, pair)  # the estimator file is found beside the GIMM file by its name
    assert out.shape == (1, 3, 128, 128)
    assert str(gimm) in weights and f"flow estimator {flow}" in weights and "S-Lab" in weights
    if tag == "fp32":
        assert torch.equal(out, r_frames)
    else:
        ref, _ = _frames(_write_single(tmp_path / "single.pt", _upcast(r_state, torch.float16)), pair)
        assert torch.equal(out, ref)
        assert not torch.equal(out, r_frames)  # the fp16 numbers are what ran, not fp32 ones from elsewhere


def test_f_split_pair_from_a_folder_equals_single_file(tmp_path, pair):
    state = synthetic_state_dict("f", seed=2)
    _write_split(tmp_path / "gimm-vfi", state, "f", tag="fp16")
    single = _write_single(tmp_path / "single.pt", _upcast(state, torch.float16))
    out, weights = _frames(tmp_path / "gimm-vfi", pair, variant="F-P")
    ref, _ = _frames(single, pair, variant="F-P")
    assert torch.equal(out, ref)
    assert weights.startswith(
        f"{tmp_path / 'gimm-vfi' / 'gimmvfi_f_arb_lpips_fp16.safetensors'} + flow estimator "
        f"{tmp_path / 'gimm-vfi' / 'flowformer_sintel_fp16.safetensors'}"
    )


def test_upcast_to_float32(tmp_path, r_state):
    gimm, flow = _write_split(tmp_path, r_state, "r", tag="bf16")
    state = read_checkpoint(CheckpointFiles(gimm, flow), Weights.R_P)
    assert set(state) == set(r_state)
    for key, value in r_state.items():
        assert state[key].dtype == value.dtype  # float32 (upcast), int64 kept
        assert torch.equal(state[key], value.to(torch.bfloat16).float() if value.is_floating_point() else value), key
    assert not torch.equal(state[FLOW + "fnet.conv1.weight"], r_state[FLOW + "fnet.conv1.weight"])  # bf16 rounding


def test_folder_picks_the_variant_files_by_name(tmp_path, r_state):
    folder = tmp_path / "gimm-vfi"
    _write_split(folder, r_state, "r", tag="fp16")
    gimm, flow = _write_split(folder, r_state, "r", tag="fp32")
    _write_split(folder, synthetic_state_dict("f", seed=2), "f")  # the other variant's pair beside them
    model = load_model(folder, variant="R-P")
    assert _same_model(model, load_model(_write_single(tmp_path / "single.pt", r_state), variant="R-P"))
    interp = Interpolator.from_checkpoint(folder, variant="R-P")
    assert interp.weights.startswith(f"{gimm} + flow estimator {flow} (")  # fp32 before fp16


def test_estimator_file_wins_over_the_gimm_files_own(tmp_path, r_state):
    other = synthetic_state_dict("r", seed=1)  # different estimator numbers, kept in the GIMM file
    gimm, flow = _write_split(tmp_path / "a", r_state, "r", gimm_estimator=other)
    reference = load_model(_write_single(tmp_path / "single.pt", r_state), variant="R-P")
    assert _same_model(load_model(gimm, variant="R-P"), reference)  # found beside it
    flow.rename(tmp_path / "elsewhere.safetensors")
    alone = load_model(gimm, variant="R-P")  # nothing beside: the GIMM file's own estimator
    key = "flow.estimator.fnet.conv1.weight"
    assert torch.equal(alone.state_dict()[key], other[FLOW + "fnet.conv1.weight"])
    assert not _same_model(alone, reference)
    given = load_model(gimm, variant="R-P", flow_checkpoint=tmp_path / "elsewhere.safetensors")
    assert _same_model(given, reference)


def test_official_raft_release_layout_as_flow_checkpoint(tmp_path, r_state):
    # the original RAFT release was saved from DataParallel: every key starts with "module."
    gimm, flow = _write_split(tmp_path, r_state, "r")
    flow.unlink()
    own = {"module." + k[len(FLOW) :]: v for k, v in r_state.items() if k.startswith(FLOW)}
    raft = tmp_path / "raft-things.pth"
    torch.save(own, raft)
    model = load_model(gimm, variant="R", flow_checkpoint=raft)
    assert _same_model(model, load_model(_write_single(tmp_path / "single.pt", r_state), variant="R"))


def test_export_identity_covers_both_files(tmp_path, r_state):
    gimm, flow = _write_split(tmp_path, r_state, "r")
    a = weights_of(ExportOptions(model=ModelSpec(variant="R-P", checkpoint=gimm)))
    assert a.label == f"{gimm} + flow estimator {flow}" and a.flow_path == str(flow)
    b = weights_of(ExportOptions(model=ModelSpec(variant="R-P", checkpoint=gimm, flow_checkpoint=flow)))
    assert a.identity == b.identity
    changed = {k[len(FLOW) :]: v for k, v in synthetic_state_dict("r", seed=1).items() if k.startswith(FLOW)}
    save_file(_cast(changed, torch.float32), str(flow))  # only the estimator file changes
    c = weights_of(ExportOptions(model=ModelSpec(variant="R-P", checkpoint=gimm)))
    assert c.identity != a.identity and len(c.identity) == 64


# errors: each names the file and what is wrong with it


def test_missing_estimator_says_what_to_put_where(tmp_path, r_state):
    gimm, flow = _write_split(tmp_path, r_state, "r", tag="fp16")
    flow.unlink()
    with pytest.raises(CheckpointError) as e:
        load_model(gimm, variant="R-P")
    msg = str(e.value)
    assert msg == (
        f"{gimm} (its name says R-P): GIMM weights found, flow estimator missing: put "
        "raft-things_fp32.safetensors beside it or pass --flow-checkpoint"
    )


def test_missing_estimator_of_f_without_a_telling_name(tmp_path):
    gimm, flow = _write_split(tmp_path, synthetic_state_dict("f", seed=2), "f", gimm="weights.safetensors")
    flow.unlink()
    with pytest.raises(
        CheckpointError,
        match=r"weights\.safetensors \(GIMM-VFI-F or F-P\): GIMM weights found, flow "
        r"estimator missing: put flowformer_sintel_fp32\.safetensors beside it",
    ):
        load_model(gimm, variant="F")


def test_gimm_file_of_the_other_variant(tmp_path):
    gimm, _ = _write_split(tmp_path, synthetic_state_dict("f", seed=2), "f")
    with pytest.raises(
        CheckpointError,
        match=r"gimmvfi_f_arb_lpips_fp32\.safetensors is a GIMM-VFI-F or F-P "
        r"checkpoint, not R-P \(its name says F-P\)$",
    ):
        load_model(gimm, variant="R-P", flow_checkpoint=tmp_path / "flowformer_sintel_fp32.safetensors")
    (tmp_path / "flowformer_sintel_fp32.safetensors").unlink()
    with pytest.raises(CheckpointError, match=r"is a GIMM-VFI-F or F-P checkpoint, not R \(its name says F-P\)$"):
        load_model(gimm, variant="R")  # no estimator anywhere: the variant is still named first


def test_estimator_of_the_other_variant(tmp_path, r_state):
    gimm, _ = _write_split(tmp_path / "r", r_state, "r")
    _, ff = _write_split(tmp_path / "f", synthetic_state_dict("f", seed=2), "f")
    with pytest.raises(
        CheckpointError,
        match=r"flow checkpoint .*flowformer_sintel_fp32\.safetensors is the "
        r"FlowFormer estimator \(GIMM-VFI-F or F-P\), not the RAFT one "
        r"GIMM-VFI-R-P needs \(raft-things_fp32\.safetensors\)",
    ):
        load_model(gimm, variant="R-P", flow_checkpoint=ff)


def test_estimator_with_a_missing_key_and_a_wrong_shape(tmp_path, r_state):
    gimm, flow = _write_split(tmp_path, r_state, "r")
    own = {k[len(FLOW) :]: v for k, v in r_state.items() if k.startswith(FLOW)}
    del own["update_block.flow_head.conv2.bias"]
    save_file(_cast(own, torch.float32), str(flow))
    expected = (
        f"flow checkpoint {flow} does not match the RAFT estimator of GIMM-VFI-R-P: 1 missing keys "
        "(update_block.flow_head.conv2.bias)"
    )
    with pytest.raises(CheckpointError, match=f"^{re.escape(expected)}$"):
        load_model(gimm, variant="R-P")
    own["update_block.flow_head.conv2.bias"] = torch.zeros(3)
    save_file(_cast(own, torch.float32), str(flow))
    with pytest.raises(CheckpointError, match=re.escape("conv2.bias has shape (3,), expected (2,)")):
        load_model(gimm, variant="R-P")


def test_gimm_part_with_a_missing_key_names_the_gimm_file(tmp_path, r_state):
    state = {k: v for k, v in r_state.items() if k != "amt_fproj.bias"}
    gimm, _ = _write_split(tmp_path, state, "r")
    expected = f"{gimm} does not match the GIMM weights of GIMM-VFI-R: 1 missing keys (amt_fproj.bias)"
    with pytest.raises(CheckpointError, match=f"^{re.escape(expected)}$"):
        load_model(gimm, variant="R")


def test_files_given_the_wrong_way_round(tmp_path, r_state):
    gimm, flow = _write_split(tmp_path, r_state, "r")
    with pytest.raises(
        CheckpointError,
        match=r"raft-things_fp32\.safetensors is a RAFT flow estimator alone "
        r"\(GIMM-VFI-R or R-P\), not GIMM weights: pass the GIMM file",
    ):
        load_model(flow, variant="R-P")
    with pytest.raises(
        CheckpointError,
        match=r"flow checkpoint .*gimmvfi_r_arb_lpips_fp32\.safetensors holds GIMM "
        r"weights, not a flow estimator alone",
    ):
        load_model(gimm, variant="R-P", flow_checkpoint=gimm)


def test_folder_without_the_variant_names_what_it_holds(tmp_path):
    _write_split(tmp_path, synthetic_state_dict("f", seed=2), "f")
    with pytest.raises(
        CheckpointError,
        match=r"no GIMM-VFI-R-P weights in .*: looked for gimmvfi_r_arb_lpips\.pt, "
        r".*gimmvfi_r_arb_lpips_fp32\.safetensors.*; it holds "
        r"gimmvfi_f_arb_lpips_fp32\.safetensors \(variant F-P\)$",
    ):
        load_model(tmp_path, variant="R-P")


def test_flow_checkpoint_not_found_and_not_with_random_weights(tmp_path, r_state):
    gimm, _ = _write_split(tmp_path, r_state, "r")
    with pytest.raises(CheckpointError, match=r"flow checkpoint not found: .*nope\.safetensors \(RAFT estimator"):
        load_model(gimm, variant="R-P", flow_checkpoint=tmp_path / "nope.safetensors")
    with pytest.raises(ValueError, match="not both"):
        load_model(variant="R", flow_checkpoint=tmp_path / "raft-things_fp32.safetensors", random_weights=True)


# the command line


def _images(folder, pair):
    folder.mkdir()
    for i, img in enumerate(pair):
        Image.fromarray((img[0].permute(1, 2, 0) * 255).round().byte().numpy()).save(folder / f"{i}.png")
    return folder


def _one_error(result, expected: str) -> None:
    assert result.exit_code == 2, result.output
    assert result.stderr.splitlines() == [f"error: {expected}"]


def test_cli_checkpoint_and_flow_checkpoint_reach_the_loader(tmp_path, r_state, pair):
    # the loader fails before any frame work here: what it names shows which files the options handed it
    frames = _images(tmp_path / "frames", pair)
    gimm, flow = _write_split(tmp_path / "split", r_state, "r")
    flow.unlink()
    _, ff = _write_split(tmp_path / "f", synthetic_state_dict("f", seed=2), "f")
    run = CliRunner().invoke
    _one_error(
        run(interpolate_cli, [str(frames), str(tmp_path / "out"), "--checkpoint", str(gimm)]),
        f"{gimm} (its name says R-P): GIMM weights found, flow estimator missing: put "
        "raft-things_fp32.safetensors beside it or pass --flow-checkpoint",
    )
    _one_error(
        run(
            interpolate_cli,
            [str(frames), str(tmp_path / "out"), "--checkpoint", str(gimm.parent), "--flow-checkpoint", str(ff)],
        ),
        f"flow checkpoint {ff} is the FlowFormer estimator (GIMM-VFI-F or F-P), not the RAFT one GIMM-VFI-R-P "
        "needs (raft-things_fp32.safetensors)",
    )
    assert not (tmp_path / "out").exists()
