"""The TensorRT plugin without TensorRT: its registration against the ONNX node (through a stand-in
``tensorrt.plugin`` that records what is registered), the AOT kernel Triton compiles for it (PTX for sm_90
needs no GPU), and, only where TensorRT and a GPU exist, an engine built from an exported graph."""
import functools
import importlib
import inspect
import re
import subprocess
import sys
import types

import pytest
import torch

from gimm_trt.plugins import onnx_node, schema

triton = pytest.importorskip("triton")
from gimm_trt.plugins import triton_kernel  # noqa: E402

MODULE = "gimm_trt.plugins.trt_plugin"
PTX_TYPES = [".u64", ".u64", ".u64", ".u32", ".u32", ".u32", ".u64"]  # 3 input pointers, C H W, output


def _target():
    from triton.backends.compiler import GPUTarget

    return GPUTarget("cuda", 90, 32)


@functools.lru_cache(maxsize=None)
def compiled(x_dtype="fp16", flow_dtype="fp32", mode="linear-zeroeps", tactic=1):
    try:
        return triton_kernel.compile_aot(x_dtype, flow_dtype, flow_dtype, mode, tactic, target=_target(),
                                         ptx_version=84)
    except Exception as err:  # no LLVM/ptxas for the NVIDIA backend in this Triton build
        pytest.skip(f"Triton cannot compile for sm_90 here: {err!r}")


def entry_params(ptx):
    body = re.search(r"\.entry\s+([\w$]+)\s*\((.*?)\)", ptx, re.S)
    return body.group(1), [p.split() for p in body.group(2).split(",") if p.strip()]


# --- a stand-in for tensorrt / tensorrt.plugin ----------------------------------------------------------------

def make_stub(version="10.9.0"):
    trt = types.ModuleType("tensorrt")
    trt.__version__ = version
    trt.float32, trt.float16 = "FLOAT", "HALF"
    trtp = types.ModuleType("tensorrt.plugin")
    trt.plugin = trtp
    registry = {}

    class Namespace(types.SimpleNamespace):
        pass

    trtp.op = Namespace()

    class TensorDesc:
        def __init__(self, shape_expr=None, dtype=None):
            self.shape_expr, self.dtype = shape_expr, dtype

    class AutoTuneCombination:
        def __init__(self, io_types=None, layouts=None, tactics=None):
            self.io_types, self.layouts, self.tactics = io_types, layouts, tactics

    class KernelLaunchParams:
        def __init__(self):
            self.grid_x = self.grid_y = self.grid_z = 1
            self.block_x = self.block_y = self.block_z = 1
            self.shared_mem = 0

    class SymInt32:
        def __init__(self, value):
            self.value = value

    class SymIntExprs(list):
        @classmethod
        def from_tuple(cls, items):
            return cls(items)

    def register(plugin_id, lazy_register=False):
        def deco(fn):
            ns, name = plugin_id.split("::")
            space = trtp.op.__dict__.setdefault(ns, Namespace())
            if hasattr(space, name):
                raise ValueError(f"{plugin_id} registered twice")
            setattr(space, name, fn)
            registry[("register", plugin_id)] = fn
            return fn
        return deco

    def later(role):
        def decorator(plugin_id):
            def deco(fn):
                assert ("register", plugin_id) in registry, f"{role} before register"
                registry[(role, plugin_id)] = fn
                return fn
            return deco
        return decorator

    trtp.register, trtp.autotune, trtp.aot_impl, trtp.impl = register, later("autotune"), later("aot_impl"), later("impl")
    trtp.TensorDesc, trtp.Tensor = TensorDesc, type("Tensor", (), {})
    trtp.AutoTuneCombination, trtp.KernelLaunchParams = AutoTuneCombination, KernelLaunchParams
    trtp.SymInt32, trtp.SymIntExprs = SymInt32, SymIntExprs
    trtp.from_shape_expr = lambda shape, dtype: TensorDesc(tuple(shape), dtype)
    return trt, trtp, registry


@pytest.fixture
def stub(monkeypatch):
    trt, trtp, registry = make_stub()
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    monkeypatch.setitem(sys.modules, "tensorrt.plugin", trtp)
    monkeypatch.delitem(sys.modules, MODULE, raising=False)
    module = importlib.import_module(MODULE)
    yield module, trtp, registry
    sys.modules.pop(MODULE, None)  # never leave a module bound to the stand-in behind


def _params(fn):
    return tuple(inspect.signature(fn).parameters)


def test_registration_agrees_with_the_onnx_node(stub):
    module, trtp, registry = stub
    roles = {role: fn for (role, pid), fn in registry.items() if pid == schema.PLUGIN_ID}
    assert set(roles) == {"register", "autotune", "aot_impl", "impl"}
    attrs = (schema.MODE_ATTR,)
    assert _params(roles["register"]) == schema.INPUTS + attrs
    assert _params(roles["autotune"]) == schema.INPUTS + ("outputs",)
    assert _params(roles["aot_impl"]) == schema.INPUTS + attrs + ("outputs", "tactic")
    assert _params(roles["impl"]) == schema.INPUTS + attrs + ("outputs", "stream", "tactic")
    annotations = inspect.signature(roles["register"]).parameters
    assert [annotations[n].annotation for n in schema.INPUTS] == [trtp.TensorDesc] * 3
    assert annotations[schema.MODE_ATTR].annotation is str

    node = onnx_node.make_node(schema.INPUTS, schema.OUTPUTS, "sum")
    node_attrs = {a.name: a for a in node.attribute}
    namespace, name = schema.PLUGIN_ID.split("::")
    assert (node.op_type, node.domain) == (name, namespace)
    assert node_attrs["plugin_namespace"].s.decode() == namespace
    assert node_attrs["plugin_version"].s.decode() == str(schema.VERSION)
    assert node_attrs["aot"].i == 1
    # every attribute of the node the plugin does not consume is one TensorRT's parser consumes itself
    assert set(node_attrs) - set(onnx_node.TRT_ONLY_ATTRS) == set(attrs)
    assert tuple(node.input) == schema.INPUTS and len(node.output) == len(schema.OUTPUTS) == 1
    assert module.FUNCTIONS["register"] is roles["register"]


@pytest.mark.parametrize("mode", schema.MODES)
def test_shape_function(stub, mode):
    module, trtp, _ = stub
    x = trtp.TensorDesc((4, 16, 32, 48), "HALF")
    out = module.FUNCTIONS["register"](x, trtp.TensorDesc((4, 2, 32, 48), "FLOAT"),
                                       trtp.TensorDesc((4, 1, 32, 48), "FLOAT"), mode)
    assert out.shape_expr == (4, schema.out_channels(16, mode), 32, 48) and out.dtype == "FLOAT"


def test_autotune(stub):
    module, trtp, _ = stub
    (combo,) = module.FUNCTIONS["autotune"](*(trtp.TensorDesc() for _ in schema.INPUTS), ())
    types_ = [t.strip() for t in combo.io_types.split(",")]
    assert types_ == ["FP32*FP16"] * len(schema.INPUTS) + ["FP32"] and combo.layouts == "LINEAR"
    assert combo.tactics == [1, 2, 3] and all(t > 0 for t in combo.tactics)  # TensorRT wants positive ids


def test_aot_impl(stub, monkeypatch):
    module, trtp, _ = stub
    compiled()  # skips here if Triton cannot compile for the target
    monkeypatch.setattr(module, "compile_aot", functools.partial(module.compile_aot, target=_target(),
                                                                  ptx_version=84))
    n, c, h, w = 4, 16, 32, 48
    descs = (trtp.TensorDesc((n, c, h, w), "HALF"), trtp.TensorDesc((n, 2, h, w), "FLOAT"),
             trtp.TensorDesc((n, 1, h, w), "FLOAT"))
    name, ptx, params, extra = module.FUNCTIONS["aot_impl"](*descs, "linear-zeroeps", (), 2)
    entry, ptx_params = entry_params(ptx)
    assert name == entry == "splat_kernel"
    assert [p[1] for p in ptx_params] == PTX_TYPES
    assert re.search(r"^\.version 8\.4$", ptx, re.M) and re.search(r"^\.target sm_90a?$", ptx, re.M)
    assert "cvt.f32.f16" in ptx  # the fp16 input is widened in the kernel
    assert params.grid_x == n * (c + 1) and (params.grid_y, params.grid_z) == (1, 1)
    assert params.block_x == 16 * 32 and params.shared_mem == 0  # tactic 2
    assert re.search(r"\.maxntid 512, 1, 1|\.reqntid 512", ptx)  # the PTX itself is built for that block
    assert [e.value for e in extra] == [c, h, w]
    with pytest.raises(TypeError, match="FP32 or FP16"):
        module.FUNCTIONS["aot_impl"](trtp.TensorDesc((n, c, h, w), "INT8"), *descs[1:], "sum", (), 1)


def test_registered_once(stub):
    module, _, registry = stub
    before = dict(registry)
    again = importlib.reload(module)  # the stand-in raises on a second registration, as tensorrt.plugin does
    assert registry == before and again.FUNCTIONS == {}


@pytest.mark.parametrize("version", [None, "10.8.1"])
def test_import_needs_tensorrt_10_9(monkeypatch, version):
    if version is None:
        monkeypatch.setitem(sys.modules, "tensorrt", None)  # import tensorrt -> ImportError
    else:
        trt, trtp, _ = make_stub(version)
        monkeypatch.setitem(sys.modules, "tensorrt", trt)
        monkeypatch.setitem(sys.modules, "tensorrt.plugin", trtp)
    monkeypatch.delitem(sys.modules, MODULE, raising=False)
    with pytest.raises(ImportError, match=r"TensorRT >= 10\.9"):
        importlib.import_module(MODULE)
    sys.modules.pop(MODULE, None)


# --- the compiled kernel --------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtypes,mode,tactic", [(("fp16", "fp32"), "linear-zeroeps", 1), (("fp32", "fp32"), "sum", 3)])
def test_aot_kernel_signature(dtypes, mode, tactic):
    kernel = compiled(*dtypes, mode, tactic)
    name, params = entry_params(kernel.ptx)
    assert name == kernel.name and [p[1] for p in params] == PTX_TYPES
    assert len(params) == len(triton_kernel.AOT_PARAMS) == 7
    # the kernel reads what TensorRT passes (the metric only when weighting), in the AOT_PARAMS order
    for role, param in zip(triton_kernel.AOT_PARAMS, params):
        read = re.search(rf"ld\.param\.\w+\s+%\w+, \[{re.escape(param[-1])}\]", kernel.ptx) is not None
        assert read == (role != "metric" or mode != "sum"), (role, param)
    assert triton_kernel.AOT_PARAMS == schema.INPUTS + ("C", "H", "W") + schema.OUTPUTS
    cfg = triton_kernel.AOT_TACTICS[tactic]
    assert (kernel.num_warps, kernel.block, kernel.shared) == (cfg["num_warps"], cfg["BLOCK"], 0)
    assert triton_kernel.aot_launch_dims(3, 16, 5, 7, mode) == (3 * schema.out_channels(16, mode), (16, 5, 7))


def test_stripped_ptx_assembles():
    """ptxas accepts the PTX with the hidden Triton parameters removed (the driver JIT does the same job)."""
    from triton.backends.nvidia.compiler import get_ptxas

    kernel = compiled()
    try:
        ptxas = get_ptxas(90).path
    except Exception as err:
        pytest.skip(f"no ptxas: {err!r}")
    run = subprocess.run([ptxas, "-arch=sm_90a", "-", "-o", "/dev/null"], input=kernel.ptx, text=True,
                         capture_output=True, timeout=120)
    assert run.returncode == 0, run.stderr


def test_strip_hidden_params_refuses_used_ones():
    ptx = ".visible .entry k(\n .param .u64 k_param_0,\n .param .u64 k_param_1\n)\n{\n ld.param.b64 %rd1, [k_param_1];\n}"
    with pytest.raises(ValueError, match="k_param_1"):
        triton_kernel.strip_hidden_params(ptx, keep=1)
    unused = ptx.replace("k_param_1]", "k_param_0]")
    assert entry_params(triton_kernel.strip_hidden_params(unused, keep=1))[1] == [[".param", ".u64", "k_param_0"]]


# --- TensorRT itself (GPU machines with TensorRT >= 10.9 only) ------------------------------------------------

@pytest.mark.parametrize("aot", [True, False], ids=["aot", "jit"])
def test_engine(aot, tmp_path):
    pytest.importorskip("tensorrt")
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    importlib.import_module(MODULE)
    from polygraphy.backend.trt import CreateConfig, EngineFromNetwork, NetworkFromOnnxBytes, TrtRunner

    from gimm_trt import plugins

    class Splat(torch.nn.Module):
        def forward(self, x, flow, metric):
            return plugins.splat(x, flow, metric)

    g = torch.Generator().manual_seed(0)
    args = (torch.randn(2, 16, 24, 40, generator=g), torch.randn(2, 2, 24, 40, generator=g) * 4,
            torch.rand(2, 1, 24, 40, generator=g))
    with onnx_node.export_splat_mode("plugin", aot=aot) as table:
        model = torch.onnx.export(Splat().eval(), args, dynamo=True, custom_translation_table=table,
                                  opset_version=18).model_proto
    engine = EngineFromNetwork(NetworkFromOnnxBytes(model.SerializeToString(), strongly_typed=True),
                               CreateConfig(tf32=False))
    with TrtRunner(engine) as runner:
        out = runner.infer(dict(zip(schema.INPUTS, (a.numpy() for a in args))))
    got = torch.as_tensor(next(iter(out.values())))
    want = plugins.splat(*args, impl="torch")
    close = torch.isclose(got.cpu(), want, rtol=1e-4, atol=1e-4).float().mean().item()
    assert close > 0.999, f"only {close:.4%} of the outputs match the reference"
