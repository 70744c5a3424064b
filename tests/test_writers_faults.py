"""Fault injection for every writer: video file, PNG folder, export, engine cache, bench JSON and plot.

Each writer runs in a forked child that is killed at a random moment (SIGKILL: no clean-up can run; SIGTERM
through the CLI; SIGINT) or whose writes start failing at a random byte (RLIMIT_FSIZE: the kernel refuses to
grow a file past the limit, as a full disk would). Afterwards the previous output is intact or the new one is
whole, and nothing partial is visible under the final name; what a clean-up could remove is gone (after
SIGKILL a hidden partial may stay behind, under a name no reader of the output looks at).

The points are drawn from a seeded generator; the seed is in every assertion message (set
``GIMM_FAULT_SEED`` to replay one).
"""

import json
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from fakes import crossfade, gradient_frames
from PIL import Image

from gimm_trt.model.spec import ModelSpec
from gimm_trt.runtime.video import _sweep

if not hasattr(os, "fork"):
    pytest.skip("fault injection forks the test process (POSIX only)", allow_module_level=True)
av = pytest.importorskip("av")
onnx = pytest.importorskip("onnx")

SEED = int(os.environ.get("GIMM_FAULT_SEED", random.SystemRandom().randrange(2**31)))
POINTS = 6  # fault points per writer


# --------------------------------------------------------------------------------------------- harness
def run_faulty(work, fault, timeout: float = 120.0) -> tuple:
    """``work()`` in a forked child under ``fault``: ("signal", (signum, seconds or a condition to wait for))
    or ("limit", nbytes).
    Returns the child's exit code (-signum when a signal ended it) and its pid."""
    pid = os.fork()
    if pid == 0:
        code = 3
        try:
            torch.set_num_threads(1)  # the parent's thread pool did not survive the fork
            # as in a terminal: a shell starts background jobs (CI steps, nohup) with SIGINT ignored
            signal.signal(signal.SIGINT, signal.default_int_handler)
            if fault[0] == "limit":
                signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit then fails with EFBIG
                resource.setrlimit(resource.RLIMIT_FSIZE, (fault[1], resource.RLIM_INFINITY))
            work()
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
        except BaseException:
            code = 3
        finally:
            os._exit(code)
    if fault[0] == "signal":
        signum, when = fault[1]
        try:
            _wait_for(when)
        except BaseException:  # a child that never got there must not outlive the test
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise
        os.kill(pid, signum)
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status), pid
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise AssertionError(f"the child hung (seed {SEED})")
        time.sleep(0.01)


def _wait_for(when) -> None:
    """Sleep ``when`` seconds, or until ``when()`` is true."""
    if not callable(when):
        time.sleep(when)
        return
    deadline = time.monotonic() + 60
    while not when():
        assert time.monotonic() < deadline, f"the child never got there (seed {SEED})"
        time.sleep(0.002)


def faults(rng: random.Random, seconds: float, nbytes: int, signals=(signal.SIGKILL, signal.SIGINT)) -> list:
    """``POINTS`` faults: signals at random moments within ``seconds``, write limits within ``nbytes``."""
    out = []
    for i in range(POINTS):
        if i % 2:
            out.append(("limit", rng.randrange(0, max(nbytes, 1))))
        else:
            out.append(("signal", (signals[(i // 2) % len(signals)], rng.uniform(0.0, seconds))))
    return out


def hidden(folder: Path) -> set:
    return {p.name for p in folder.iterdir() if p.name.startswith(".")}


class Leftovers:
    """Hidden entries beside an output: only a SIGKILL may add one (no clean-up runs); any other fault must
    leave no more than there were."""

    def __init__(self, folder: Path):
        self.folder, self.seen = folder, hidden(folder)

    def check(self, fault, where: str) -> None:
        now = hidden(self.folder)
        if not is_signal(fault, signal.SIGKILL):
            assert now <= self.seen, (sorted(now - self.seen), where)
        self.seen = now


def visible(folder: Path) -> list:
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))


def snapshot(folder: Path) -> dict:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def decoded_frames(path: Path) -> int:
    with av.open(str(path)) as c:
        return sum(1 for _ in c.decode(c.streams.video[0]))


def save_pngs(folder: Path, frames) -> Path:
    folder.mkdir(parents=True)
    for i, f in enumerate(frames):
        Image.fromarray(f).save(folder / f"{i:03d}.png")
    return folder


def rng_for(name: str) -> random.Random:
    return random.Random(f"{SEED}-{name}")


def is_signal(fault, *signums) -> bool:
    return fault[0] == "signal" and fault[1][0] in signums


# ------------------------------------------------------------------------------- video and PNG folder
SOURCE_FRAMES = 6  # -> 11 frames at factor 2
DELAY = 0.03  # seconds per synthesis call in the child: a run takes ~0.2 s plus encoding


@pytest.fixture
def source(tmp_path):
    return save_pngs(tmp_path / "in", gradient_frames(SOURCE_FRAMES))


def _interpolate(source, out):
    from gimm_trt.runtime.pipeline import interpolate_video

    return lambda: interpolate_video(source, out, interpolator=crossfade(delay=DELAY), overwrite=True)


def _cli(source, out, monkeypatch):
    """The gimm-interpolate command (SIGTERM reaches it as an exception), with the stand-in model."""
    from gimm_trt import Interpolator
    from gimm_trt.cli import interpolate

    monkeypatch.setattr(Interpolator, "from_spec", classmethod(lambda cls, spec: crossfade(delay=DELAY)))
    args = [str(source), str(out), "--overwrite", "--random-weights"]
    return lambda: interpolate.main(args, prog_name="gimm-interpolate")


def test_video_output_survives_kills_and_full_disks(source, tmp_path, monkeypatch):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out = out_dir / "clip.mp4"
    _interpolate(source, out)()  # the earlier output, and the size a whole one has
    whole = out.stat().st_size
    out.write_bytes(earlier := b"an earlier video: must survive every failed run")
    rng = rng_for("video")
    points = faults(rng, 0.6, whole) + [("signal", (signal.SIGTERM, rng.uniform(0.0, 0.6)))]
    leftovers = Leftovers(out_dir)
    for fault in points:
        work = _cli(source, out, monkeypatch) if is_signal(fault, signal.SIGTERM) else _interpolate(source, out)
        code, _ = run_faulty(work, fault)
        where = f"{fault}, exit {code}, seed {SEED}"
        assert visible(out_dir) == ["clip.mp4"], where
        if out.read_bytes() != earlier:  # only a run that got to its end may replace it, with a whole video
            assert decoded_frames(out) == 2 * SOURCE_FRAMES - 1, where
            out.write_bytes(earlier)
        leftovers.check(fault, where)
    _interpolate(source, out)()  # a later run also removes what killed ones left
    assert hidden(out_dir) == set() and decoded_frames(out) == 2 * SOURCE_FRAMES - 1


def test_folder_output_survives_kills_and_full_disks(source, tmp_path, monkeypatch):
    out = tmp_path / "frames"
    _interpolate(source, out)()
    new = snapshot(out)
    whole = max(len(data) for data in new.values())
    for path in out.iterdir():
        path.unlink()
    for i, frame in enumerate(gradient_frames(39, 8, 8)):  # the earlier run's frames, more of them
        Image.fromarray(frame).save(out / f"{i:06d}.png")
    earlier = snapshot(out)
    rng = rng_for("folder")
    points = faults(rng, 0.6, whole) + [("signal", (signal.SIGTERM, rng.uniform(0.0, 0.6)))]
    leftovers = Leftovers(tmp_path)
    for fault in points:
        work = _cli(source, out, monkeypatch) if is_signal(fault, signal.SIGTERM) else _interpolate(source, out)
        code, _ = run_faulty(work, fault)
        where = f"{fault}, exit {code}, seed {SEED}"
        if not out.exists():  # killed between the two renames of the swap: the earlier frames wait aside
            (aside,) = [p for p in tmp_path.iterdir() if p.name.endswith(".old")]
            assert snapshot(aside) == earlier, where
            _sweep(out)  # what the next writer does first
        assert visible(tmp_path) == ["frames", "in"], where
        now = snapshot(out)
        if now != earlier:  # only a run that got to its end may replace the frames, with all of its own
            assert now == new, where
            shutil.rmtree(out)
            out.mkdir()
            for name, data in earlier.items():
                (out / name).write_bytes(data)
        leftovers.check(fault, where)
    _interpolate(source, out)()  # a later run also removes what killed ones left
    assert hidden(tmp_path) == set() and snapshot(out) == new


@pytest.mark.parametrize("signum, status", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
@pytest.mark.parametrize("name", ["clip.mkv", "frames"])
def test_a_signal_midway_leaves_the_earlier_output_and_nothing_else(tmp_path, monkeypatch, signum, status, name):
    # 30 frames: H.264's look-ahead holds the first packets back, so a short clip's file appears only at its end
    source = save_pngs(tmp_path / "in", gradient_frames(30))
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out = out_dir / name
    if name == "frames":
        out.mkdir()
        Image.fromarray(gradient_frames(1, 8, 8)[0]).save(out / "000000.png")
    else:
        out.write_bytes(b"an earlier video")
    earlier = snapshot(out) if out.is_dir() else out.read_bytes()
    writing = lambda: any(".partial" in p.name for p in out_dir.iterdir())  # noqa: E731 (the partial output)
    code, _ = run_faulty(_cli(source, out, monkeypatch), ("signal", (signum, writing)))
    assert code == status and hidden(out_dir) == set(), (code, hidden(out_dir))
    assert (snapshot(out) if out.is_dir() else out.read_bytes()) == earlier


# The first of two runs, in an interpreter of its own (two real runs are two processes; a fork of this one could
# inherit a lock another thread held at the fork): at its first new frame, when its output is open, it marks STARTED
# and holds there until RELEASE exists, so the second run meets it midway however fast either runs.
FIRST_RUN = """
import sys
import time
from pathlib import Path

import torch
from fakes import crossfade
from gimm_trt.runtime.pipeline import interpolate_video

torch.set_num_threads(1)
source, out, started, release = map(Path, sys.argv[1:])
first = crossfade()
synthesis = first.backend.synthesis


def held(*args):
    started.touch()
    deadline = time.monotonic() + 120
    while not release.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    return synthesis(*args)


first.backend.synthesis = held
interpolate_video(source, out, interpolator=first)
"""


@pytest.mark.parametrize("name", ["clip.mkv", "frames"])
def test_a_second_run_writing_the_same_output_fails_and_leaves_nothing(source, tmp_path, monkeypatch, name):
    """Two runs writing one OUTPUT at once, without --overwrite: the second fails at once (exit 2, one line), and
    the first one's output is whole, with nothing else beside it."""
    from click.testing import CliRunner

    from gimm_trt import Interpolator
    from gimm_trt.cli import interpolate

    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out = out_dir / name
    started, release = tmp_path / "started", tmp_path / "release"
    log = tmp_path / "first.log"
    paths = os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")])
    with log.open("wb") as sink:
        first = subprocess.Popen(
            [sys.executable, "-c", FIRST_RUN, str(source), str(out), str(started), str(release)],
            env={**os.environ, "PYTHONPATH": paths},
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_for(lambda: started.exists() or first.poll() is not None)
        assert started.exists(), log.read_text()
        monkeypatch.setattr(Interpolator, "from_spec", classmethod(lambda cls, spec: crossfade()))
        second = CliRunner().invoke(interpolate, [str(source), str(out), "--random-weights"])
        release.touch()
        assert first.wait(timeout=120) == 0, log.read_text()
    finally:
        release.touch()
        if first.poll() is None:  # a first run that hung must not outlive the test
            first.kill()
            first.wait()
    assert second.exit_code == 2, second.output
    assert second.stderr.splitlines() == [
        f"error: {out} is being written by another run: wait for it to end, or write elsewhere"
    ]
    assert visible(out_dir) == [name] and hidden(out_dir) == set()  # no partial, no lock file
    frames = len(visible(out)) if out.is_dir() else decoded_frames(out)
    assert frames == 2 * SOURCE_FRAMES - 1


# ---------------------------------------------------------------------------------------------- export
def _graph(stage: str, seed: int) -> "onnx.ModelProto":
    """A small stand-in for a traced stage: y = x + w, with 256 KB of weights that differ per seed."""
    w = np.random.default_rng(seed).random((1, 65536), np.float32)
    x = onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 65536])
    y = onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 65536])
    node = onnx.helper.make_node("Add", ["x", "w"], ["y"])
    graph = onnx.helper.make_graph([node], stage, [x], [y], [onnx.numpy_helper.from_array(w, "w")])
    return onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 18)])


@pytest.fixture
def quick_trace(monkeypatch):
    """Tracing replaced by ``_graph`` (seeded by the weights' label), so an export takes well under a second."""
    import onnx_ir as ir

    from gimm_trt.export import graphs

    seeds = {}
    monkeypatch.setattr(graphs, "stage_module", lambda model, stage, ds: None)
    monkeypatch.setattr(
        graphs, "trace", lambda module, args, *, stage, **kw: ir.from_proto(_graph(stage, seeds["seed"]))
    )
    return seeds


def _export(out, seeds, seed):
    from gimm_trt.export.exporter import ExportOptions, WeightsSource, export

    seeds["seed"] = seed
    options = ExportOptions(model=ModelSpec(variant="R", random_weights=True), resolution="224x128", splat="portable")
    return export(options, out, model=object(), weights=WeightsSource(label=f"stand-in weights {seed}"))


def test_export_survives_kills_and_full_disks(tmp_path, quick_trace):
    from gimm_trt.export import manifest

    old_umask = os.umask(0o022)
    try:
        graphs = {}  # what a whole export of each seed writes
        for seed in (1, 0):
            export_dir = _export(tmp_path / f"exports{seed}", quick_trace, seed)
            graphs[seed] = {p.stem: p.read_bytes() for p in export_dir.glob("*.onnx")}
        whole = max(len(b) for b in graphs[1].values())
        for fault in faults(rng_for("export"), 0.5, whole):
            code, _ = run_faulty(lambda: _export(tmp_path / "exports0", quick_trace, 1), fault)
            where = f"{fault}, exit {code}, seed {SEED}"
            for path in export_dir.glob("*.onnx"):  # each graph is the old one or the new one, whole
                assert path.read_bytes() in (graphs[0][path.stem], graphs[1][path.stem]), (path.name, where)
                assert path.stat().st_mode & 0o777 == 0o644, where
            if (export_dir / manifest.MANIFEST).exists():  # a manifest only ever describes what is there
                data = manifest.read_manifest(export_dir)
                assert manifest.reuse_problem(export_dir, data["inputs_sha256"]) is None, where
            _export(tmp_path / "exports0", quick_trace, 0)  # it recovers (and the next fault hits a re-export)
            data = manifest.read_manifest(export_dir)
            assert manifest.reuse_problem(export_dir, data["inputs_sha256"]) is None, where
            assert (export_dir / manifest.MANIFEST).stat().st_mode & 0o777 == 0o644, where
    finally:
        os.umask(old_umask)


# ---------------------------------------------------------------------------------------- engine cache
def test_engine_cache_survives_kills_and_full_disks(tmp_path):
    from test_engines import STAGE_INPUTS, TARGET, write_onnx

    from gimm_trt.engines import cache
    from gimm_trt.engines.build import build_engines

    export_dir = tmp_path / "R-fp32-tiny"
    export_dir.mkdir()
    for stage, inputs in STAGE_INPUTS.items():
        write_onnx(export_dir / f"{stage}.onnx", inputs)
    (export_dir / "manifest.json").write_text(
        json.dumps({"schema": "gimm-export/1", "variant": "R", "max_timesteps": 4})
    )
    plan = {s: (s.encode() * 100_000)[:300_000] for s in STAGE_INPUTS}  # 300 KB per stand-in plan

    def builder(path, *, profiles, timing_cache):
        def build():
            time.sleep(0.05)
            return plan[Path(path).stem]

        return build

    engine_dir = export_dir / cache.ENGINE_DIR
    for fault in faults(rng_for("engines"), 0.4, 3 * 300_000):
        code, _ = run_faulty(lambda: build_engines(export_dir, target=TARGET, builder=builder), fault)
        where = f"{fault}, exit {code}, seed {SEED}"
        if engine_dir.exists():
            for path in engine_dir.glob("*.plan"):  # a plan under its name is whole
                assert path.read_bytes() == plan[path.name.split(".")[0]], (path.name, where)
            assert [p for p in visible(engine_dir) if not p.endswith((".plan", ".lock", ".cache"))] == [], where
            if fault[0] == "limit":
                assert [p for p in hidden(engine_dir) if p.endswith(".tmp")] == [], where
        paths = build_engines(export_dir, target=TARGET, builder=builder)  # finishes, and clears stale temps
        assert sorted(paths) == sorted(STAGE_INPUTS) and not [p for p in hidden(engine_dir) if p.endswith(".tmp")]
        for path in engine_dir.glob("*.plan"):
            path.unlink()


# ------------------------------------------------------------------------------------ bench JSON and plot
def _doc() -> dict:
    stage = {"mean": 1.0}
    row = {
        "name": "torch-fp32",
        "stage_ms": {"flow": stage, "motion": stage, "synthesis": stage},
        "latency_ms": {"pair": {"mean": 3.0}},
        "fps": 10.0,
        "peak_device_mib": None,
        "peak_host_rss_mib": 100.0,
    }
    return {
        "schema": "gimm-bench/1",
        "rows": [row] * 3,
        "notes": ["x" * 200] * 50,
        "config": {"variant": "R", "width": 224, "height": 128, "ds_scale": 1.0, "factor": 2},
        "environment": {"gpu": None, "cpu": "a CPU"},
    }


@pytest.mark.parametrize("kind", ["json", "png"])
def test_bench_files_survive_full_disks(tmp_path, kind):
    from gimm_trt.benchmarks import write_json, write_plot

    write = write_json if kind == "json" else write_plot
    path = tmp_path / f"bench.{kind}"
    write(_doc(), path)
    whole = path.stat().st_size
    path.write_bytes(earlier := b"an earlier result")
    rng = rng_for(f"bench-{kind}")
    points = POINTS if kind == "json" else 2  # a plot takes a second to draw; its writer is the same
    for limit in sorted(rng.randrange(0, whole) for _ in range(points)):
        code, _ = run_faulty(lambda: write(_doc(), path), ("limit", limit))
        assert code == 3 and path.read_bytes() == earlier, f"limit {limit} of {whole} bytes, seed {SEED}"
        assert os.listdir(tmp_path) == [path.name], f"limit {limit}, seed {SEED}"
    assert run_faulty(lambda: write(_doc(), path), ("limit", whole + 1))[0] == 0 and path.stat().st_size == whole
