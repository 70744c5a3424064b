"""gimm-interpolate: one video round trip (odd size, audio, frame rate) and what users get wrong.

Every mistake exits with status 2 and one ``error: ...`` line on stderr, before any model work where it can.
(Non-finite pixels and timesteps outside (0, 1) cannot come from the command line: frames are uint8 and the
timesteps are i/factor; the API side of those is in test_interpolator.py.)
"""

import importlib.util
import subprocess
import sys
from fractions import Fraction

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from fakes import VFR_AUDIO_MS, VFR_MS, assert_keeps_vfr_timing, crossfade, gradient_frames, shown, write_vfr_clip
from PIL import Image

from gimm_trt.cli import interpolate
from gimm_trt.model.synthetic import synthetic_state_dict
from gimm_trt.runtime.demo import demo_frames

av = pytest.importorskip("av")

H, W = 127, 223  # odd on purpose: padded to 128x224 for the model and for yuv420p


def _write_clip(path, frames, *, fps=4, audio_s=0.5, video=True):
    """A lossless (ffv1, any size) .mkv with an AAC track; ``video=False`` leaves the video stream empty."""
    with av.open(str(path), "w") as c:
        v = c.add_stream("ffv1", rate=fps)
        v.width, v.height, v.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv444p"
        a = c.add_stream("aac", rate=48000)
        for i, img in enumerate(frames if video else []):
            f = av.VideoFrame.from_ndarray(img, format="rgb24")
            f.pts = i
            for p in v.encode(f):
                c.mux(p)
        t = np.arange(int(48000 * audio_s)) / 48000
        tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None]
        for k in range(0, tone.shape[1], 1024):
            af = av.AudioFrame.from_ndarray(np.ascontiguousarray(tone[:, k : k + 1024]), format="fltp", layout="mono")
            af.sample_rate, af.pts = 48000, k
            for p in a.encode(af):
                c.mux(p)
        for stream in (v, a):
            for p in stream.encode(None):
                c.mux(p)


def _audio_packets(path):
    with av.open(str(path)) as c:
        return sum(1 for p in c.demux(c.streams.audio[0]) if p.dts is not None)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    frames = [f[:H, :W].copy() for f in demo_frames(n=2, height=128, width=224)]
    path = tmp_path_factory.mktemp("clip") / "clip.mkv"
    _write_clip(path, frames)
    return path, frames


@pytest.fixture(scope="module")
def r_ckpt(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "r.pt"
    torch.save({"state_dict": synthetic_state_dict("r", seed=0)}, path)
    return path


def _run(*args):
    return CliRunner().invoke(interpolate, [str(a) for a in args])


def _one_error_line(result, expected: str):
    assert result.exit_code == 2, (result.exit_code, result.output)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and expected in errors[0], result.stderr
    assert "Traceback" not in result.output


def test_video_round_trip_with_audio_and_odd_size(clip, tmp_path):
    src, frames = clip
    out = tmp_path / "out.mp4"
    result = _run(src, out, "--factor", "2", "--variant", "R", "--random-weights")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(out)
    assert "odd side" in result.stderr and "random weights" in result.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["out.mp4"]  # no partial file left
    with av.open(str(out)) as c:
        v = c.streams.video[0]
        assert v.average_rate == Fraction(8) and (v.width, v.height) == (W + 1, H + 1)
        assert c.streams.audio[0].codec_context.name == "aac"
        assert "random weights" in c.metadata.get("comment", "")
        got = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    assert len(got) == 3
    for i, j in ((0, 0), (2, 1)):  # the originals come through (within H.264 / yuv420p loss)
        d = np.abs(got[i][:H, :W].astype(np.int16) - frames[j].astype(np.int16))
        assert d.mean() < 4, (i, d.mean())
    pad_row = np.abs(got[0][H, :W].astype(np.int16) - got[0][H - 1, :W].astype(np.int16))
    assert pad_row.mean() < 4  # the padding row repeats the last one (within the codec's loss)
    assert _audio_packets(out) == _audio_packets(src)  # audio copied, not re-encoded or dropped


@pytest.mark.parametrize("suffix", [".mkv", ".mp4"])
def test_a_variable_frame_rate_keeps_its_timing(tmp_path, suffix):
    """Frames unevenly spaced in time keep their times, the new ones lie between theirs at the timestep's
    fraction of the way, and the video ends with its sound (not evenly spaced frames, ending early)."""
    from gimm_trt.runtime.pipeline import interpolate_video

    src = write_vfr_clip(tmp_path / "vfr.mkv", gradient_frames(len(VFR_MS)), VFR_MS, VFR_AUDIO_MS)
    out = tmp_path / f"out{suffix}"
    result = interpolate_video(src, out, interpolator=crossfade(), factor=4)
    assert assert_keeps_vfr_timing(out, 4) == 21
    assert result.fps is None and result.notes == [
        "the input's frames are not evenly spaced (a variable frame rate): each keeps its time, and the new "
        "frames lie between theirs"
    ]


def test_a_variable_frame_rate_into_avi_is_spaced_evenly_and_said(tmp_path):
    """AVI holds one frame rate: the frames are spaced evenly (the input's 25 fps times 2), and a note says so."""
    from gimm_trt.runtime.pipeline import interpolate_video

    src = write_vfr_clip(tmp_path / "vfr.mkv", gradient_frames(len(VFR_MS)), VFR_MS, VFR_AUDIO_MS)
    result = interpolate_video(src, tmp_path / "out.avi", interpolator=crossfade())
    assert result.fps == 50 and result.notes == [
        "the input's frames are not evenly spaced, and AVI holds one frame rate only: they are spaced evenly, "
        "so the sound may drift; use .mkv, .mp4 or .mov to keep their times"
    ]
    times = shown(tmp_path / "out.avi")["times"]
    assert np.diff(times) == pytest.approx([1 / 50] * 10)


@pytest.fixture
def images(tmp_path):
    def make(*sizes):
        folder = tmp_path / "frames"
        folder.mkdir()
        for i, (h, w) in enumerate(sizes):
            Image.fromarray(np.full((h, w, 3), 60 * i, np.uint8)).save(folder / f"f{i}.png")
        return folder

    return make


def test_missing_input(tmp_path):
    missing = tmp_path / "nope.mp4"
    _one_error_line(_run(missing, tmp_path / "out.mp4"), f"error: input not found: {missing}")


def test_unreadable_input(tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_text("not a video")
    _one_error_line(_run(bad, tmp_path / "out.mp4", "--random-weights"), f"error: cannot read video {bad}")


@pytest.mark.parametrize("kind", ["no frames", "no packets at all"])
def test_empty_video(tmp_path, kind):
    path = tmp_path / "empty.mkv"
    if kind == "no frames":  # a video stream (and audio) but not one video frame
        _write_clip(path, [np.zeros((128, 224, 3), np.uint8)], video=False)
        expected = "has no video frames"
    else:
        with av.open(str(path), "w") as c:
            s = c.add_stream("ffv1", rate=4)
            s.width, s.height = 224, 128
            c.start_encoding()
        expected = "is empty: no video frames"
    _one_error_line(_run(path, tmp_path / "out.mp4", "--random-weights"), f"error: {path} {expected}")
    assert not (tmp_path / "out.mp4").exists()


def test_existing_output_is_refused_without_overwrite(clip, tmp_path, images):
    out = tmp_path / "out.mp4"
    out.write_bytes(b"precious")
    _one_error_line(_run(clip[0], out, "--random-weights"), f"error: {out} exists (use --overwrite to replace it)")
    assert out.read_bytes() == b"precious"
    folder = images((128, 224), (128, 224))
    _one_error_line(_run(clip[0], folder, "--random-weights"), f"error: {folder} exists and is not empty")


def test_fps_for_a_folder_output_is_refused(images, tmp_path):
    """A folder of PNGs has no frame rate: --fps would change nothing, so it is refused rather than ignored."""
    out = tmp_path / "out"
    _one_error_line(
        _run(images((128, 224), (128, 224)), out, "--fps", "30", "--random-weights"),
        f"error: --fps sets a video's frame rate, and {out} is a folder of PNGs, which has none: drop --fps, or name "
        "the OUTPUT .mp4, .mkv, .mov, .avi",
    )
    assert not out.exists()


@pytest.mark.parametrize("name", ["out.webm", "out.M4V", "out.ts"])
def test_a_video_format_not_written_is_refused(clip, tmp_path, name):
    """A video name gimm-trt has no writer for is refused, not made a folder of PNGs under that name."""
    out = tmp_path / name
    _one_error_line(
        _run(clip[0], out, "--random-weights"),
        f"error: cannot write {out}: {out.suffix} videos are not written here; name the OUTPUT .mp4, .mkv, .mov, "
        ".avi, or a folder for PNG frames",
    )
    assert list(tmp_path.iterdir()) == []


def test_frames_of_different_sizes(images, tmp_path):
    folder = images((128, 224), (128, 224), (130, 224))
    _one_error_line(
        _run(folder, tmp_path / "out", "--random-weights"),
        "error: frames differ in size: f2.png is 224x130, f0.png is 224x128 (WxH)",
    )


def test_frames_below_the_minimum_size(images, tmp_path):
    _one_error_line(_run(images((96, 96), (96, 96)), tmp_path / "out", "--random-weights"), "both sides must be >= 128")


def test_a_single_frame(images, tmp_path):
    _one_error_line(_run(images((128, 224)), tmp_path / "out", "--random-weights"), "at least 2 are needed")


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--variant", "Q"], "error: Invalid value for '--variant': 'Q' is not one of"),
        (["--factor", "1"], "error: Invalid value for '--factor': 1 is not in the range x>=2"),
        (
            ["--export", "exports/x"],
            "error: an export runs on an exported backend (onnxruntime, tensorrt, tensorrt-rtx), not 'torch'",
        ),
        (["--backend", "tensorrt", "--export", "exports/x"], "tensorrt"),
    ],
)
def test_bad_options(clip, tmp_path, args, expected):
    if args[:2] == ["--backend", "tensorrt"]:
        # the device is said before the install (no install helps without a GPU), whatever another test left in
        # sys.modules as `tensorrt`
        if not torch.cuda.is_available():
            expected = "error: backend 'tensorrt' runs on CUDA GPUs, and CUDA is not available here"
        elif importlib.util.find_spec("tensorrt") is None:
            expected = "needs tensorrt, which is not installed: pip install 'gimm-trt[tensorrt]'"
    _one_error_line(_run(clip[0], tmp_path / "out.mp4", "--random-weights", *args), expected)


def test_checkpoint_of_the_other_variant(clip, tmp_path, r_ckpt):
    _one_error_line(
        _run(clip[0], tmp_path / "o.mp4", "--variant", "F-P", "--checkpoint", r_ckpt),
        "is a GIMM-VFI-R or R-P checkpoint, not F-P",
    )


def test_truncated_checkpoint(clip, tmp_path, r_ckpt):
    cut = tmp_path / "cut.pt"
    cut.write_bytes(r_ckpt.read_bytes()[:100_000])
    _one_error_line(
        _run(clip[0], tmp_path / "o.mp4", "--variant", "R", "--checkpoint", cut),
        f"error: cannot read checkpoint {cut}: truncated or not a checkpoint",
    )


@pytest.mark.parametrize(
    "command, args, expected",
    [
        ("interpolate", ["nope.mp4", "out.mp4"], "error: input not found: nope.mp4"),
        ("bench", ["--resolution", "4q"], "error: resolution must be"),
    ],
)
def test_real_exit_status_and_stderr(tmp_path, command, args, expected):
    code = f"from gimm_trt.cli import {command}; {command}()"
    proc = subprocess.run(
        [sys.executable, "-c", code, *args], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2 and proc.stderr.splitlines() == [proc.stderr.splitlines()[0]], proc.stderr
    assert proc.stderr.startswith(expected) and proc.stdout == ""


def test_the_commands_start_without_loading_the_service_or_the_cluster_runner():
    """Every gimm-* command imports gimm_trt.cli, which reads the service's defaults: that loads neither the
    service's running parts nor the Ray runner (nor Ray)."""
    code = (
        "import sys, gimm_trt.cli; print(sorted(m for m in sys.modules if m == 'ray' or m.startswith("
        "('ray.', 'gimm_trt.distributed', 'gimm_trt.serve.run', 'gimm_trt.serve.service', 'gimm_trt.serve.protocol'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
