"""Our TensorRT plugin driven by TensorRT's own ``tensorrt.plugin`` package, as an engine build would drive it.

The package comes from the ``tensorrt-cu12-bindings`` wheel (installed, or unpacked into a folder listed in
``GIMM_TRT_PLUGIN_LAYERS``) and runs over ``trt_standin``, a stand-in for TensorRT's native bindings. Every test
runs once per wheel found: one TensorRT 11.x and one 10.x (>= 10.9) release; a missing one is skipped with how
to provide it. The ONNX node comes from a real export; TensorRT's ONNX parser turns it into a field collection
(``trt_standin.parser``); the build's calls come from ``trt_standin.builder``. The JIT implementation runs on CPU
tensors in a subprocess under Triton's interpreter.
"""

import contextlib
import ctypes
import dataclasses
import functools
import importlib
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import trt_standin
from trt_standin import builder, native, parser

from gimm_trt import plugins
from gimm_trt.plugins import onnx_node, schema

MODULE = "gimm_trt.plugins.trt_plugin"
WHEEL = "tensorrt-cu12-bindings"
C, H, W = 16, 24, 40


def _layer_params():
    layers = [layer for layer in trt_standin.plugin_layers() if layer.release >= (10, 9)]
    params = [pytest.param(layer, id=f"trt{layer.version}") for layer in layers]
    for major, example in ((11, "11.4.0.106"), (10, "10.16.1.11")):
        if not any(layer.major == major for layer in layers):
            how = (
                f"pip install {WHEEL}=={example}"
                if major == 11
                else f"pip install --no-deps --target DIR {WHEEL}=={example} and set {trt_standin.ENV}=DIR"
            )
            params.append(
                pytest.param(
                    None,
                    id=f"trt{major}",
                    marks=pytest.mark.skip(reason=f"no TensorRT {major}.x plugin layer ({WHEEL}) found: {how}"),
                )
            )
    return params


@pytest.fixture(params=_layer_params())
def layer(request):
    return request.param


@pytest.fixture
def trt_env(layer):
    """TensorRT's plugin layer over the stand-in, with our plugin module imported (and registered) on it."""
    with trt_standin.installed(layer, dependents=(MODULE,)) as (trt, trtp):
        module = importlib.import_module(MODULE)
        registry = trt.get_plugin_registry()
        yield SimpleNamespace(
            trt=trt,
            trtp=trtp,
            module=module,
            registry=registry,
            creator=registry.get_creator(schema.OP_NAME, str(schema.VERSION), schema.NAMESPACE),
        )


class Splat(torch.nn.Module):
    def forward(self, x, flow, metric):
        return plugins.splat(x, flow, metric, mode=schema.DEFAULT_MODE)


@pytest.fixture(scope="module")
def exported():
    """The splat node and the shapes and types of its inputs, from real exports (dynamic T) with aot=1 and 0."""
    pytest.importorskip("onnxscript")
    args = (torch.randn(3, C, H, W), torch.randn(3, 2, H, W), torch.rand(3, 1, H, W))
    out = {}
    for aot in (True, False):
        with onnx_node.export_splat_mode("plugin", aot=aot) as table:
            steps = torch.export.Dim("T", max=8)
            model = torch.onnx.export(
                Splat().eval(),
                args,
                dynamo=True,
                custom_translation_table=table,
                opset_version=18,
                dynamic_shapes=tuple({0: steps} for _ in args),
                verbose=False,
            ).model_proto
        (node,) = [n for n in model.graph.node if n.op_type == schema.OP_NAME]
        out[aot] = SimpleNamespace(node=node, inputs=_input_types(model, node))
    return out


def _input_types(model, node):
    """[(DataType, shape)] of the node's inputs, a dynamic extent by its name (``builder`` takes that)."""
    values = {v.name: v for v in list(model.graph.input) + list(model.graph.value_info)}
    dtypes = {1: native.DataType.FLOAT, 10: native.DataType.HALF}
    found = []
    for name in node.input:
        t = values[name].type.tensor_type
        found.append((dtypes[t.elem_type], tuple(d.dim_param or d.dim_value for d in t.shape.dim)))
    return found


def _node(mode, aot=True):
    return onnx_node.make_node(schema.INPUTS, schema.OUTPUTS, mode, aot=aot)


def _values(exprs, env):
    return tuple(exprs[i]._value(env) for i in range(len(exprs)))


@functools.cache
def _compiled(mode, tactic):
    from test_splat_trt import compiled

    return compiled(mode, tactic)


@pytest.fixture
def sm90(trt_env, monkeypatch):
    """The plugin's AOT compile for sm_90 and PTX 8.4 (no GPU here), cached across tests."""
    monkeypatch.setattr(trt_env.module, "compile_aot", _compiled)
    return trt_env


# --- the stand-in keeps TensorRT's contracts -------------------------------------------------------------------


def test_standin_contracts():
    exprs, op = native.IExprBuilder(), native.DimensionOperation
    seven, two, t = exprs.constant(7), exprs.constant(2), exprs._symbol("T")
    folded = {o: exprs.operation(o, seven, two).get_constant_value() for o in (op.CEIL_DIV, op.FLOOR_DIV, op.SUB)}
    assert folded == {op.CEIL_DIV: 4, op.FLOOR_DIV: 3, op.SUB: 5}
    assert exprs.operation(op.FLOOR_DIV, exprs.constant(-7), two).get_constant_value() == -4
    assert exprs.operation(op.LESS, two, seven).get_constant_value() == 1
    symbolic = exprs.operation(op.PROD, t, exprs.operation(op.SUM, seven, two))
    assert not symbolic.is_constant() and symbolic.get_constant_value() == -(2**63)
    assert symbolic._value({"T": 3}) == 27
    with pytest.raises(TypeError):
        exprs.operation(op.SUM, t, 1)  # pybind11 converts only IDimensionExpr
    dims = native.DimsExprs(2)
    with pytest.raises(TypeError):
        dims[0] = 3
    with pytest.raises(IndexError):
        dims[2] = t
    field = native.PluginField("mode", np.frombuffer(b"sum\0", np.int8), native.PluginFieldType.CHAR)
    assert field.size == 4 and field.data.dtype == np.int8 and field.data.tobytes() == b"sum\0"
    with pytest.raises(AttributeError):
        _ = native.PluginField("h", np.zeros(2, np.float16), native.PluginFieldType.FLOAT16).data
    with pytest.raises(TypeError):
        native.KernelLaunchParams().grid_x = 4  # setGridX(ISymExpr*)
    registry, creator = native.IPluginRegistry((11, 4)), SimpleNamespace(name="p", plugin_version="1")
    assert registry.register_creator(creator, "ns") and not registry.register_creator(creator, "ns")
    assert registry.get_creator("p", "1", "ns") is creator and registry.get_creator("p", "1") is None


# --- the plugin layers CI gives every run ----------------------------------------------------------------------

FAKE_PIP = """#!/usr/bin/env bash
# records its arguments; "installs" a bindings wheel of the pinned version into --target
echo "$*" >> "$PIP_LOG"
while [ $# -gt 0 ]; do
    case "$1" in --target) target="$2"; shift;; tensorrt-cu12-bindings==*) version="${1#*==}";; esac
    shift
done
mkdir -p "$target/tensorrt_bindings/plugin"
echo "__version__ = \\"$version\\"" > "$target/tensorrt_bindings/__init__.py"
touch "$target/tensorrt_bindings/plugin/__init__.py"
"""


def test_ci_unpacks_both_tensorrt_10_layers(tmp_path, monkeypatch):
    """``.ci/plugin-layers`` unpacks 10.9 and 10.16 without dependencies and prints the folders for the variable,
    which then yields both layers; a listed folder without a wheel is an error, not a skip."""
    root = Path(__file__).resolve().parents[1]
    (tmp_path / "bin").mkdir()
    pip = tmp_path / "bin" / "pip"
    pip.write_text(FAKE_PIP)
    pip.chmod(0o755)
    env = dict(os.environ, PATH=f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}", PIP_LOG=str(tmp_path / "log"))
    run = subprocess.run(
        [str(root / ".ci" / "plugin-layers"), str(tmp_path / "layers")], env=env, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr
    versions = ("10.9.0.34", "10.16.1.11")
    folders = [str(tmp_path / "layers" / v) for v in versions]
    assert run.stdout.strip() == ":".join(folders)
    calls = (tmp_path / "log").read_text().splitlines()
    assert calls == [f"install -q --no-deps --target {f} {WHEEL}=={v}" for f, v in zip(folders, versions)]
    monkeypatch.setenv(trt_standin.ENV, run.stdout.strip())
    found = {layer.version for layer in trt_standin.plugin_layers()}
    assert set(versions) <= found
    monkeypatch.setenv(trt_standin.ENV, os.pathsep.join(folders + [str(tmp_path / "empty")]))
    with pytest.raises(FileNotFoundError, match="lists .*empty, which holds no tensorrt_bindings wheel"):
        trt_standin.plugin_layers()


# --- registration --------------------------------------------------------------------------------------------


def test_registration_passes_tensorrts_checks(trt_env):
    from tensorrt.plugin import _lib

    pdef = _lib.QDP_REGISTRY[schema.PLUGIN_ID]
    assert tuple(pdef.input_tensor_names) == schema.INPUTS and pdef.input_attrs == {schema.MODE_ATTR: str}
    assert pdef.num_outputs == len(schema.OUTPUTS) == 1
    assert pdef.aot_impl_attr_names == pdef.impl_attr_names == [schema.MODE_ATTR] and pdef.expects_tactic
    assert pdef.autotune_attr_names == [] and pdef.register_func is trt_env.module.FUNCTIONS["register"]
    assert trt_env.trtp.op.gimm_trt.splat is pdef
    creator = trt_env.creator
    assert (creator.name, creator.plugin_version, creator.plugin_namespace) == (
        schema.OP_NAME,
        str(schema.VERSION),
        schema.NAMESPACE,
    )
    assert [(f.name, f.type) for f in creator.field_names] == [(schema.MODE_ATTR, native.PluginFieldType.CHAR)]
    # every attribute of our node that the plugin does not declare is one the parser consumes itself
    node_attrs = {a.name for a in _node(schema.DEFAULT_MODE).attribute}
    assert node_attrs - set(onnx_node.TRT_ONLY_ATTRS) == {f.name for f in creator.field_names}


def test_reimport_does_not_register_twice(trt_env):
    with pytest.raises(ValueError, match="already has a defintion"):  # TensorRT's spelling
        trt_env.trtp.register(schema.PLUGIN_ID)(trt_env.module.FUNCTIONS["register"])
    before = trt_env.registry.all_creators
    again = importlib.reload(trt_env.module)
    assert again.FUNCTIONS == {} and trt_env.registry.all_creators == before


# --- from the exported node to a plugin ----------------------------------------------------------------------


def test_parser_delivers_the_mode_nul_terminated(trt_env, exported):
    (field,) = parser.plugin_fields(trt_env.creator, exported[True].node)
    assert (field.name, field.type, field.size) == ("mode", native.PluginFieldType.CHAR, len(schema.DEFAULT_MODE) + 1)
    assert field.data.tobytes() == schema.DEFAULT_MODE.encode() + b"\0"


@pytest.mark.parametrize("aot", [True, False], ids=["aot", "jit"])
def test_exported_node_builds(sm90, exported, aot):
    """The exported node through the parser and an engine build (T dynamic, the export's C, H, W)."""
    node, inputs = exported[aot].node, exported[aot].inputs
    assert [dims[1:] for _, dims in inputs] == [(C, H, W), (2, H, W), (1, H, W)]
    steps = inputs[0][1][0]
    assert isinstance(steps, str) and all(dims[0] == steps for _, dims in inputs)
    plugin = parser.import_node(sm90.registry, node)
    assert builder.is_aot(plugin) == aot
    result = builder.build(plugin, inputs, {steps: 3})
    assert result.output_types == [native.DataType.FLOAT]
    (shape,) = result.output_shapes
    assert not shape[0].is_constant() and [shape[i].get_constant_value() for i in (1, 2, 3)] == [C + 1, H, W]
    for t in (1, 3, 8):
        assert _values(shape, {steps: t}) == (t, C + 1, H, W)
    fp32 = (native.DataType.FLOAT,) * 4
    assert result.tactics == {fp32: [1, 2, 3]}
    assert sorted(t for _, t in result.kernels) == ([1, 2, 3] if aot else [])


@pytest.mark.parametrize("request_name", ["PREFER_JIT", "STRICT_JIT"])
def test_engine_load_recreates_the_jit_plugin(trt_env, exported, request_name):
    """Loading an engine recreates a JIT plugin from its serialised fields, with a creation request."""
    plugin = parser.import_node(trt_env.registry, exported[False].node)
    request = native.QuickPluginCreationRequest[request_name]
    runtime = builder.runtime_plugin(plugin, trt_env.creator, request)
    assert not builder.is_aot(runtime)
    fields = builder.capability(runtime, native.PluginCapabilityType.RUNTIME).get_fields_to_serialize()
    assert [(f.name, f.data.tobytes()) for f in fields] == [(schema.MODE_ATTR, schema.DEFAULT_MODE.encode() + b"\0")]


def test_engine_load_without_a_preference_is_refused(trt_env, exported):
    """Our op has both implementations, so ``tensorrt.plugin`` refuses a request without a preference: a TensorRT
    that passed UNKNOWN when loading an engine could not load our JIT plugin."""
    plugin = parser.import_node(trt_env.registry, exported[False].node)
    with pytest.raises(ValueError, match="has both AOT and JIT implementations"):
        builder.runtime_plugin(plugin, trt_env.creator, native.QuickPluginCreationRequest.UNKNOWN)


def test_node_domain_is_a_namespace_from_tensorrt_10_10():
    creator = SimpleNamespace(name=schema.OP_NAME, plugin_version="1", KIND=native.IPluginCreatorV3Quick.KIND)
    bare = _node("sum")
    bare.attribute.remove(next(a for a in bare.attribute if a.name == "plugin_namespace"))
    for release in ((10, 9), (10, 10), (11, 4)):
        registry = native.IPluginRegistry(release)
        registry.register_creator(creator, schema.NAMESPACE)
        assert parser.find_creator(registry, _node("sum")) == (creator, schema.NAMESPACE)  # what we export
        if release < (10, 10):
            with pytest.raises(LookupError, match="Plugin not found"):
                parser.find_creator(registry, bare)
        else:
            assert parser.find_creator(registry, bare) == (creator, bare.domain)


def test_our_node_is_found_by_every_release(trt_env, exported):
    for aot in (True, False):
        assert parser.find_creator(trt_env.registry, exported[aot].node) == (trt_env.creator, schema.NAMESPACE)


def test_parser_passes_strings_and_tensor_attributes():
    import onnx
    from onnx import helper, numpy_helper

    names = ("names", "weights", "halves", "wide", "graph")
    creator = SimpleNamespace(field_names=native.PluginFieldCollection(native.PluginField(n) for n in names[:3]))
    node = helper.make_node(
        "op",
        [],
        [],
        names=["ab", "c"],
        weights=numpy_helper.from_array(np.array([[1.5, -2.0]], np.float32)),
        halves=numpy_helper.from_array(np.array([1, 2, 3], np.float16)),
    )
    fields = {f.name: f for f in parser.plugin_fields(creator, node)}
    assert (fields["names"].type, fields["names"].size) == (native.PluginFieldType.CHAR, 5)
    assert fields["names"].data.tobytes() == b"ab\0c\0"
    assert (fields["weights"].type, fields["weights"].data.tolist()) == (native.PluginFieldType.FLOAT32, [1.5, -2.0])
    assert (fields["halves"].type, fields["halves"].size) == (native.PluginFieldType.FLOAT16, 3)
    assert fields["halves"]._bytes == np.array([1, 2, 3], np.float16).tobytes()
    # the parser converts the weights first: DOUBLE to FLOAT, UINT8 to INT32; INT16 it cannot convert
    creator.field_names = native.PluginFieldCollection([native.PluginField("wide")])
    for values, field_type, stored in (
        (np.array([0.1, 2.0]), native.PluginFieldType.FLOAT32, np.float32),
        (np.array([3, 255], np.uint8), native.PluginFieldType.INT32, np.int32),
    ):
        (field,) = parser.plugin_fields(creator, helper.make_node("op", [], [], wide=numpy_helper.from_array(values)))
        assert field.type == field_type and field.data.dtype == stored
        assert field.data.tolist() == values.astype(stored).tolist()
    short = helper.make_node("op", [], [], wide=numpy_helper.from_array(np.array([1], np.int16)))
    with pytest.raises(RuntimeError, match="Unable to convert ONNX weights"):
        parser.plugin_fields(creator, short)
    creator.field_names = native.PluginFieldCollection(native.PluginField(n) for n in names[3:])
    wide = helper.make_node("op", [], [], wide=numpy_helper.from_array(np.array([1], np.int64)))
    with pytest.raises(TypeError, match="Tensor type: INT64 is unsupported in plugin fields"):
        parser.plugin_fields(creator, wide)
    graph = helper.make_node("op", [], [], graph=helper.make_graph([], "g", [], []))
    assert graph.attribute[0].type == onnx.AttributeProto.GRAPH
    with pytest.raises(TypeError, match="Attributes of type: GRAPH are unsupported as plugin fields"):
        parser.plugin_fields(creator, graph)


# --- the shape function --------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", schema.MODES)
@pytest.mark.parametrize("dims", [(4, 16, 32, 48), ("T", 16, 32, 48), ("T", "C", "H", "W")], ids=str)
def test_shape_function(trt_env, mode, dims):
    plugin = parser.import_node(trt_env.registry, _node(mode))
    inputs = [
        (native.DataType.HALF, dims),
        (native.DataType.FLOAT, (dims[0], 2) + dims[2:]),
        (native.DataType.FLOAT, (dims[0], 1) + dims[2:]),
    ]
    types, _, (shape,) = builder.output_shapes(plugin, inputs, native.IExprBuilder())
    assert types == [native.DataType.FLOAT] and len(shape) == 4
    for env in ({"T": 1, "C": 16, "H": 32, "W": 48}, {"T": 7, "C": 3, "H": 5, "W": 9}):
        c = env["C"] if dims[1] == "C" else dims[1]
        want = tuple(env[d] if isinstance(d, str) else d for d in dims)
        assert _values(shape, env) == (want[0], schema.out_channels(c, mode)) + want[2:]
    assert [shape[i].is_constant() for i in range(4)] == [not isinstance(d, str) for d in dims]


# --- autotune: types, formats, tactics -----------------------------------------------------------------------


def test_autotune_combinations(sm90):
    """One combination, all FP32: our graphs cast fp16 to fp32 in front of the node."""
    plugin = parser.import_node(sm90.registry, _node("sum"))
    f32, f16 = native.DataType.FLOAT, native.DataType.HALF
    inputs = [(f32, ("T", C, H, W)), (f32, ("T", 2, H, W)), (f32, ("T", 1, H, W))]
    result = builder.build(plugin, inputs, {"T": 2})
    assert [tuple(d.type for d in combo) for combo in result.combinations] == [(f32,) * 4]
    assert all(d.format == native.TensorFormat.LINEAR for c in result.combinations for d in c)
    assert result.tactics == {(f32,) * 4: [1, 2, 3]}
    plugin = parser.import_node(sm90.registry, _node("sum"))
    fp16_x = builder.build(plugin, [(f16, inputs[0][1])] + inputs[1:], {"T": 2})
    assert fp16_x.tactics == {}  # strongly typed: no combination for an fp16 tensor, TensorRT has nothing to build


# --- the AOT kernel TensorRT receives ------------------------------------------------------------------------


@pytest.mark.parametrize("mode", schema.MODES)
def test_aot_kernels(sm90, mode):
    from test_splat_trt import PTX_TYPES, entry_params

    from gimm_trt.plugins.triton_kernel import AOT_TACTICS

    plugin = parser.import_node(sm90.registry, _node(mode, aot=True))
    f32 = native.DataType.FLOAT
    inputs = [(f32, ("T", C, H, W)), (f32, ("T", 2, H, W)), (f32, ("T", 1, H, W))]
    result = builder.build(plugin, inputs, {"T": 5})
    co = schema.out_channels(C, mode)
    for tactic in (1, 2, 3):
        kernel = result.kernels[((f32,) * 4, tactic)]
        want = _compiled(mode, tactic)
        assert kernel.name == want.name == entry_params(kernel.code.decode())[0] == "splat_kernel"
        assert kernel.code.decode() == want.ptx
        assert [p[1] for p in entry_params(want.ptx)[1]] == PTX_TYPES
        assert "cvt.f32.f16" not in want.ptx  # fp32 loads only
        launch = kernel.launch
        for t in (1, 5, 8):
            assert launch["grid_x"]._value({"T": t}) == t * co
        assert not launch["grid_x"].is_constant()
        cfg = AOT_TACTICS[tactic]
        constants = {
            k: launch[k].get_constant_value()
            for k in ("grid_y", "grid_z", "block_x", "block_y", "block_z", "shared_mem")
        }
        assert constants == {
            "grid_y": 1,
            "grid_z": 1,
            "block_x": cfg["num_warps"] * 32,
            "block_y": 1,
            "block_z": 1,
            "shared_mem": want.shared,
        }
        assert [(dtype, expr._value({"T": 5})) for dtype, expr in kernel.extra] == [
            (native.PluginArgDataType.INT32, v) for v in (C, H, W)
        ]


def test_aot_kernel_name_may_be_bytes(sm90, monkeypatch):
    """TensorRT takes the kernel name as str or bytes (its own sample passes ``metadata.name.encode()``)."""

    def named_in_bytes(*args):
        kernel = _compiled(*args)
        return dataclasses.replace(kernel, name=kernel.name.encode())

    monkeypatch.setattr(sm90.module, "compile_aot", named_in_bytes)
    plugin = parser.import_node(sm90.registry, _node("sum", aot=True))
    f32 = native.DataType.FLOAT
    result = builder.build(plugin, [(f32, ("T", C, H, W)), (f32, ("T", 2, H, W)), (f32, ("T", 1, H, W))], {"T": 2})
    assert sorted((k.name, t) for (_, t), k in result.kernels.items()) == [("splat_kernel", t) for t in (1, 2, 3)]


@pytest.mark.parametrize("other", [native.DataType.INT8, native.DataType.HALF], ids=["int8", "fp16"])
def test_aot_impl_rejects_other_types(sm90, other):
    plugin = parser.import_node(sm90.registry, _node("sum"))
    i8, f32 = other, native.DataType.FLOAT
    plugin.get_output_data_types([i8, f32, f32], [4, 4, 4])
    exprs = native.IExprBuilder()
    dims = [native.DimsExprs([exprs.constant(v) for v in s]) for s in ((1, C, H, W), (1, 2, H, W), (1, 1, H, W))]
    plugin.get_output_shapes(dims, [], exprs)
    descs = [
        builder._io_desc(t, s, s)
        for t, s in ((i8, (1, C, H, W)), (f32, (1, 2, H, W)), (f32, (1, 1, H, W)), (f32, (1, C, H, W)))
    ]
    plugin.set_tactic(1)
    with pytest.raises(TypeError, match="splat plugin inputs are FP32"):
        plugin.get_launch_params(dims, descs, 3, native.KernelLaunchParams(), native.ISymExprs(), exprs)


# --- the JIT implementation (Triton interpreter, subprocess) -------------------------------------------------


@contextlib.contextmanager
def _host_views(tensors, stream):
    """Host memory plays device memory: torch views made from each ``trtp.Tensor``'s __cuda_array_interface__."""
    views = []
    for t in tensors:
        cai = t.__cuda_array_interface__
        assert cai["version"] == 3 and cai["stream"] == stream
        ptr, _ = cai["data"]
        dtype = np.dtype(cai["typestr"])
        span = sum((n - 1) * s for n, s in zip(cai["shape"], cai["strides"])) + dtype.itemsize
        flat = np.frombuffer((ctypes.c_byte * span).from_address(ptr), dtype=np.uint8).view(dtype)
        views.append(torch.from_numpy(np.lib.stride_tricks.as_strided(flat, cai["shape"], cai["strides"])))
    yield views


def _jit_cases():
    g = torch.Generator().manual_seed(7)
    x = torch.randn(2, 3, 7, 9, generator=g)
    flow = torch.randn(2, 2, 7, 9, generator=g) * 2.5
    flow[0, :, 0, 0] = float("nan")
    metric = torch.rand(2, 1, 7, 9, generator=g) * 2 - 1
    return {"x32": (x, flow, metric)}


def _worker(layer_path: str, version: str, node_path: str, out_path: str) -> None:
    """Under TRITON_INTERPRET=1: parse, build and deserialise the JIT plugin, then enqueue every case."""
    import onnx

    node = onnx.NodeProto.FromString(Path(node_path).read_bytes())
    results = {}
    with trt_standin.installed(trt_standin.Layer(version, Path(layer_path)), dependents=(MODULE,)) as (trt, _):
        module = importlib.import_module(MODULE)
        module._on_trt_stream = _host_views
        registry = trt.get_plugin_registry()
        creator = registry.get_creator(schema.OP_NAME, str(schema.VERSION), schema.NAMESPACE)
        for mode in schema.MODES:
            del node.attribute[:]
            node.attribute.extend(_node(mode, aot=False).attribute)
            for name, (x, flow, metric) in _jit_cases().items():
                dtypes = [
                    {torch.float32: native.DataType.FLOAT, torch.float16: native.DataType.HALF}[t.dtype]
                    for t in (x, flow, metric)
                ]
                plugin = parser.import_node(registry, node)
                built = builder.build(plugin, [(d, tuple(t.shape)) for d, t in zip(dtypes, (x, flow, metric))], {})
                # what the engine file holds, loaded again
                runtime = builder.runtime_plugin(plugin, creator, native.QuickPluginCreationRequest.STRICT_JIT)
                out = torch.full((2, schema.out_channels(3, mode), 7, 9), float("nan"))
                builder.enqueue(
                    runtime,
                    built.tactics[tuple(dtypes) + (native.DataType.FLOAT,)][-1],
                    [x, flow, metric],
                    [out],
                    stream=0x5EED,
                )
                results[f"{mode}/{name}"] = out
    torch.save(results, out_path)


@pytest.fixture(scope="module")
def jit_runs(tmp_path_factory, exported):
    pytest.importorskip("triton")
    layers = {p.values[0] for p in _layer_params() if p.values[0] is not None}
    folder = tmp_path_factory.mktemp("jit")
    node_path = folder / "node.pb"
    node_path.write_bytes(exported[False].node.SerializeToString())
    env = dict(os.environ, TRITON_INTERPRET="1")
    root = Path(__file__).resolve().parents[1]
    env["PYTHONPATH"] = os.pathsep.join([str(root), str(root / "tests")] + [p for p in [env.get("PYTHONPATH")] if p])
    runs = {}
    for layer in layers:
        out = folder / f"{layer.version}.pt"
        run = subprocess.run(
            [sys.executable, __file__, str(layer.path), layer.version, str(node_path), str(out)],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        runs[layer.version] = (run, out)
    return runs


@pytest.mark.parametrize("mode", schema.MODES)
def test_jit_impl_matches_reference(layer, jit_runs, mode):
    run, path = jit_runs[layer.version]
    assert run.returncode == 0, run.stderr[-4000:]
    results = torch.load(path)
    for name, (x, flow, metric) in _jit_cases().items():
        got = results[f"{mode}/{name}"]
        want = plugins.accumulate(x, flow, metric, mode, impl="torch")
        assert got.dtype == torch.float32 and torch.isfinite(got).all(), name
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6, msg=name)


if __name__ == "__main__":
    _worker(*sys.argv[1:5])
