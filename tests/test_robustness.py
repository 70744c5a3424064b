"""What a careless or hostile user can hand the API and the CLI: every mistake is one clear error, raised
before any heavy work where the input allows it, and nothing is silently wrong or lost.

The model is mostly a cross-fade stand-in (``fakes.CrossFade``) with the real synthesis stage's divisions by
t and 1 - t; the few tests that need real graphs or weights say so.
"""

import hashlib
import json
import os
import re
import threading
import warnings
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from fakes import crossfade, gradient_frames
from PIL import Image

from gimm_trt import Interpolator
from gimm_trt.core.errors import CheckpointError, ExportError, InputError
from gimm_trt.core.files import atomic_write, partial_path, partial_writer, write_json
from gimm_trt.model.checkpoint import Weights, check_state_dict, load_model, read_state_dict
from gimm_trt.model.spec import ModelSpec
from gimm_trt.model.synthetic import synthetic_state_dict
from gimm_trt.runtime.backend import default_device
from gimm_trt.runtime.frames import T_MAX, T_MIN, check_fps, check_timesteps, to_tensor
from gimm_trt.runtime.pipeline import interpolate_video
from gimm_trt.runtime.video import ImageFrames, VideoReader

av = pytest.importorskip("av")
onnx = pytest.importorskip("onnx")

UNWRITABLE = Path("/proc/gimm-trt-test")  # nothing can be created in /proc, not even by root
needs_proc = pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux /proc as an unwritable place")


def _pair(h=128, w=128, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(3, h, w, generator=g), torch.rand(3, h, w, generator=g)


def _save_pngs(folder: Path, frames) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, f in enumerate(frames):
        Image.fromarray(f).save(folder / f"{i:03d}.png")
    return folder


def _snapshot(folder: Path) -> dict:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def _hidden_siblings(path: Path) -> list:
    return sorted(p.name for p in path.parent.iterdir() if p.name.startswith(f".{path.stem}."))


def _never(*args, **kwargs):
    raise AssertionError("the model must not load: the input was bad")


# ------------------------------------------------------------------------------ 1. timesteps in float32
@pytest.mark.parametrize("t", [0.99999999, 1 - 1e-9, 1e-50, 1e-40, T_MIN / 2])
def test_timesteps_that_round_to_0_or_1_in_float32_are_refused(t):
    # in float32 these are 0, 1 or subnormal (which GPUs flush to 0): synthesis divides by t and 1 - t
    assert np.float32(t) in (0, 1) or np.float32(t) < np.finfo(np.float32).tiny
    a, b = _pair()
    with pytest.raises(InputError, match="too close to 0 or 1 for float32"):
        crossfade().interpolate(a, b, [0.5, t])


def test_timesteps_at_the_float32_limits_give_finite_frames():
    a, b = _pair()
    out = crossfade().interpolate(a, b, [T_MIN, T_MAX])
    assert torch.isfinite(out).all() and out.shape == (2, 3, 128, 128)
    assert torch.allclose(out[0], a, atol=1e-6) and torch.allclose(out[1], b, atol=1e-6)


# ----------------------------------------------------------------------------------- 2. pixel range
@pytest.mark.parametrize(
    "scale, shift, hint",
    [
        (255.0, 0.0, "0..255 values: divide by 255 or pass uint8"),
        (65535.0, 0.0, "0..65535 .16-bit. values: divide by 65535"),
        (2.0, -1.0, r"-1..1 values: map them with \(x \+ 1\) / 2"),
        (3.0, -1.5, r"rescale them to \[0, 1\]"),
    ],
)
def test_pixels_outside_0_1_name_the_likely_cause(scale, shift, hint):
    a, b = _pair()
    with pytest.raises(InputError, match=f"img0 has values in .*{hint}"):
        crossfade().interpolate(a * scale + shift, b, [0.5])
    with pytest.raises(InputError, match=f"frame 1 has values in .*{hint}"):
        list(crossfade().stream([a, b * scale + shift]))


def test_overshoot_within_the_tolerance_is_clamped():
    a, b = _pair()
    a[0, 0, 0], a[0, 0, 1] = 1.005, -0.005  # a resampler's ringing
    x = to_tensor(a, "img0", "cpu")
    assert x.min() == 0.0 and x.max() <= 1.0 and torch.equal(x[0, :, 1:], a[:, 1:])


# -------------------------------------------------------------------------------------- 3. 16-bit PNG
def test_16_bit_pngs_are_scaled_not_saturated(tmp_path):
    values = np.array([[0, 257, 32896, 65535]], dtype=np.uint16).repeat(4, axis=0)
    Image.fromarray(values).save(tmp_path / "a.png")
    with Image.open(tmp_path / "a.png") as im:
        assert im.mode.startswith("I")  # PIL's 16-bit grayscale, which convert("RGB") clips at 255
    frame = next(ImageFrames(tmp_path).frames())
    assert frame.dtype == np.uint8 and frame.shape == (4, 4, 3)
    assert frame[0, :, 0].tolist() == [0, 1, 128, 255] and (frame[..., 0] == frame[..., 2]).all()


# ---------------------------------------------------------------------------------- 4. truncated video
def _write_mkv(path: Path, frames, fps=4):
    with av.open(str(path), "w") as c:
        v = c.add_stream("ffv1", rate=fps)
        v.width, v.height, v.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv444p"
        for i, img in enumerate(frames):
            f = av.VideoFrame.from_ndarray(img, format="rgb24")
            f.pts = i
            for p in v.encode(f):
                c.mux(p)
        for p in v.encode(None):
            c.mux(p)
    return path


@pytest.fixture(scope="module")
def mkv10(tmp_path_factory):
    return _write_mkv(tmp_path_factory.mktemp("video") / "ten.mkv", gradient_frames(10))


def test_an_intact_video_decodes_all_it_claims(mkv10):
    with VideoReader(mkv10) as reader:
        assert reader.frame_count == 10 and len(list(reader.frames())) == 10


def test_a_truncated_video_is_an_error_not_a_shorter_output(mkv10, tmp_path):
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(mkv10.read_bytes()[: int(mkv10.stat().st_size * 0.6)])
    with VideoReader(cut) as reader:
        assert reader.frame_count == 10
        with pytest.raises(InputError, match=r"cut.mkv decoded to \d of the 10 frames its container claims"):
            list(reader.frames())
    out = tmp_path / "out.mp4"
    with pytest.raises(InputError, match="truncated or damaged"):
        interpolate_video(cut, out, interpolator=crossfade())
    assert not out.exists() and _hidden_siblings(out) == []


# --------------------------------------------------------------------------- 5, 8. export integrity
def _identity_export(folder: Path) -> Path:
    """A manifest and three small ONNX graphs (identities over the stage's tensors): enough to open."""
    folder.mkdir()
    stages = {}
    for stage in ("flow", "motion", "synthesis"):
        x = onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 4096])
        y = onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 4096])
        w = onnx.numpy_helper.from_array(np.random.default_rng(0).random((1, 4096), np.float32), "w")
        graph = onnx.helper.make_graph([onnx.helper.make_node("Add", ["x", "w"], ["y"])], stage, [x], [y], [w])
        data = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 18)]).SerializeToString()
        (folder / f"{stage}.onnx").write_bytes(data)
        stages[stage] = {
            "file": f"{stage}.onnx",
            "sha256": hashlib.sha256(data).hexdigest(),
            "outputs": [{"name": "y", "shape": [1, 4096]}],
        }
    (folder / "manifest.json").write_text(
        json.dumps(
            {
                "schema": "gimm-export/1",
                "variant": "R",
                "precision": "fp32",
                "weights": "random weights (seed 0)",
                "ds_scale": 1.0,
                "padded_size": [128, 128],
                "processing_size": [128, 128],
                "resolution": {"name": "128x128"},
                "max_timesteps": 8,
                "splat": {"form": "portable"},
                "stages": stages,
            }
        )
    )
    return folder


def test_from_export_checks_the_sha256_its_manifest_records(tmp_path):
    export_dir = _identity_export(tmp_path / "R-fp32-128x128")
    with pytest.warns(UserWarning, match="random weights"):
        Interpolator.from_export(export_dir)  # intact: opens
    path = export_dir / "flow.onnx"
    data = bytearray(path.read_bytes())
    data[-8000:-4000] = bytes(b ^ 0x5A for b in data[-8000:-4000])  # 4 KB inside the weights: still parses
    path.write_bytes(bytes(data))
    onnx.load(str(path))
    with pytest.raises(ExportError, match="flow.onnx does not match the sha256 its manifest records"):
        Interpolator.from_export(export_dir)


def test_a_truncated_onnx_is_an_export_error_not_a_decode_traceback(tmp_path):
    export_dir = _identity_export(tmp_path / "R-fp32-128x128")
    path = export_dir / "synthesis.onnx"
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(ExportError, match="synthesis.onnx does not match"):
        Interpolator.from_export(export_dir)
    frames = _save_pngs(tmp_path / "in", gradient_frames(2))
    from gimm_trt.cli import interpolate

    result = CliRunner().invoke(
        interpolate, [str(frames), str(tmp_path / "out"), "--export", str(export_dir), "--backend", "onnxruntime"]
    )
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert result.stderr.count("error:") == 1 and "synthesis.onnx does not match" in result.stderr


# ----------------------------------------------------------------------------------- 6. checkpoints
@pytest.fixture(scope="module")
def r_state():
    return synthetic_state_dict("r", seed=0)


@pytest.mark.parametrize(
    "bad, what",
    [
        (lambda v: v.clone().fill_(float("nan")), "holds NaN or infinite values"),
        (lambda v: v.clone().to(torch.int64), "holds torch.int64 values, expected float32"),
    ],
)
def test_nan_and_integer_weights_are_named(r_state, bad, what):
    key = "amt_final_decoder.convblock.4.weight"
    state = {**r_state, key: bad(r_state[key])}
    with pytest.raises(CheckpointError, match=f"{key} {what}"):
        check_state_dict(state, Weights.R, "c.pt")


def test_a_nan_checkpoint_file_fails_to_load(r_state, tmp_path):
    key = "flow_estimator.fnet.conv1.weight"
    path = tmp_path / "nan.pt"
    torch.save({"state_dict": {**r_state, key: torch.full_like(r_state[key], float("nan"))}}, path)
    with pytest.raises(CheckpointError, match=f"nan.pt: {key} holds NaN"):
        load_model(path, variant="R")


# ------------------------------------------------------------------------------ 7. folder output
def _earlier_output(tmp_path) -> tuple:
    """An output folder as an earlier run left it (39 frames), plus a file of the user's."""
    out = tmp_path / "out"
    out.mkdir()
    for i, frame in enumerate(gradient_frames(39, 8, 8)):
        Image.fromarray(frame).save(out / f"{i:06d}.png")
    (out / "notes.txt").write_text("the user's")
    return out, _snapshot(out)


def test_overwrite_keeps_earlier_frames_when_an_input_frame_is_truncated(tmp_path):
    out, before = _earlier_output(tmp_path)
    src = _save_pngs(tmp_path / "in", gradient_frames(4))
    broken = src / "002.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (128, 128, 3), np.uint8)).save(broken)
    broken.write_bytes(broken.read_bytes()[:20000])  # the header (and size) still read
    with pytest.raises(InputError, match="cannot read image .*002.png: .*truncated"):
        interpolate_video(src, out, interpolator=crossfade(), overwrite=True)
    assert _snapshot(out) == before and _hidden_siblings(out) == []


def test_overwrite_keeps_earlier_frames_when_interrupted(tmp_path):
    out, before = _earlier_output(tmp_path)
    src = _save_pngs(tmp_path / "in", gradient_frames(4))
    with pytest.raises(KeyboardInterrupt):
        interpolate_video(src, out, interpolator=crossfade(fail_at=2, error=KeyboardInterrupt()), overwrite=True)
    assert _snapshot(out) == before and _hidden_siblings(out) == []


def test_overwrite_replaces_the_frames_and_keeps_other_files(tmp_path):
    out, before = _earlier_output(tmp_path)
    src = _save_pngs(tmp_path / "in", gradient_frames(3))
    result = interpolate_video(src, out, interpolator=crossfade(), overwrite=True)
    names = sorted(p.name for p in out.iterdir())
    assert result.frames == 5 and names == [f"{i:06d}.png" for i in range(5)] + ["notes.txt"]
    assert (out / "notes.txt").read_bytes() == before["notes.txt"] and _hidden_siblings(out) == []
    assert np.array_equal(np.asarray(Image.open(out / "000004.png")), gradient_frames(3)[2])


def _dead_pid() -> int:
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    return pid


@pytest.mark.skipif(not hasattr(os, "fork"), reason="POSIX: leftovers are told by their writer's pid")
def test_leftovers_of_a_killed_writer_are_swept_and_a_moved_aside_output_put_back(tmp_path):
    from gimm_trt.core.files import partial_prefix
    from gimm_trt.runtime.video import ImageWriter, VideoWriter

    dead = _dead_pid()
    out = tmp_path / "frames"
    prefix = partial_prefix(out).replace(f"-{os.getpid()}-", f"-{dead}-")
    aside = tmp_path / f"{prefix}abc.old"  # a swap killed between its two renames
    aside.mkdir()
    (aside / "000000.png").write_bytes(b"earlier frame")
    (tmp_path / f"{prefix}xyz").mkdir()  # the new frames of that run
    live = tmp_path / f"{partial_prefix(out)}live"  # a writer of this process, still running
    live.mkdir()
    writer = ImageWriter(out, replace=True)
    assert (out / "000000.png").read_bytes() == b"earlier frame"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, writer.partial.name, "frames"])
    writer.abort()
    video = tmp_path / "clip.mp4"
    stub = tmp_path / (partial_prefix(video).replace(f"-{os.getpid()}-", f"-{dead}-") + "abcd.mp4")
    stub.write_bytes(b"half a video")
    VideoWriter(video, fps=24, width=128, height=128).abort()
    assert not stub.exists() and not video.exists()


def test_a_new_output_folder_is_readable_by_others(tmp_path):
    src = _save_pngs(tmp_path / "in", gradient_frames(2))
    old = os.umask(0o022)
    try:
        interpolate_video(src, tmp_path / "new", interpolator=crossfade())
    finally:
        os.umask(old)
    assert (tmp_path / "new").stat().st_mode & 0o777 == 0o755
    assert (tmp_path / "new" / "000000.png").stat().st_mode & 0o777 == 0o644


def test_a_failed_video_run_leaves_no_stub(tmp_path):
    src = _save_pngs(tmp_path / "in", gradient_frames(3))
    out = tmp_path / "clip.mp4"
    out.write_bytes(b"an earlier video")
    with pytest.raises(RuntimeError, match="synthesis failed"):
        interpolate_video(src, out, interpolator=crossfade(fail_at=2), overwrite=True)
    assert out.read_bytes() == b"an earlier video" and _hidden_siblings(out) == []


# ------------------------------------------------------------------------- 9. impossible allocations
@pytest.fixture
def no_model(monkeypatch):
    monkeypatch.setattr("gimm_trt.runtime.interpolator.load_model", _never)


def test_bench_of_an_absurd_size_is_one_line_before_loading(no_model):
    from gimm_trt.cli import bench

    result = CliRunner().invoke(
        bench,
        [
            "--resolution",
            "99999x99999",
            "--random-weights",
            "--device",
            "cpu",
            "--backends",
            "torch",
            "--precision",
            "fp32",
            "--pairs",
            "1",
        ],
    )
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert "99999x99999 frames need over" in result.stderr and "smaller --resolution" in result.stderr


def test_allocation_failures_in_a_row_become_input_errors(monkeypatch):
    from test_bench import _patch

    from gimm_trt.benchmarks import BenchConfig, bench

    _patch(monkeypatch)

    def no_memory(*args, **kwargs):
        raise RuntimeError(
            "[enforce fail at alloc_cpu.cpp:119] . DefaultCPUAllocator: not enough memory: you "
            "tried to allocate 1000000000000 bytes."
        )

    monkeypatch.setattr(bench, "synthetic_pair", no_memory)
    config = BenchConfig(
        model=ModelSpec(device="cpu", random_weights=True),
        resolution="224x128",
        backends=("torch",),
        precisions=("fp32",),
        factor=2,
        pairs=1,
        warmup=0,
    )
    with pytest.raises(InputError, match="out of memory on cpu at 224x128: use a smaller --resolution"):
        bench.run(config)
    with pytest.raises(RuntimeError, match="something else"), bench.allocation_errors(1, 1, torch.device("cpu")):
        raise RuntimeError("something else")


# ------------------------------------------------------------------------- 10. checked up front
@needs_proc
@pytest.mark.parametrize("name", ["out.mp4", "frames"])
def test_an_unwritable_output_is_refused_before_the_model_loads(tmp_path, name):
    src = _save_pngs(tmp_path / "in", gradient_frames(2))
    with pytest.raises(InputError, match="is not writable"):
        interpolate_video(src, UNWRITABLE / name, interpolator=_never)


@needs_proc
@pytest.mark.parametrize("option", ["--json", "--plot"])
def test_bench_outputs_are_checked_before_the_run(monkeypatch, option):
    from gimm_trt.benchmarks import bench
    from gimm_trt.cli import bench as bench_cli

    monkeypatch.setattr(bench, "run", _never)
    result = CliRunner().invoke(
        bench_cli, ["--resolution", "224x128", "--random-weights", "--device", "cpu", option, str(UNWRITABLE / "x")]
    )
    assert result.exit_code == 2 and "is not writable" in result.stderr, result.output


@pytest.mark.parametrize(
    "args, error",
    [
        (["--ds-scale", "0"], r"ds_scale must lie in \(0, 1\]"),
        (["--ds-scale", "nan"], r"ds_scale must lie in \(0, 1\]"),
        (["--fps", "nan"], "fps must be a finite number"),
        (["--fps", "inf"], "fps must be a finite number"),
        (["--fps", "1e-9"], r"fps must lie in \[0.001, 1000\]"),
    ],
)
def test_bad_option_values_fail_before_the_model_loads(tmp_path, no_model, args, error):
    from gimm_trt.cli import interpolate

    src = _save_pngs(tmp_path / "in", gradient_frames(2))
    result = CliRunner().invoke(interpolate, [str(src), str(tmp_path / "o.mp4"), "--random-weights", *args])
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert len(result.stderr.splitlines()) == 1 and re.search(error, result.stderr), result.stderr


@pytest.mark.parametrize("fps", [1000, "30000/1001", Fraction(1, 1000), 29.97])
def test_frame_rates_a_container_can_hold_are_accepted(tmp_path, fps):
    rate = check_fps(fps)
    src = _save_pngs(tmp_path / "in", gradient_frames(2))
    result = interpolate_video(src, tmp_path / "o.mp4", interpolator=crossfade(), fps=fps)
    assert result.fps == rate and result.frames == 3
    with VideoReader(tmp_path / "o.mp4") as reader:
        assert len(list(reader.frames())) == 3


@pytest.mark.parametrize("max_batch", [2.5, 0, True, "4"])
def test_max_batch_is_checked_before_the_model_loads(no_model, max_batch):
    with pytest.raises(InputError, match="max_batch must be an integer >= 1"):
        Interpolator.from_checkpoint(variant="R", random_weights=True, max_batch=max_batch)


@pytest.mark.parametrize(
    "timesteps, expect",
    [
        (np.float32(0.5), [0.5]),
        (np.float64(0.25), [0.25]),
        (np.array([0.25, 0.75]), [0.25, 0.75]),
        (torch.tensor(0.5), [0.5]),
        ((np.float32(0.5), torch.tensor(0.25)), [0.5, 0.25]),
        (range(0), None),
    ],
)
def test_timesteps_as_numpy_and_torch_values(timesteps, expect):
    if expect is None:
        with pytest.raises(InputError, match="must not be empty"):
            check_timesteps(timesteps)
    else:
        assert check_timesteps(timesteps) == expect


@pytest.mark.parametrize(
    "timesteps, error",
    [
        ("0.5", "got the string '0.5'"),
        (["0.5"], r"timesteps\[0\] is the string '0.5'"),
        ([0.5, None], r"timesteps\[1\] is NoneType"),
        (torch.tensor([[0.5]]), "must be a number or a 1-d sequence, got shape"),
        (np.array([0.5 + 1j]), "must hold real numbers"),
        (True, "must be a number or a sequence"),
        ({"t": 0.5}.values(), None),
    ],
)
def test_timesteps_of_the_wrong_kind_are_named(timesteps, error):
    if error is None:
        assert check_timesteps(timesteps) == [0.5]
        return
    with pytest.raises(InputError, match=error):
        check_timesteps(timesteps)


# ------------------------------------------------- 11. onnxruntime from a checkpoint, two threads, two sizes
@pytest.mark.slow
def test_onnxruntime_serves_two_threads_with_frames_of_different_sizes(tmp_path, monkeypatch):
    monkeypatch.setenv("GIMM_TRT_CACHE", str(tmp_path / "cache"))
    interp = Interpolator.from_checkpoint(variant="R", random_weights=True, backend="onnxruntime")
    reference = Interpolator.from_checkpoint(variant="R", random_weights=True)
    results, errors = {}, []

    def work(size):
        try:
            a, b = _pair(size, size, seed=size)
            results[size] = [interp.interpolate(a, b, [0.5]) for _ in range(2)]
        except Exception as e:  # reported below, with the thread's size
            errors.append(f"{size}: {e!r}")

    threads = [threading.Thread(target=work, args=(size,)) for size in (128, 160)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(interp.backend.export_dirs) == 2
    for size, (first, second) in results.items():
        expected = reference.interpolate(*_pair(size, size, seed=size), [0.5])
        assert first.shape == (1, 3, size, size) and torch.equal(first, second)
        assert (first - expected).abs().max() < 1e-3, size


# ----------------------------------------------------------------------------------------- 12. messages
def test_code_running_pickle_is_reported_as_such(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "evil.pt"
    torch.save({"state_dict": {"x": Evil()}}, path)
    with pytest.raises(CheckpointError) as info:
        read_state_dict(path)
    message = str(info.value)
    assert re.search(r"pickled Python objects \((builtins\.)?print\) that loading would run code for", message)
    assert "\n" not in message and message.endswith(".safetensors)")


def test_a_long_load_error_is_shortened_at_a_word(tmp_path):
    from gimm_trt.model.checkpoint import _unreadable

    message = _unreadable(Path("c.pt"), RuntimeError("zip archive damaged " * 20 + "\nsecond line"))
    assert message.startswith("cannot read checkpoint c.pt: truncated or not a checkpoint (zip archive damaged")
    assert message.endswith("damaged ...)") and len(message) < 240
    path = tmp_path / "junk.pt"
    path.write_bytes(b"\x80\x02" + b"\x00" * 100)
    with pytest.raises(CheckpointError, match=r"cannot read checkpoint .*junk.pt: truncated or not a checkpoint \("):
        read_state_dict(path)


def test_image_frames_reach_torch_as_writable_arrays(tmp_path, monkeypatch):
    # torch.from_numpy warns (several lines, once per process) when it is handed a read-only array
    folder = _save_pngs(tmp_path / "in", gradient_frames(2))
    handed = []
    from_numpy = torch.from_numpy
    monkeypatch.setattr(torch, "from_numpy", lambda arr: handed.append(arr.flags.writeable) or from_numpy(arr))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        frames = list(crossfade().stream(ImageFrames(folder).frames()))
        readonly = np.zeros((128, 128, 3), np.uint8)
        readonly.flags.writeable = False
        to_tensor(readonly, "img0", "cpu")
    assert len(frames) == 3 and handed == [True, True, True]


def test_atomic_write_gives_files_mode_0644(tmp_path):
    old = os.umask(0o022)
    try:
        path = atomic_write(tmp_path / "flow.onnx", b"graph")
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644


def test_default_device_is_cuda_when_torch_sees_one(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert default_device() == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert default_device() == "cuda"


def test_partial_names_are_hidden_keep_the_suffix_and_tell_their_writer(tmp_path):
    out = tmp_path / "clip.mp4"
    partial = partial_path(out, "ab12")
    assert partial.parent == tmp_path and partial.name.startswith(".clip.mp4.partial-") and partial.suffix == ".mp4"
    assert partial_writer(out, partial.name) == os.getpid()
    assert partial_writer(out, "clip.mp4") is None and partial_writer(tmp_path / "clip.mkv", partial.name) is None


def test_write_json_replaces_only_when_asked_and_never_writes_nan(tmp_path):
    path = write_json({"a": 1}, tmp_path / "doc.json")
    with pytest.raises(InputError, match="exists .use --overwrite"):
        write_json({"a": 2}, path, overwrite=False)
    with pytest.raises(ValueError):  # strict JSON has no NaN: the file stays readable
        write_json({"a": float("nan")}, path)
    assert json.loads(path.read_text()) == {"a": 1}
    write_json({"a": 2}, path)
    assert path.read_text() == '{\n  "a": 2\n}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["doc.json"]  # no temporary file left
