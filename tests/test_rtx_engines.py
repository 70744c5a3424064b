"""Real TensorRT-RTX builds, ahead of time on the CPU: every engine of a small R export (flow, the motion stage's
two standard-op parts, synthesis), fp32 and fp16, through gimm_trt's own build code; then what can be checked
without a GPU.

Each plan is built once per test session (flow 13-37 s, synthesis 3-11 s, measured on two shared cores): the plans go
to the shared export's ``engines`` directory, and every build is logged to a file all workers share.
"""

import collections
import time
from pathlib import Path

import pytest

pytest.importorskip("onnx")
pytest.importorskip("polygraphy")

from conftest import shared_dir  # noqa: E402

from gimm_trt.core.errors import EngineError  # noqa: E402
from gimm_trt.engines import build as B  # noqa: E402
from gimm_trt.engines import compat  # noqa: E402
from gimm_trt.engines.cache import EngineKey, parse_plan_name  # noqa: E402
from gimm_trt.engines.settings import BuilderSettings  # noqa: E402

pytestmark = pytest.mark.tensorrt_rtx

# motion holds the splat op, which no TensorRT-RTX engine can: its parts around the splats are built instead
BUILT = ("flow", "motion.0", "motion.1", "synthesis")


def never(*args, **kwargs):
    raise AssertionError("nothing may be built here")


@pytest.fixture(scope="session")
def rtx_plans(r_exports, tmp_path_factory) -> dict:
    """``{(precision, stage): (plan path, build seconds or None when found built)}``; each real build appends
    a line to ``rtx-builds.log`` in the session's shared directory."""
    log = shared_dir(tmp_path_factory) / "rtx-builds.log"
    here = []  # the builds of this process

    def logged(path, **options):
        here.append(path)
        with open(log, "a") as f:
            f.write(f"{Path(path).parent.name}/{Path(path).name}\n")
        return B.rtx_builder(path, **options)

    plans = {}
    for precision, export_dir in r_exports.items():
        graphs = B.graphs_to_build(export_dir, family="tensorrt-rtx")
        assert tuple(graphs) == BUILT
        for name, onnx_path in graphs.items():
            builds, start = len(here), time.perf_counter()
            path = B.build_plan(
                onnx_path, name, engine_dir=export_dir / "engines", family="tensorrt-rtx", builder=logged
            )
            plans[precision, name] = (path, time.perf_counter() - start if len(here) > builds else None)
    return plans


def _onnx(export_dir, name: str):
    stage, _, part = name.partition(".")
    return export_dir / (f"{stage}.part{part}.onnx" if part else f"{stage}.onnx")


def test_plans_are_built_once_with_the_expected_names(rtx_plans, r_exports, tmp_path_factory):
    version = compat.import_trt("tensorrt-rtx").__version__
    for (precision, stage), (path, seconds) in rtx_plans.items():
        export_dir = r_exports[precision]
        key = EngineKey.of(
            stage, _onnx(export_dir, stage), compat.rtx_target(), profile="" if stage == "flow" else "t1-7-8"
        )
        assert path == export_dir / "engines" / key.plan_name
        if not stage.startswith("motion"):  # the motion parts hold few weights
            assert path.stat().st_size > 1_000_000  # the weights are in the plan: MBs, not a header
        plan = parse_plan_name(path.name)
        assert (plan.stage, plan.family, plan.sm, plan.trt_version) == (stage, "tensorrt-rtx", "default", version)
        assert plan.settings == BuilderSettings().tag == "typed-notf32"
        assert plan.profile == ("" if stage == "flow" else "t1-7-8")  # motion and synthesis take T timesteps
        print(f"{precision} {stage}: {path.stat().st_size / 2**20:.1f} MiB, built in "
              + (f"{seconds:.1f} s" if seconds is not None else "another worker"))  # fmt: skip
    log = (shared_dir(tmp_path_factory) / "rtx-builds.log").read_text().splitlines()
    built = collections.Counter(log)
    assert sorted(built) == sorted(
        f"{r_exports[p].name}/{_onnx(r_exports[p], s).name}" for p in r_exports for s in BUILT
    )
    assert set(built.values()) == {1}  # one real build per graph and precision in the session


def test_second_call_loads_from_the_cache(rtx_plans, r_exports):
    for (precision, stage), (path, _) in rtx_plans.items():
        export_dir = r_exports[precision]
        again = B.build_plan(
            _onnx(export_dir, stage), stage, engine_dir=export_dir / "engines", family="tensorrt-rtx", builder=never
        )
        assert again == path
    paths = B.build_engines(r_exports["fp32"], family="tensorrt-rtx", builder=never)
    assert paths == {stage: rtx_plans["fp32", stage][0] for stage in BUILT}
    assert list(paths) == list(BUILT)  # run order


def test_fp16_and_fp32_plans_differ(rtx_plans):
    for stage in BUILT:
        fp32, fp16 = rtx_plans["fp32", stage][0], rtx_plans["fp16", stage][0]
        assert fp32.name != fp16.name  # the ONNX hash differs
        if not stage.startswith("motion"):  # weights dominate these plans; the motion parts are mostly kernels
            assert fp16.stat().st_size < 0.75 * fp32.stat().st_size  # fp16 weights: about half the bytes


def test_motion_graph_is_refused_whole_and_built_as_parts(r_exports):
    export_dir = r_exports["fp32"]
    assert B.inspect_onnx(export_dir / "motion.onnx").uses_splat
    with pytest.raises(EngineError, match=r"motion.onnx holds the gimm_trt::splat op.*no plugin layers"):
        B.build_plan(export_dir / "motion.onnx", "motion", engine_dir=export_dir / "engines", family="tensorrt-rtx")
    for name in ("motion.0", "motion.1"):
        assert not B.inspect_onnx(_onnx(export_dir, name)).uses_splat


def test_portable_motion_is_refused_before_anything_is_built(r_export_forms):
    with pytest.raises(EngineError, match=r"motion.onnx: node '.*' \(ScatterElements, reduction=add\) has no "):
        B.build_engines(r_export_forms["portable-fp32"], family="tensorrt-rtx", builder=never)


def test_fp16_network_keeps_the_fp32_islands_in_fp32(r_exports):
    """The strongly typed network TensorRT-RTX compiles from the fp16 flow graph: each convolution and matrix
    product has the ONNX graph's type, fp16 for learned layers and fp32 for the islands and the correlation.

    This reads the parsed network, not the engine: an engine's layer information needs it deserialized, which
    needs a CUDA driver; a strongly typed build may not change these types."""
    import onnx
    import tensorrt_rtx as trt

    path = r_exports["fp16"] / "flow.onnx"
    model = onnx.shape_inference.infer_shapes(onnx.load(str(path), load_external_data=False))
    types = {v.name: v.type.tensor_type.elem_type for v in (*model.graph.value_info, *model.graph.output)}
    want = {
        n.name: types[n.output[0]] for n in model.graph.node if n.op_type in ("Conv", "MatMul") and n.output[0] in types
    }
    _, network, _parser = B.rtx_network(path)
    dtypes = {onnx.TensorProto.FLOAT: trt.DataType.FLOAT, onnx.TensorProto.FLOAT16: trt.DataType.HALF}
    got = {}
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        if layer.name in want:
            got[layer.name] = layer.get_output(0).dtype
    assert set(got) == set(want)
    assert got == {name: dtypes[t] for name, t in want.items()}
    counts = collections.Counter(got.values())
    assert counts[trt.DataType.HALF] > 100 and counts[trt.DataType.FLOAT] >= 2  # learned layers; island + correlation


def test_compute_capabilities_are_normalised_and_checked():
    assert compat.rtx_compute_capabilities(None) == "default"
    assert compat.rtx_compute_capabilities([89, "8.6", "sm86"]) == "86_89"
    with pytest.raises(ValueError, match=r"compute_capabilities: 90 is not one TensorRT-RTX .* builds for"):
        compat.rtx_compute_capabilities([90])


def test_settings_reach_the_tensorrt_rtx_config():
    trt = compat.import_trt("tensorrt-rtx")
    builder = trt.Builder(compat.trt_logger("tensorrt-rtx"))
    config = builder.create_builder_config()
    assert config.get_flag(trt.BuilderFlag.TF32)  # TensorRT-RTX's default, which we turn off
    BuilderSettings().configure(config, trt)
    assert not config.get_flag(trt.BuilderFlag.TF32)
    BuilderSettings(tf32=True).configure(config, trt)
    assert config.get_flag(trt.BuilderFlag.TF32)
    assert BuilderSettings().network_flags(trt) == 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    assert BuilderSettings(strongly_typed=False).network_flags(trt) == 0


def test_explicit_compute_capabilities_build_a_plan_of_their_own(tmp_path):
    from onnx import TensorProto, helper, save

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["T", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["T", 4])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y])
    save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(tmp_path / "relu.onnx"))
    plans = {
        ccs: B.build_plan(
            tmp_path / "relu.onnx",
            "relu",
            engine_dir=tmp_path / "engines",
            family="tensorrt-rtx",
            compute_capabilities=ccs,
        )
        for ccs in (None, (86,))
    }
    assert ".smdefault.rtx" in plans[None].name and ".sm86.rtx" in plans[(86,)].name
    assert all(p.stat().st_size > 0 for p in plans.values())


def test_a_graph_the_parser_rejects_is_an_engine_error(tmp_path):
    from onnx import TensorProto, helper, save

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    graph = helper.make_graph([helper.make_node("NoSuchOp", ["x"], ["y"])], "g", [x], [y])
    save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(tmp_path / "odd.onnx"))
    with pytest.raises(EngineError, match=r"TensorRT-RTX's ONNX parser rejected odd.onnx: .*NoSuchOp"):
        B.build_plan(tmp_path / "odd.onnx", "odd", engine_dir=tmp_path / "engines", family="tensorrt-rtx")
    assert not list((tmp_path / "engines").glob("*.plan"))


def test_a_build_that_fails_in_the_builder_is_an_engine_error(tmp_path):
    """The graph parses but no engine comes out (tensorrt_rtx's build_serialized_network returns None): the save
    step names the plan and writes nothing."""
    from onnx import TensorProto, helper, save

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["T", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, 3])
    shape = helper.make_tensor("s", TensorProto.INT64, [2], [3, 3])  # 4 * T elements never fill 3 x 3 for T in 1..8
    graph = helper.make_graph([helper.make_node("Reshape", ["x", "s"], ["y"])], "g", [x], [y], initializer=[shape])
    save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(tmp_path / "bad.onnx"))
    with pytest.raises(EngineError, match=r"the builder returned no engine for bad\..*\.plan; see TensorRT's log"):
        B.build_plan(tmp_path / "bad.onnx", "bad", engine_dir=tmp_path / "engines", family="tensorrt-rtx")
    assert not list((tmp_path / "engines").glob("*.plan"))
