"""The TensorRT plugin's pieces that need no TensorRT: importing it without a usable TensorRT, the AOT kernel
Triton compiles for it (PTX for sm_90 needs no GPU) and its PTX version, and, only where TensorRT and a GPU
exist, an engine built from an exported graph. TensorRT's own plugin layer driving the plugin is in
``test_trt_plugin_layer.py``."""

import functools
import importlib
import re
import subprocess
import sys
import types

import pytest
import torch
from fakes import fake_driver
from trt_standin import native

from gimm_trt.plugins import onnx_node, schema

triton = pytest.importorskip("triton")
from gimm_trt.plugins import triton_kernel  # noqa: E402

MODULE = "gimm_trt.plugins.trt_plugin"
PTX_TYPES = [".u64", ".u64", ".u64", ".u32", ".u32", ".u32", ".u64"]  # 3 input pointers, C H W, output


def _target():
    from triton.backends.compiler import GPUTarget

    return GPUTarget("cuda", 90, 32)


@functools.cache
def compiled(mode="linear-zeroeps", tactic=1):
    try:
        return triton_kernel.compile_aot(mode, tactic, target=_target(), ptx_version=84)
    except Exception as err:  # no LLVM/ptxas for the NVIDIA backend in this Triton build
        pytest.skip(f"Triton cannot compile for sm_90 here: {err!r}")


def entry_params(ptx):
    body = re.search(r"\.entry\s+([\w$]+)\s*\((.*?)\)", ptx, re.S)
    return body.group(1), [p.split() for p in body.group(2).split(",") if p.strip()]


# --- importing the plugin module -------------------------------------------------------------------------------


def _namespace_only(tmp_path, monkeypatch):
    """``import tensorrt`` finds an empty namespace package, as with ``tensorrt-stubs`` and no TensorRT."""
    (tmp_path / "tensorrt").mkdir()
    (tmp_path / "tensorrt" / "__init__.pyi").write_text("__version__: str\n")
    monkeypatch.setattr(sys, "path", [str(tmp_path)] + [p for p in sys.path if "-packages" not in p])
    monkeypatch.delitem(sys.modules, "tensorrt", raising=False)
    importlib.invalidate_caches()


@pytest.mark.parametrize("found", ["nothing", "namespace", "10.8.1"])
def test_import_needs_tensorrt_10_9(monkeypatch, tmp_path, found):
    if found == "nothing":
        monkeypatch.setitem(sys.modules, "tensorrt", None)  # import tensorrt -> ImportError
    elif found == "namespace":
        _namespace_only(tmp_path, monkeypatch)
    else:
        monkeypatch.setitem(sys.modules, "tensorrt", native.module(found))
    monkeypatch.delitem(sys.modules, MODULE, raising=False)
    with pytest.raises(ImportError, match=r"TensorRT >= 10\.9.*pip install gimm-trt\[tensorrt\]"):
        importlib.import_module(MODULE)
    sys.modules.pop(MODULE, None)


def test_tensorrt_is_detected_by_what_it_provides(monkeypatch, tmp_path):
    from gimm_trt.engines import compat

    _namespace_only(tmp_path, monkeypatch)
    assert importlib.import_module("tensorrt").__spec__.origin in (None, "namespace")  # the import itself works
    monkeypatch.delitem(sys.modules, "tensorrt")
    with pytest.raises(ImportError, match=r"lacks __version__, Builder.*pip install gimm-trt\[tensorrt\]"):
        compat.import_trt()
    assert not compat.has_tensorrt()
    monkeypatch.setitem(sys.modules, "tensorrt", native.module("11.4.0.106"))
    assert compat.import_trt().__version__ == "11.4.0.106" and compat.has_tensorrt()


# --- the compiled kernel --------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode,tactic", [("linear-zeroeps", 1), ("sum", 3)])
def test_aot_kernel_signature(mode, tactic):
    kernel = compiled(mode, tactic)
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
    run = subprocess.run(
        [ptxas, "-arch=sm_90a", "-", "-o", "/dev/null"], input=kernel.ptx, text=True, capture_output=True, timeout=120
    )
    assert run.returncode == 0, run.stderr


def test_strip_hidden_params_refuses_used_ones():
    ptx = (
        ".visible .entry k(\n .param .u64 k_param_0,\n .param .u64 k_param_1\n)\n{\n ld.param.b64 %rd1, [k_param_1];\n}"
    )
    with pytest.raises(ValueError, match="k_param_1"):
        triton_kernel.strip_hidden_params(ptx, keep=1)
    unused = ptx.replace("k_param_1]", "k_param_0]")
    assert entry_params(triton_kernel.strip_hidden_params(unused, keep=1))[1] == [[".param", ".u64", "k_param_0"]]


# --- the PTX version and the Triton floor ----------------------------------------------------------------------


def _triton_3_4_ptx_get_version(cuda_version):
    """Triton <= 3.4's mapping: CUDA 13 is unknown to it and raises (triton 3.3.0 backends/nvidia/compiler.py)."""
    major, minor = map(int, cuda_version.split("."))
    if major == 12:
        return 80 + minor if minor < 6 else 80 + minor - 1
    raise RuntimeError("Triton only support CUDA 10.0 or higher, but got CUDA version: " + cuda_version)


@pytest.mark.parametrize(
    "driver,ptxas,want", [(12040, 94, 84), (13090, 94, 94), (13000, 87, 87), (None, 94, 94), (None, None, None)]
)
def test_aot_ptx_version_is_the_lower_of_driver_and_ptxas(monkeypatch, driver, ptxas, want):
    nv = pytest.importorskip("triton.backends.nvidia.compiler")
    if driver is None:
        monkeypatch.setattr(triton_kernel, "driver_cuda_version", lambda: None)
    else:
        fake_driver(monkeypatch, driver)

    def bundled(options, arch):
        if ptxas is None:
            raise RuntimeError("Cannot find ptxas")  # what Triton says without its ptxas
        return ptxas

    monkeypatch.setattr(nv, "get_ptx_version_from_options", bundled)
    assert triton_kernel.aot_ptx_version(90) == want


def test_compile_aot_with_a_triton_that_does_not_know_the_driver(monkeypatch):
    """Triton <= 3.4 cannot map a CUDA 13 driver to a PTX version; its bundled ptxas (12.8) decides then."""
    nv = pytest.importorskip("triton.backends.nvidia.compiler")
    compiled()  # skips here if Triton cannot compile for the target
    fake_driver(monkeypatch, 13000)
    monkeypatch.setattr(nv, "ptx_get_version", _triton_3_4_ptx_get_version)
    monkeypatch.setattr(triton_kernel, "_ptxas_isa", lambda arch: 87, raising=False)
    kernel = triton_kernel.compile_aot("sum", 1, target=_target())
    assert re.search(r"^\.version 8\.7$", kernel.ptx, re.M)


def test_compile_aot_under_a_driver_newer_than_ptxas(monkeypatch):
    """A CUDA 13.9 driver takes PTX 9.9, Triton's bundled ptxas does not: the kernel must be PTX ptxas takes."""
    nv = pytest.importorskip("triton.backends.nvidia.compiler")
    compiled()  # skips here if Triton cannot compile for the target
    ptxas = nv.get_ptx_version_from_options(types.SimpleNamespace(ptx_version=None), 90)  # Triton's default
    fake_driver(monkeypatch, 13090)
    kernel = triton_kernel.compile_aot("sum", 1, target=_target())
    assert ptxas is not None and ptxas < 99
    assert re.search(rf"^\.version {ptxas // 10}\.{ptxas % 10}$", kernel.ptx, re.M)


def test_compile_aot_needs_triton_3_3(monkeypatch):
    class OldASTSource:  # Triton 3.2's signature
        def __init__(self, fn, signature, constants=None, attrs=None):
            raise AssertionError("must not be called")

    monkeypatch.setattr(triton.compiler, "ASTSource", OldASTSource)
    with pytest.raises(ImportError, match=r"needs Triton >= 3\.3"):  # MissingDependency
        triton_kernel.compile_aot("sum", 1, target=_target(), ptx_version=84)
    assert triton_kernel.MIN_TRITON_AOT == (3, 3)


# --- TensorRT itself (GPU machines with TensorRT >= 10.9 only) ------------------------------------------------


@pytest.mark.gpu
@pytest.mark.tensorrt
@pytest.mark.parametrize("aot", [True, False], ids=["aot", "jit"])
def test_engine(aot, tmp_path):
    importlib.import_module(MODULE)
    from polygraphy.backend.trt import CreateConfig, EngineFromNetwork, NetworkFromOnnxBytes, TrtRunner

    from gimm_trt import plugins

    class Splat(torch.nn.Module):
        def forward(self, x, flow, metric):
            return plugins.splat(x, flow, metric)

    g = torch.Generator().manual_seed(0)
    args = (
        torch.randn(2, 16, 24, 40, generator=g),
        torch.randn(2, 2, 24, 40, generator=g) * 4,
        torch.rand(2, 1, 24, 40, generator=g),
    )
    with onnx_node.export_splat_mode("plugin", aot=aot) as table:
        model = torch.onnx.export(
            Splat().eval(), args, dynamo=True, custom_translation_table=table, opset_version=18
        ).model_proto
    engine = EngineFromNetwork(
        NetworkFromOnnxBytes(model.SerializeToString(), strongly_typed=True), CreateConfig(tf32=False)
    )
    with TrtRunner(engine) as runner:
        out = runner.infer(dict(zip(schema.INPUTS, (a.numpy() for a in args))))
    got = torch.as_tensor(next(iter(out.values())))
    want = plugins.splat(*args, impl="torch")
    close = torch.isclose(got.cpu(), want, rtol=1e-4, atol=1e-4).float().mean().item()
    assert close > 0.999, f"only {close:.4%} of the outputs match the reference"
