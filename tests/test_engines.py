"""gimm_trt.engines: cache keys and names, invalidation, locking, atomic writes, profiles, lazy loaders.

TensorRT is replaced by a stand-in builder passed as ``builder=`` (same signature as
``polygraphy_builder``); the tests that need real TensorRT and a GPU skip with the reason.
"""

import hashlib
import json
import multiprocessing
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("polygraphy")
from onnx import TensorProto, helper  # noqa: E402

from gimm_trt.core import files, trt  # noqa: E402
from gimm_trt.core.errors import EngineError, EngineMissingError, MissingDependency  # noqa: E402
from gimm_trt.core.stages import STAGES, TimestepProfile  # noqa: E402
from gimm_trt.engines import build as B  # noqa: E402
from gimm_trt.engines import cache as C  # noqa: E402
from gimm_trt.engines import compat  # noqa: E402
from gimm_trt.engines.build import (  # noqa: E402
    CachedEngine,
    EngineBytesFromOnnx,
    SaveEngineAtomic,
    build_engines,
    engine_loaders,
    inspect_onnx,
    profiles_for,
)
from gimm_trt.engines.cache import EngineKey, Target  # noqa: E402
from gimm_trt.engines.settings import BuilderSettings  # noqa: E402

TARGET = Target(gpu="h100-80gb-hbm3", sm="90", trt_version="10.9.0.34")
SHA = "0123456789abcdef" * 4


# ---------------------------------------------------------------------------------------------- helpers
def write_onnx(path, inputs, *, splat=None):
    """Identity per input; ``splat``: None, "domain" (node in the gimm_trt domain) or "attr" (TensorRT style)."""
    vis = [helper.make_tensor_value_info(n, TensorProto.FLOAT, dims) for n, dims in inputs.items()]
    outs = [helper.make_tensor_value_info(f"{n}_out", TensorProto.FLOAT, dims) for n, dims in inputs.items()]
    nodes = [helper.make_node("Identity", [n], [f"{n}_out"]) for n in inputs]
    opsets = [helper.make_opsetid("", 17)]
    if splat == "domain":
        nodes.append(helper.make_node("splat", list(inputs)[:1], ["y"], domain="gimm_trt", mode="linear-zeroeps"))
        opsets.append(helper.make_opsetid("gimm_trt", 1))
        outs.append(helper.make_tensor_value_info("y", TensorProto.FLOAT, None))
    elif splat == "attr":
        nodes.append(helper.make_node("splat", list(inputs)[:1], ["y"], plugin_namespace="gimm_trt", aot=1))
        outs.append(helper.make_tensor_value_info("y", TensorProto.FLOAT, None))
    graph = helper.make_graph(nodes, "g", vis, outs)
    onnx.save(helper.make_model(graph, opset_imports=opsets), str(path))
    return Path(path)


STAGE_INPUTS = {
    "flow": {"img0": [1, 3, 32, 32], "img1": [1, 3, 32, 32]},
    "motion": {"flows": [1, 4, 8, 8], "t": ["T"]},
    "synthesis": {"frames": [1, 6, 32, 32], "flow_t": ["T", 2, 8, 8], "t": [None]},
}


@pytest.fixture
def export_dir(tmp_path):
    out = tmp_path / "R-P-fp32-tiny"
    out.mkdir()
    for stage, inputs in STAGE_INPUTS.items():
        write_onnx(out / f"{stage}.onnx", inputs)
    (out / "manifest.json").write_text(json.dumps({"schema": "gimm-export/1", "variant": "R-P", "max_timesteps": 4}))
    return out


class Recorder:
    """Stand-in for ``polygraphy_builder``: returns a loader whose bytes name the ONNX file and its hash."""

    def __init__(self):
        self.calls = []

    def __call__(self, path, *, profiles, timing_cache):
        self.calls.append(SimpleNamespace(path=Path(path), profiles=profiles, timing_cache=timing_cache))
        return lambda: f"plan:{Path(path).name}:{files.sha256_file(path)}".encode()


class SleepyBuilder:
    """Stand-in that takes a while and logs each build to a file shared by processes."""

    def __init__(self, log, delay):
        self.log, self.delay = str(log), delay

    def __call__(self, path, *, profiles, timing_cache):
        def build():
            with open(self.log, "a") as f:
                f.write(f"build {Path(path).name}\n")
            time.sleep(self.delay)
            return f"plan built by one process for {Path(path).name}".encode()

        return build


def never(*args, **kwargs):
    raise AssertionError("nothing may be built here")


def plans(directory):
    return sorted(p.name for p in Path(directory).glob("*.plan"))


def leftovers(directory):
    return sorted(p.name for p in Path(directory).glob("*.tmp"))


# --------------------------------------------------------------------------------------- names and keys
def test_plan_and_timing_names():
    key = EngineKey(stage="synthesis", gpu="h100-80gb-hbm3", sm="90", trt_version="10.9.0.34", onnx_sha256=SHA)
    assert key.plan_name == "synthesis.h100-80gb-hbm3-sm90.trt10.9.0.34.typed-notf32.0123456789ab.plan"
    assert key.timing_name == "timing.h100-80gb-hbm3-sm90.trt10.9.0.34.cache"
    assert key.target == TARGET
    assert C.parse_plan_name(key.plan_name) == C.PlanName(
        "synthesis", "tensorrt", "h100-80gb-hbm3", "90", "10.9.0.34", "typed-notf32", SHA[:12]
    )
    for other in ("timing.h100-sm90.trt10.9.cache", "flow.plan", "flow.h100-sm90.trt10.9.0123456789ab.plan.tmp"):
        assert C.parse_plan_name(other) is None


def test_key_of_hashes_the_onnx(tmp_path):
    path = write_onnx(tmp_path / "motion.onnx", STAGE_INPUTS["motion"])
    key = EngineKey.of("motion", path, TARGET)
    assert key.onnx_sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert (key.gpu, key.sm, key.trt_version) == ("h100-80gb-hbm3", "90", "10.9.0.34")


@pytest.mark.parametrize(
    "field,value",
    [
        ("gpu", "h100.80gb"),
        ("gpu", "H100"),
        ("sm", "9.0"),
        ("stage", "flow.x"),
        ("onnx_sha256", "abc"),
        ("trt_version", "v10"),
    ],
)
def test_key_rejects_parts_unsafe_in_file_names(field, value):
    parts = dict(stage="flow", gpu="h100", sm="90", trt_version="10.9.0.34", onnx_sha256=SHA)
    parts[field] = value
    with pytest.raises(ValueError, match=field):
        EngineKey(**parts)


@pytest.mark.parametrize(
    "name,safe",
    [
        ("NVIDIA H100 80GB HBM3", "h100-80gb-hbm3"),
        ("NVIDIA GeForce RTX 4090", "geforce-rtx-4090"),
        ("NVIDIA A100-SXM4-40GB MIG 1g.5gb", "a100-sxm4-40gb-mig-1g-5gb"),
        ("Tesla T4", "tesla-t4"),
    ],
)
def test_sanitize_gpu_name(name, safe):
    assert compat.sanitize_gpu_name(name) == safe


# ------------------------------------------------------------------------------------------------ compat
def test_version_checks():
    assert compat.parse_version("10.9.0.34") == (10, 9, 0, 34)
    assert compat.parse_version("11.0.0b1") == (11, 0, 0)
    assert trt.check_trt_version("10.9.0.34") == "10.9.0.34"
    assert trt.check_trt_version("11.1.0") == "11.1.0"
    with pytest.raises(ImportError, match=r"TensorRT >= 10\.9.*pip install gimm-trt\[tensorrt\]"):
        trt.check_trt_version("10.8.0.43")


def test_import_trt_names_the_install_command():
    if compat.has_tensorrt():
        pytest.skip("TensorRT is installed here")
    with pytest.raises(ImportError, match=r"pip install gimm-trt\[tensorrt\]"):
        compat.import_trt()


def test_capability_probes_on_stand_in_modules():
    trt10 = SimpleNamespace(
        BuilderFlag=SimpleNamespace(FP16=1, TF32=2), NetworkDefinitionCreationFlag=SimpleNamespace(STRONGLY_TYPED=1)
    )
    trt11 = SimpleNamespace(
        BuilderFlag=SimpleNamespace(TF32=2), NetworkDefinitionCreationFlag=SimpleNamespace(STRONGLY_TYPED=1)
    )
    assert compat.has_fp16_flag(trt10) and not compat.has_fp16_flag(trt11)
    assert compat.has_strongly_typed(trt10) and compat.has_strongly_typed(trt11)


# ------------------------------------------------------------------------------------ hashing and writes
def test_sha256_file_is_streamed(tmp_path):
    path = tmp_path / "blob"
    path.write_bytes(bytes(range(256)) * 1000)
    assert files.sha256_file(path, chunk_bytes=1000) == hashlib.sha256(path.read_bytes()).hexdigest()


def test_atomic_write_failure_keeps_the_old_file_and_no_temp(tmp_path):
    path = files.atomic_write(tmp_path / "x.plan", b"old")

    def half_then_fail(f):
        f.write(b"new, half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        files.atomic_write(path, half_then_fail)
    assert path.read_bytes() == b"old" and leftovers(tmp_path) == []
    files.atomic_write(path, memoryview(b"new"))
    assert path.read_bytes() == b"new" and leftovers(tmp_path) == []


def test_builder_raising_midway_leaves_no_plan_and_no_temp(export_dir):
    def failing(path, *, profiles, timing_cache):
        def build():
            raise RuntimeError("builder died")

        return build

    with pytest.raises(RuntimeError, match="builder died"):
        build_engines(export_dir, target=TARGET, builder=failing)
    engine_dir = export_dir / C.ENGINE_DIR
    assert plans(engine_dir) == [] and leftovers(engine_dir) == []
    assert len(build_engines(export_dir, target=TARGET, builder=Recorder())) == 3


def test_stale_temp_of_a_killed_writer_is_removed_on_rebuild(export_dir):
    key = EngineKey.of("motion", export_dir / "motion.onnx", TARGET, profile="t1-4-4")  # manifest max 4
    engine_dir = export_dir / C.ENGINE_DIR
    engine_dir.mkdir()
    (engine_dir / f".{key.plan_name}.partial-0badc0de-1-abc123.tmp").write_bytes(b"torn")  # a writer elsewhere
    build_engines(export_dir, target=TARGET, builder=Recorder(), stages=("motion",))
    assert leftovers(engine_dir) == [] and plans(engine_dir) == [key.plan_name]


def test_empty_engine_is_an_error_not_a_plan(tmp_path):
    with pytest.raises(RuntimeError, match="no engine"):
        SaveEngineAtomic(b"", tmp_path / "x.plan")()
    assert plans(tmp_path) == []


# -------------------------------------------------------------------------------- build, reuse, rebuild
def test_build_engines_builds_once_then_reuses(export_dir):
    builder = Recorder()
    paths = build_engines(export_dir, target=TARGET, builder=builder)
    assert list(paths) == ["flow", "motion", "synthesis"]
    for stage, path in paths.items():
        sha = files.sha256_file(export_dir / f"{stage}.onnx")
        profile = "" if stage == "flow" else ".t1-4-4"  # the flow graph has no timestep axis
        name = f"{stage}.h100-80gb-hbm3-sm90.trt10.9.0.34.typed-notf32.{sha[:12]}{profile}.plan"
        assert path == export_dir / "engines" / name
        assert path.read_bytes() == f"plan:{stage}.onnx:{sha}".encode()
    assert [c.timing_cache.name for c in builder.calls] == ["timing.h100-80gb-hbm3-sm90.trt10.9.0.34.cache"] * 3
    others = sorted(p.name for p in (export_dir / "engines").iterdir() if p.suffix != ".plan")
    assert others == [".build.lock"]  # one lock file for the directory, no temporaries
    assert build_engines(export_dir, target=TARGET, builder=never) == paths
    assert build_engines(export_dir, target=TARGET, build=False) == paths


def test_a_plan_for_fewer_timesteps_is_not_reused(export_dir):
    small = build_engines(
        export_dir, target=TARGET, builder=Recorder(), stages=("motion",), profile=TimestepProfile.up_to(4)
    )
    assert small["motion"].name.endswith(".t1-4-4.plan")
    with pytest.raises(EngineMissingError, match=r"timestep profile \(plan: t1-4-4, wanted: t1-7-8\)"):
        build_engines(export_dir, target=TARGET, stages=("motion",), profile=TimestepProfile.up_to(8), build=False)
    big = build_engines(
        export_dir, target=TARGET, builder=Recorder(), stages=("motion",), profile=TimestepProfile.up_to(8)
    )
    assert big["motion"].name.endswith(".t1-7-8.plan") and small["motion"].is_file()


def test_plan_names_round_trip_with_a_profile():
    key = EngineKey(stage="motion", gpu="h100", sm="90", trt_version="10.9.0.34", onnx_sha256=SHA, profile="t1-7-8")
    assert key.plan_name == "motion.h100-sm90.trt10.9.0.34.typed-notf32.0123456789ab.t1-7-8.plan"
    assert C.parse_plan_name(key.plan_name).profile == "t1-7-8"
    assert key.differences(C.parse_plan_name(key.plan_name)) == []


def test_manifest_max_timesteps_sets_the_profile(export_dir):
    builder = Recorder()
    build_engines(export_dir, target=TARGET, builder=builder, stages=("motion",))
    (profile,) = builder.calls[0].profiles
    assert tuple(profile["t"]) == ((1,), (4,), (4,))  # manifest max 4, opt min(7, 4)
    assert tuple(profile["flows"]) == ((1, 4, 8, 8),) * 3


def test_missing_onnx_is_a_clear_error(export_dir):
    (export_dir / "synthesis.onnx").unlink()
    with pytest.raises(FileNotFoundError, match="synthesis.onnx"):
        build_engines(export_dir, target=TARGET, builder=never)


CHANGES = {
    "ONNX hash": lambda d: (write_onnx(d / "motion.onnx", {"flows": [1, 4, 8, 8], "t": ["T"], "u": ["T"]}), TARGET),
    "GPU": lambda d: (None, Target(gpu="a100-sxm4-80gb", sm="90", trt_version="10.9.0.34")),
    "compute capability": lambda d: (None, Target(gpu="h100-80gb-hbm3", sm="89", trt_version="10.9.0.34")),
    "TensorRT version": lambda d: (None, Target(gpu="h100-80gb-hbm3", sm="90", trt_version="11.1.0.106")),
}


@pytest.mark.parametrize("what", list(CHANGES))
def test_changed_key_part_rebuilds(export_dir, what):
    old = build_engines(export_dir, target=TARGET, builder=Recorder(), stages=("motion",))["motion"]
    _, target = CHANGES[what](export_dir)
    builder = Recorder()
    new = build_engines(export_dir, target=target, builder=builder, stages=("motion",))["motion"]
    assert len(builder.calls) == 1 and new != old
    assert plans(export_dir / "engines") == sorted([old.name, new.name])


@pytest.mark.parametrize("what", list(CHANGES))
def test_changed_key_part_with_building_off_says_what_differs(export_dir, what):
    old = build_engines(export_dir, target=TARGET, builder=Recorder(), stages=("motion",))["motion"]
    _, target = CHANGES[what](export_dir)
    with pytest.raises(EngineMissingError) as err:
        build_engines(export_dir, target=target, build=False, stages=("motion",))
    message = str(err.value)
    assert old.name in message and f"{what} (plan:" in message and "build_engines" in message
    others = set(CHANGES) - {what}
    assert not any(f"{o} (plan:" in message for o in others)


def test_building_off_without_any_plan(export_dir):
    with pytest.raises(EngineMissingError, match="no plan for this stage was found"):
        build_engines(export_dir, target=TARGET, build=False)


# ------------------------------------------------------------------------------------------------ locks
def _build_in_process(export_dir, log, barrier, results):
    barrier.wait()
    path = build_engines(export_dir, target=TARGET, builder=SleepyBuilder(log, 0.6), stages=("motion",))["motion"]
    results.put((str(path), path.read_bytes()))


def test_two_processes_build_once_and_share_the_plan(export_dir, tmp_path):
    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    barrier, results, log = ctx.Barrier(2), ctx.Queue(), tmp_path / "builds.log"
    procs = [ctx.Process(target=_build_in_process, args=(export_dir, log, barrier, results)) for _ in range(2)]
    for p in procs:
        p.start()
    got = [results.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert got[0] == got[1]
    assert log.read_text() == "build motion.onnx\n"
    assert leftovers(export_dir / "engines") == []


def test_two_threads_build_once(export_dir, tmp_path):
    log, results = tmp_path / "builds.log", []
    barrier = threading.Barrier(2)

    def work():
        barrier.wait()
        results.append(
            build_engines(export_dir, target=TARGET, builder=SleepyBuilder(log, 0.3), stages=("motion",))["motion"]
        )

    threads = [threading.Thread(target=work) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results[0] == results[1] and log.read_text() == "build motion.onnx\n"


# -------------------------------------------------------------------------------------------- profiles
def test_profile_from_onnx_T_axis(tmp_path):
    path = write_onnx(tmp_path / "synthesis.onnx", STAGE_INPUTS["synthesis"])
    info = inspect_onnx(path)
    assert info.inputs == (("frames", (1, 6, 32, 32)), ("flow_t", ("T", 2, 8, 8)), ("t", ("?",)))
    assert not info.uses_splat
    (profile,) = profiles_for(info.inputs, TimestepProfile(opt=7, max=8))
    assert tuple(profile["frames"]) == ((1, 6, 32, 32),) * 3
    assert tuple(profile["flow_t"]) == ((1, 2, 8, 8), (7, 2, 8, 8), (8, 2, 8, 8))
    assert tuple(profile["t"]) == ((1,), (7,), (8,))  # unnamed dynamic first axis counts as T


@pytest.mark.parametrize("dims", [["T", 2, "H", 8], ["N", 2, 8, 8], [1, "T"]])
def test_profile_rejects_other_dynamic_axes(dims):
    with pytest.raises(ValueError, match="only its first axis"):
        profiles_for((("x", tuple(dims)),))


@pytest.mark.parametrize("opt,max_", [(0, 8), (9, 8)])
def test_profile_range_is_checked(opt, max_):
    with pytest.raises(ValueError, match=r"min <= opt <= max|>= 1"):
        TimestepProfile(opt=opt, max=max_)


# -------------------------------------------------------------------------------------- splat plugin
@pytest.mark.parametrize("style", ["domain", "attr"])
def test_splat_op_is_detected(tmp_path, style):
    path = write_onnx(tmp_path / "synthesis.onnx", {"x": [1, 3, 8, 8]}, splat=style)
    assert inspect_onnx(path).uses_splat


def test_missing_plugin_is_an_error_only_when_the_graph_needs_it(tmp_path):
    absent = "gimm_trt.plugins._absent_for_test"
    needs = write_onnx(tmp_path / "synthesis.onnx", {"x": [1, 3, 8, 8]}, splat="domain")
    plain = write_onnx(tmp_path / "motion.onnx", STAGE_INPUTS["motion"])
    with pytest.raises(
        ImportError,
        match=r"synthesis.onnx holds the gimm_trt::splat op.*_absent_for_test.*"
        r"pip install gimm-trt\[tensorrt\].*--splat portable",
    ):
        EngineBytesFromOnnx(needs, builder=never, plugin_module=absent)()
    assert EngineBytesFromOnnx(plain, builder=Recorder(), plugin_module=absent)().startswith(b"plan:motion.onnx")


# ------------------------------------------------------------------------------- the Polygraphy chain
def test_polygraphy_chain_is_strongly_typed_without_tf32(tmp_path):
    from polygraphy.backend.trt import CreateConfig, EngineBytesFromNetwork, NetworkFromOnnxPath

    path = write_onnx(tmp_path / "motion.onnx", STAGE_INPUTS["motion"])
    profiles = profiles_for(inspect_onnx(path).inputs)
    timing = tmp_path / "engines" / C.timing_name(TARGET)
    loader = B.polygraphy_builder(path, profiles=profiles, timing_cache=timing)
    # Polygraphy keeps its arguments in private attributes; read them to check the composition
    assert isinstance(loader, EngineBytesFromNetwork) and loader.timing_cache_path == str(timing)
    assert isinstance(loader._network, B.RequireTensorRT)
    network = loader._network._obj
    assert isinstance(network, NetworkFromOnnxPath) and network.path == str(path) and network.strongly_typed
    config = loader._config
    assert isinstance(config, CreateConfig) and not config.tf32 and not config.fp16 and config.profiles == profiles
    assert config.timing_cache_path is None  # no cache yet: nothing to load
    timing.parent.mkdir()
    timing.write_bytes(b"cache")
    assert B.polygraphy_builder(path, profiles=profiles, timing_cache=timing)._config.timing_cache_path == str(timing)


def test_polygraphy_chain_without_tensorrt_names_the_install_command(tmp_path):
    if compat.has_tensorrt():
        pytest.skip("TensorRT is installed here")
    path = write_onnx(tmp_path / "motion.onnx", STAGE_INPUTS["motion"])
    loader = B.polygraphy_builder(path, profiles=profiles_for(inspect_onnx(path).inputs))
    with pytest.raises(ImportError, match=r"pip install gimm-trt\[tensorrt\]"):
        loader()


# ---------------------------------------------------------------------------------------- laziness
def test_loaders_do_nothing_until_called(export_dir):
    probes, builder = [], Recorder()

    def target():
        probes.append(1)
        return TARGET

    loaders = engine_loaders(export_dir, target=target, builder=builder)
    assert set(loaders) == set(STAGES) and all(isinstance(v, CachedEngine) for v in loaders.values())
    assert probes == [] and builder.calls == [] and not (export_dir / "engines").exists()

    before = {stage: dict(vars(loader)) for stage, loader in loaders.items()}
    path = loaders["motion"]()
    assert path.is_file() and len(builder.calls) == 1 and probes == [1]
    assert loaders["motion"]() == path and len(builder.calls) == 1  # re-callable, reuses the plan
    assert {stage: dict(vars(loader)) for stage, loader in loaders.items()} == before  # loaders never mutate


def test_importing_the_package_loads_nothing_heavy():
    code = (
        "import sys, gimm_trt.engines, gimm_trt.engines.cache, gimm_trt.engines.compat; "
        "print(sorted(m for m in ('tensorrt', 'torch', 'onnx', 'polygraphy') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert out.stdout.strip() == "[]"


# ------------------------------------------------------------------------------------- builder settings
def test_builder_settings_tag_round_trips():
    assert BuilderSettings().tag == "typed-notf32"
    for settings in (BuilderSettings(), BuilderSettings(tf32=True), BuilderSettings(strongly_typed=False)):
        assert BuilderSettings.from_tag(settings.tag) == settings
    assert BuilderSettings(strongly_typed=False, tf32=True).tag == "notyped-tf32"
    with pytest.raises(ValueError, match="builder settings tag"):
        BuilderSettings.from_tag("typed")
    with pytest.raises(ValueError, match="tf32 must be True or False"):
        BuilderSettings(tf32=1)


def test_changed_builder_settings_are_not_loaded_and_say_what_differs(export_dir):
    old = build_engines(export_dir, target=TARGET, builder=Recorder(), stages=("motion",))["motion"]
    tf32 = BuilderSettings(tf32=True)
    with pytest.raises(EngineMissingError) as err:
        build_engines(export_dir, target=TARGET, build=False, stages=("motion",), settings=tf32)
    message = str(err.value)
    assert f"{old.name} differs in builder settings (plan: typed-notf32, wanted: typed-tf32: " in message
    assert "tf32 (plan: off, wanted: on)" in message and "strongly_typed" not in message
    builder = Recorder()
    new = build_engines(export_dir, target=TARGET, builder=builder, stages=("motion",), settings=tf32)["motion"]
    assert len(builder.calls) == 1 and ".typed-tf32." in new.name and new != old
    assert plans(export_dir / "engines") == sorted([old.name, new.name])


@pytest.mark.parametrize("settings", [BuilderSettings(), BuilderSettings(tf32=True, strongly_typed=False)])
def test_polygraphy_chain_follows_the_builder_settings(tmp_path, settings):
    path = write_onnx(tmp_path / "motion.onnx", STAGE_INPUTS["motion"])
    loader = B.polygraphy_builder(path, profiles=profiles_for(inspect_onnx(path).inputs), settings=settings)
    assert loader._network._obj.strongly_typed == settings.strongly_typed and loader._config.tf32 == settings.tf32


def test_the_default_builder_gets_the_settings_and_targets():
    rtx = Target(family="tensorrt-rtx", gpu="", sm="86_89", trt_version="1.7.1.116")
    tf32 = BuilderSettings(tf32=True)
    assert B.default_builder(TARGET, tf32).func is B.polygraphy_builder
    assert B.default_builder(TARGET, tf32).keywords == {"settings": tf32}
    assert B.default_builder(rtx, tf32).func is B.rtx_builder
    assert B.default_builder(rtx, tf32).keywords == {"settings": tf32, "compute_capabilities": "86_89"}


# ------------------------------------------------------------------------------------- engine families
RTX = Target(family="tensorrt-rtx", gpu="", sm="default", trt_version="1.7.1.116")


def test_rtx_plan_names_carry_family_targets_settings_and_parts():
    key = EngineKey(
        stage="motion.1", family="tensorrt-rtx", gpu="", sm="86_89", trt_version="1.7.1.116", onnx_sha256=SHA,
        profile="t1-7-8",
    )  # fmt: skip
    assert key.plan_name == "motion.1.sm86_89.rtx1.7.1.116.typed-notf32.0123456789ab.t1-7-8.plan"
    plan = C.parse_plan_name(key.plan_name)
    assert plan == C.PlanName("motion.1", "tensorrt-rtx", "", "86_89", "1.7.1.116", "typed-notf32", SHA[:12], "t1-7-8")
    assert key.differences(plan) == []
    trt_key = EngineKey(stage="motion", gpu="h100", sm="90", trt_version="10.9.0.34", onnx_sha256=SHA)
    assert C.parse_plan_name(trt_key.plan_name).family == "tensorrt"
    other = C.parse_plan_name(trt_key.plan_name)._replace(stage="motion.1", profile="t1-7-8")
    assert key.differences(other) == [
        "engine family (plan: tensorrt, wanted: tensorrt-rtx)",
        "GPU (plan: h100, wanted: none)",
        "target compute capabilities (plan: 90, wanted: 86_89)",
        "TensorRT-RTX version (plan: 10.9.0.34, wanted: 1.7.1.116)",
    ]


@pytest.mark.parametrize(
    "parts,field",
    [
        (dict(family="tensorrt-rtx", gpu="h100", sm="default"), "gpu"),  # AOT plans are bound to no GPU
        (dict(family="tensorrt-rtx", gpu="", sm="8.6"), "sm"),
        (dict(family="tensorrt", gpu="h100", sm="default"), "sm"),
        (dict(family="tensorrt-llm", gpu="h100", sm="90"), "family"),
    ],
)
def test_targets_are_checked_per_family(parts, field):
    with pytest.raises(ValueError, match=f"Target.{field} must"):
        Target(trt_version="1.7.1.116", **parts)


def test_rtx_family_builds_a_splat_graph_as_its_parts(export_dir):
    write_onnx(export_dir / "motion.onnx", {"flows": [1, 4, 8, 8], "t": ["T"]}, splat="domain")
    graphs = B.graphs_to_build(export_dir, family="tensorrt-rtx")
    assert graphs == {
        "flow": export_dir / "flow.onnx",
        "motion.0": export_dir / "motion.part0.onnx",  # the part before the splat; nothing follows it here
        "synthesis": export_dir / "synthesis.onnx",
    }
    assert not B.inspect_onnx(graphs["motion.0"]).uses_splat
    assert B.graphs_to_build(export_dir, family="tensorrt")["motion"] == export_dir / "motion.onnx"
    assert not (export_dir / "engines").exists()  # nothing is built to find this out
    with pytest.raises(EngineError, match=r"motion.onnx holds the gimm_trt::splat op.*TensorRT-RTX.*family='tensorrt'"):
        B.build_plan(
            export_dir / "motion.onnx", "motion.0", engine_dir=export_dir / "engines", family="tensorrt-rtx",
            target=RTX, builder=never,
        )  # fmt: skip


def test_rtx_family_builds_with_its_builder_and_no_timing_cache(export_dir):
    calls = []

    def builder(path, *, profiles):  # an AOT builder takes no timing cache
        calls.append(Path(path).name)
        return lambda: b"rtx plan"

    paths = build_engines(export_dir, family="tensorrt-rtx", target=RTX, builder=builder)
    assert calls == ["flow.onnx", "motion.onnx", "synthesis.onnx"]
    sha = files.sha256_file(export_dir / "flow.onnx")[:12]
    assert paths["flow"].name == f"flow.smdefault.rtx1.7.1.116.typed-notf32.{sha}.plan"
    assert paths["motion"].name.endswith(".t1-4-4.plan")
    assert sorted(p.name for p in (export_dir / "engines").iterdir() if p.suffix != ".plan") == [".build.lock"]
    assert build_engines(export_dir, family="tensorrt-rtx", target=RTX, builder=never) == paths
    with pytest.raises(EngineMissingError, match=r"engine family \(plan: tensorrt-rtx, wanted: tensorrt\)"):
        build_engines(export_dir, target=TARGET, build=False, stages=("flow",))


def test_build_plan_builds_one_part_of_a_stage(export_dir):
    builder = Recorder()
    engine_dir = export_dir / "engines"
    part = write_onnx(export_dir / "motion.0.onnx", {"flows": [1, 4, 8, 8], "t": ["T"]})
    path = B.build_plan(part, "motion.0", engine_dir=engine_dir, target=TARGET, builder=builder)
    assert path.parent == engine_dir and path.name.startswith("motion.0.h100-80gb-hbm3-sm90.trt10.9.0.34.")
    assert path.name.endswith(".t1-7-8.plan") and len(builder.calls) == 1
    assert B.build_plan(part, "motion.0", engine_dir=engine_dir, target=TARGET, builder=never) == path
    with pytest.raises(EngineMissingError, match=r"(?s)no tensorrt engine for stage 'motion'.*no plan for this stage"):
        B.build_plan(export_dir / "motion.onnx", "motion", engine_dir=engine_dir, target=TARGET, build=False)


def test_target_of_another_family_is_an_error(export_dir):
    with pytest.raises(EngineError, match=r"target is for the tensorrt family and family is 'tensorrt-rtx'"):
        build_engines(export_dir, family="tensorrt-rtx", target=TARGET, builder=never)
    with pytest.raises(ValueError, match="engine family must be one of tensorrt, tensorrt-rtx, got 'rtx'"):
        build_engines(export_dir, family="rtx", builder=never)


def test_compute_capabilities_are_for_the_rtx_family_only():
    with pytest.raises(ValueError, match="compute_capabilities only applies to the tensorrt-rtx family"):
        compat.target_for("tensorrt", compute_capabilities=[86])


def test_families_import_their_own_module():
    assert trt.family("tensorrt-rtx").module == "tensorrt_rtx" and trt.family().module == "tensorrt"
    with pytest.raises(ImportError, match=r"TensorRT-RTX 1\.6\.0 is too old.*gimm-trt\[tensorrt-rtx\]"):
        trt.check_trt_version("1.6.0", "tensorrt-rtx")
    assert trt.check_trt_version("1.7.1.116", "tensorrt-rtx") == "1.7.1.116"


def test_an_old_triton_is_named_before_a_splat_graph_builds(export_dir, monkeypatch):
    """TensorRT compiles the plugin's kernel inside its launch callback, where a Triton too old for the AOT call
    is only printed and the build ends as an invalid engine: the build says so first, naming Triton."""
    import triton

    class OldASTSource:  # Triton 3.2's signature: constants=, no constexprs=
        def __init__(self, fn, signature, constants=None, attrs=None):
            raise AssertionError("must not be called")

    monkeypatch.setattr(triton.compiler, "ASTSource", OldASTSource)
    write_onnx(export_dir / "motion.onnx", {"flows": [1, 4, 8, 8], "t": ["T"]}, splat="domain")
    with pytest.raises(MissingDependency, match=r"needs Triton >= 3\.3, found .*pip install -U 'triton>=3\.3'"):
        build_engines(export_dir, target=TARGET, builder=never, stages=("motion",))
    assert build_engines(export_dir, target=TARGET, builder=Recorder(), stages=("flow",))  # no splat: no Triton


def test_the_tensorrt_extra_states_the_floors_that_build():
    from importlib.metadata import requires

    extra = {r.split(";")[0].replace(" ", "") for r in requires("gimm-trt") if 'extra == "tensorrt"' in r}
    assert {"triton>=3.3", "polygraphy>=0.49.6", "torch>=2.7", "tensorrt>=10.9"} <= extra
