"""interpolate_videos on Ray: the split run against the single-process ``interpolate_video``, a worker killed
mid-run, one worker per (logical) GPU, and a cluster that only listens on loopback.

One Ray cluster of this machine (logical GPUs, fractional CPUs) and one pool of two workers serve the module;
the model is GIMM-VFI-R with seeded random weights on 128x128 frames. Torch's CPU results depend on its
thread count, so the reference and the workers both run one thread.
"""

import importlib.util
import os
import signal
from fractions import Fraction
from pathlib import Path

import fakes
import numpy as np
import pytest
import torch

from gimm_trt.core.errors import InputError
from gimm_trt.distributed.plan import Segment, outputs_for, segment_pairs, split
from gimm_trt.model.spec import ModelSpec

av = pytest.importorskip("av")
needs_ray = pytest.mark.skipif(
    importlib.util.find_spec("ray") is None, reason="ray is not installed (pip install 'gimm-trt[ray]')"
)

N, SIZE, FACTOR = 6, 128, 2
WAIT_S = 300  # bound on any one wait: a hung cluster fails the test instead of the CI run


def _frames(n=N, seed=0):
    """Smooth random frames (noise would be a poor input even for random weights)."""
    rng = np.random.default_rng(seed)
    base = rng.random((n, 3, 8, 8), dtype=np.float32)
    up = torch.nn.functional.interpolate(torch.from_numpy(base), size=(SIZE, SIZE), mode="bicubic")
    return [(f.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy() for f in up]


def _write_pngs(folder: Path, frames):
    from PIL import Image

    folder.mkdir(parents=True)
    for i, f in enumerate(frames):
        Image.fromarray(f).save(folder / f"{i:03d}.png")
    return folder


def _write_clip(path: Path, frames, fps=Fraction(25)):
    """Lossless video (FFV1, so it decodes to ``frames`` exactly) with a FLAC tone, as .mkv."""
    with av.open(str(path), "w") as c:
        v = c.add_stream("ffv1", rate=fps)
        v.height, v.width = frames[0].shape[:2]
        v.pix_fmt = "bgr0"
        a = c.add_stream("flac", rate=16000)
        a.layout = "mono"
        for i, f in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(f, format="rgb24")
            vf.pts = i
            c.mux(v.encode(vf))
        c.mux(v.encode(None))
        fakes.mux_tone(c, a, int(len(frames) / fps * 16000))
    return path


def _pngs(folder: Path) -> dict:
    return {p.name: p.read_bytes() for p in sorted(Path(folder).iterdir())}


def _video(path: Path) -> dict:
    """What must match between two video outputs: rate, timestamps, audio packets and decoded frames."""
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        packets = [p for p in c.demux() if p.dts is not None]
        out = {
            "rate": v.average_rate,
            "time_base": v.time_base,
            "size": (v.width, v.height),
            "pts": sorted(p.pts for p in packets if p.stream.type == "video"),
            "audio": [(p.pts, bytes(p)) for p in packets if p.stream.type == "audio"],
        }
    with av.open(str(path)) as c:
        out["frames"] = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    return out


class _Replay:
    """Hands ``interpolate_video`` frames already computed, so its own writer makes the expected video
    without running the model a second time."""

    variant, weights = "R", "random weights (seed 0), not a trained model"

    def __init__(self, frames):
        self.frames = frames

    def stream(self, frames, factor, ds_scale=None):
        for _ in frames:  # drain the source, as the model would (its audio is copied as it is demuxed)
            pass
        yield from (torch.from_numpy(f).permute(2, 0, 1).float() / 255 for f in self.frames)


# ---- planning (no Ray) ----


def test_segments_cover_every_pair_once():
    segs = split(0, 8, 3)
    assert [(s.start, s.stop) for s in segs] == [(0, 3), (3, 6), (6, None)]
    assert [s.first_output(FACTOR) for s in segs] == [0, 7, 13]
    assert split(0, 2, 5) == [Segment(0, 0, 0, None)]
    assert segment_pairs([101], workers=2) == 50 and segment_pairs([101], workers=1) == 64
    assert segment_pairs([3] * 10, workers=4) == 5  # short inputs stay whole


def test_outputs_for_names_and_collisions(tmp_path):
    (tmp_path / "frames").mkdir()
    got = outputs_for([tmp_path / "a.mp4", tmp_path / "b.webm", tmp_path / "frames"], tmp_path / "out")
    assert [Path(o).name for _, o in got] == ["a.mp4", "b.mkv", "frames"]
    with pytest.raises(InputError, match="both write"):
        outputs_for([tmp_path / "x" / "a.mp4", tmp_path / "y" / "a.mp4"], tmp_path / "out")


@pytest.mark.parametrize(
    "args, expected",
    [
        (["{a}", "{b}", "{tmp}/out.mp4"], "OUTPUT must be a folder"),
        (["--demo", "{tmp}/out", "--workers", "2"], "--demo runs in one process"),
        (["{a}", "{tmp}/out", "--ray-address", "127.0.0.1:1"], "--ray-address needs --workers"),
        (["{a}", "{b}", "{tmp}/out"], "no images"),  # several INPUTs are all checked before any work
        (["{a}", "{tmp}/out", "--workers", "1", "--fps", "30"], "--fps sets a video's frame rate"),
        (["{a}", "{tmp}/out.webm", "--workers", "1"], ".webm videos are not written here"),
        (["{a}", "{tmp}/out", "--workers", "1", "--checkpoint", "{tmp}/none.pt"], "checkpoint not found"),
    ],
)
def test_cli_refuses_before_any_work(tmp_path, args, expected):
    from click.testing import CliRunner

    from gimm_trt.cli import interpolate

    _write_pngs(tmp_path / "a", _frames(2))
    (tmp_path / "b").mkdir()
    paths = {"a": tmp_path / "a", "b": tmp_path / "b", "tmp": tmp_path}
    weights = [] if "--checkpoint" in args else ["--random-weights"]  # the checkpoint is checked before Ray too
    result = CliRunner().invoke(interpolate, [arg.format(**paths) for arg in args] + weights)
    assert result.exit_code == 2, result.output
    assert [line for line in result.stderr.splitlines() if line.startswith("error:")] == [
        line for line in result.stderr.splitlines() if expected in line
    ], result.stderr


# ---- on Ray ----


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("inputs")
    frames = _frames()
    return {
        "frames": frames,
        "dir": _write_pngs(root / "clip", frames),
        "short": _write_pngs(root / "short", frames[:4]),
        "video": _write_clip(root / "clip.mkv", frames),
    }


@pytest.fixture(scope="module")
def reference(inputs, tmp_path_factory):
    """The single-process path: ``interpolate_video`` into a folder of PNGs, one torch thread."""
    from gimm_trt.runtime import Interpolator
    from gimm_trt.runtime.pipeline import interpolate_video

    out = tmp_path_factory.mktemp("reference") / "frames"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with pytest.warns(UserWarning, match="random weights"):
            interp = Interpolator.from_checkpoint(variant="R", random_weights=True, seed=0)
        interpolate_video(inputs["dir"], out, interpolator=interp, factor=FACTOR)
    finally:
        torch.set_num_threads(threads)
    assert len(_pngs(out)) == (N - 1) * FACTOR + 1
    return out


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    """A home directory of its own, to see that Ray writes nothing there (no saved token)."""
    path = tmp_path_factory.mktemp("home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HOME", str(path))
        yield path


@pytest.fixture(scope="module")
def cluster(home):
    from gimm_trt.distributed import ray_session

    # two logical GPUs for placement; one CPU shared as halves (two workers of one CPU each on 2 cores stall)
    with ray_session(num_cpus=1, num_gpus=2) as ray:
        yield ray
    assert not ray.is_initialized()


@pytest.fixture(scope="module")
def pool(cluster):
    from gimm_trt.distributed import WorkerPool, WorkerSpec

    spec = WorkerSpec(model=ModelSpec(variant="R", random_weights=True, seed=0, device="cpu"), threads=1)
    with WorkerPool(spec, 2, gpus_per_worker=1, cpus_per_worker=0.5, start_timeout=WAIT_S) as workers:
        yield workers


@needs_ray
def test_cluster_listens_on_loopback_only(cluster, home):
    import psutil

    ours = {os.getpid()} | {p.pid for p in psutil.Process().children(recursive=True)}
    listening = [c for c in psutil.net_connections(kind="inet") if c.pid in ours and c.status == psutil.CONN_LISTEN]
    gcs_port = int(cluster.get_runtime_context().gcs_address.rsplit(":", 1)[1])
    assert gcs_port in {c.laddr.port for c in listening}, "the GCS must be among the sockets checked"
    open_to_network = [
        (c.laddr, psutil.Process(c.pid).name())
        for c in listening
        if c.laddr.ip not in ("127.0.0.1", "::ffff:127.0.0.1", "::1")
    ]
    assert not open_to_network
    assert not (home / ".ray").exists(), "Ray saved its token into the home directory"


@needs_ray
@pytest.mark.slow
def test_cli_workers_runs_on_the_cluster(cluster, inputs, reference, tmp_path):
    """gimm-interpolate --workers joins the session that is already up (a second cluster is never started)."""
    from click.testing import CliRunner

    from gimm_trt.cli import interpolate

    out = tmp_path / "frames"
    result = CliRunner().invoke(
        interpolate,
        [str(inputs["short"]), str(out), "--workers", "1", "--variant", "R", "--random-weights", "--device", "cpu"],
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(out)
    # one Ray worker reserves one CPU and so runs one torch thread, like the reference
    assert list(_pngs(out).values()) == list(_pngs(reference).values())[: 3 * FACTOR + 1]


@needs_ray
def test_cli_model_options_reach_the_workers(cluster, inputs, tmp_path):
    """Every model option of gimm-interpolate reaches the Ray workers as one ModelSpec: an impossible memory
    budget fails in the worker, at its first pair, with the budget's own message and exit status 2."""
    from click.testing import CliRunner

    from gimm_trt.cli import interpolate

    out = tmp_path / "frames"
    args = [str(inputs["short"]), str(out), "--workers", "1", "--variant", "R", "--random-weights", "--device", "cpu"]
    result = CliRunner().invoke(interpolate, [*args, "--max-memory", "1MiB", "--seed", "3"])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("error: frames of 128x128 at ds_scale=1.0 need at least "), result.stderr
    assert lines[-1].endswith("the memory budget is 0.00 GiB: raise max_memory, or use a smaller ds_scale")
    assert not out.exists()


def test_worker_spec_carries_the_model_spec():
    from gimm_trt.distributed import WorkerSpec

    spec = ModelSpec(variant="R", random_weights=True, max_memory="2GiB", ds_scale=0.5, backend="onnxruntime")
    assert WorkerSpec(model=spec).model.max_memory == 2 * 2**30
    with pytest.raises(InputError, match="model must be a gimm_trt.model.ModelSpec"):
        WorkerSpec(model={"variant": "R"})


@needs_ray
def test_one_worker_per_gpu(pool, cluster):
    from gimm_trt.distributed import WorkerPool

    gpus = [tuple(info["gpus"]) for info in pool.info]
    assert sorted(gpus) == [("0",), ("1",)]
    assert all(info["device"] == "cpu" for info in pool.info)  # logical GPUs: placement only
    with pytest.raises(InputError, match="need 3 GPUs; the Ray cluster has 2"):
        WorkerPool(pool.spec, 3, gpus_per_worker=1)


@needs_ray
def test_split_run_equals_single_process(pool, inputs, reference, tmp_path):
    from gimm_trt.distributed import interpolate_videos

    out = tmp_path / "frames"
    seen = []
    [result] = interpolate_videos(
        [(inputs["dir"], out)],
        factor=FACTOR,
        pool=pool,
        segment_pairs=2,
        timeout=WAIT_S,
        on_progress=lambda done, total: seen.append((done, total, out.exists())),
    )
    assert result.frames == (N - 1) * FACTOR + 1
    assert _pngs(out) == _pngs(reference)  # byte for byte: same pixels, same PNG writer
    assert seen and all(not visible for *_, visible in seen[:-1]), "frames appeared before the run was complete"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["frames"]  # no staging left behind


@needs_ray
def test_a_second_run_on_one_output_fails_before_any_work(pool, inputs, tmp_path):
    """While a run writes OUTPUT, a run on the workers into the same OUTPUT fails at once, without --overwrite or
    with it, and the first run's output is whole, with nothing else beside it."""
    import threading

    from fakes import crossfade

    from gimm_trt.distributed import interpolate_videos
    from gimm_trt.runtime.pipeline import interpolate_video

    out = tmp_path / "frames"
    # the first run's first new frame (its output is open by then) sets STARTED and waits for RELEASE, so the
    # second runs meet it midway however fast either runs
    started, release = threading.Event(), threading.Event()
    first = crossfade()
    synthesis = first.backend.synthesis
    first.backend.synthesis = lambda *args: (started.set(), release.wait(WAIT_S), synthesis(*args))[-1]
    writer = threading.Thread(target=interpolate_video, args=(inputs["short"], out), kwargs={"interpolator": first})
    writer.start()
    try:
        assert started.wait(WAIT_S)
        for overwrite in (False, True):
            with pytest.raises(InputError, match=f"^{out} is being written by another run"):
                interpolate_videos([(inputs["dir"], out)], factor=FACTOR, pool=pool, overwrite=overwrite)
    finally:
        release.set()
        writer.join(WAIT_S)
    assert not writer.is_alive()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["frames"]  # no staging, no lock file
    assert len(_pngs(out)) == 3 * FACTOR + 1  # the first run's frames, all of them


@needs_ray
def test_a_variable_frame_rate_keeps_its_timing_on_the_workers(pool, inputs, tmp_path):
    """As in one process: frames unevenly spaced keep their times, the new ones lie halfway between theirs, and
    the video, joined from segments, ends with its sound."""
    from fakes import VFR_AUDIO_MS, VFR_MS, assert_keeps_vfr_timing, write_vfr_clip

    from gimm_trt.distributed import interpolate_videos

    src = write_vfr_clip(tmp_path / "vfr.mkv", inputs["frames"], VFR_MS, VFR_AUDIO_MS)
    out = tmp_path / "out.mp4"
    [result] = interpolate_videos([(src, out)], factor=FACTOR, pool=pool, segment_pairs=2, timeout=WAIT_S)
    assert assert_keeps_vfr_timing(out, FACTOR) == (N - 1) * FACTOR + 1
    assert result.fps is None and "not evenly spaced" in result.notes[0]


@needs_ray
def test_killed_worker_gives_complete_identical_output(pool, inputs, reference, tmp_path):
    from gimm_trt.distributed import interpolate_videos

    out = tmp_path / "frames"
    victim = pool.pids()[0]
    killed = []

    def kill_once(done, total):
        if not killed:
            os.kill(victim, signal.SIGKILL)
            killed.append(done)

    [result] = interpolate_videos(
        [(inputs["dir"], out)], factor=FACTOR, pool=pool, segment_pairs=1, timeout=WAIT_S, on_progress=kill_once
    )
    # the first worker takes the first segment, whose first frame is written before its pair is computed:
    # one frame in, it was mid-segment
    assert killed == [1]
    assert result.frames == (N - 1) * FACTOR + 1
    assert _pngs(out) == _pngs(reference)
    assert victim not in [info["pid"] for info in pool.locate(timeout=WAIT_S)]  # Ray restarted it: a new process


@needs_ray
@pytest.mark.slow
def test_many_inputs_and_a_video_output(pool, inputs, reference, tmp_path):
    from gimm_trt.distributed import interpolate_videos
    from gimm_trt.runtime.pipeline import interpolate_video

    expected = [np.asarray(_png(p)) for p in sorted(reference.iterdir())]
    video, short = tmp_path / "out" / "clip.mp4", tmp_path / "out" / "short"
    results = interpolate_videos(
        [(inputs["video"], video), (inputs["short"], short)], factor=FACTOR, pool=pool, timeout=WAIT_S
    )
    assert [r.frames for r in results] == [(N - 1) * FACTOR + 1, 3 * FACTOR + 1]
    # the single-process writer given the same frames: codec, rate, timestamps, audio copy
    interpolate_video(inputs["video"], tmp_path / "expected.mp4", interpolator=_Replay(expected), factor=FACTOR)
    got, want = _video(video), _video(tmp_path / "expected.mp4")
    assert got["rate"] == want["rate"] == 50 and got["pts"] == want["pts"] and got["size"] == want["size"]
    assert got["audio"] == want["audio"] and len(got["audio"]) > 0
    assert len(got["frames"]) == len(want["frames"]) == len(expected)
    assert all(np.array_equal(a, b) for a, b in zip(got["frames"], want["frames"]))
    # a shorter input is a prefix of the same computation: its frames are the reference's first ones
    assert [np.asarray(_png(p)).tobytes() for p in sorted(short.iterdir())] == [e.tobytes() for e in expected[:7]]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["clip.mp4", "short"]


def _png(path):
    from PIL import Image

    with Image.open(path) as im:
        return im.convert("RGB")
