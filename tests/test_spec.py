"""One ModelSpec built once and passed whole; one backend registry every list and choice comes from; each model
option declared by one click.option."""

import ast
from pathlib import Path

import pytest
from click.testing import CliRunner

from gimm_trt import Interpolator, ModelSpec
from gimm_trt.core.errors import DeviceError, InputError
from gimm_trt.runtime import BACKENDS, PRECISIONS, REGISTRY, Backend, OrtOptions, RtxOptions, TrtOptions, registry

ROOT = Path(__file__).resolve().parents[1] / "gimm_trt"
MODEL_OPTIONS = (
    "--variant",
    "--checkpoint",
    "--flow-checkpoint",
    "--random-weights",
    "--backend",
    "--precision",
    "--device",
    "--ds-scale",
    "--export",
    "--max-memory",
)


def _option_declarations() -> dict:
    """flag -> how many click.option(...) calls (or entries of the CLI's option table) name it in gimm_trt."""
    counts = dict.fromkeys(MODEL_OPTIONS, 0)
    for path in ROOT.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) == "option":
                names = [a.value for a in node.args if isinstance(a, ast.Constant)]
            elif isinstance(node, ast.Tuple):  # the model option group's table: ("--variant",), dict(...)
                names = [e.value for e in node.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)]
            else:
                continue
            for name in names:
                if name in counts:
                    counts[name] += 1
    return counts


def test_each_model_option_is_declared_once():
    counts = _option_declarations()
    assert counts == dict.fromkeys(MODEL_OPTIONS, 1), counts


@pytest.mark.parametrize(
    "command, present",
    [
        ("interpolate", MODEL_OPTIONS),
        ("serve", MODEL_OPTIONS),
        ("bench", tuple(o for o in MODEL_OPTIONS if o != "--export")),
        ("export", ("--variant", "--checkpoint", "--flow-checkpoint", "--random-weights", "--precision", "--device")),
        ("doctor", ("--device", "--export")),
    ],
)
def test_commands_take_the_group_options(command, present):
    import gimm_trt.cli as cli

    flags = {opt for p in getattr(cli, command).params for opt in p.opts}
    assert set(present) <= flags


def test_model_spec_checks_and_normalises():
    spec = ModelSpec(variant="R", checkpoint=Path("a.pt"), max_memory="2GiB", ds_scale=1, device="cuda:1")
    assert spec.checkpoint == "a.pt" and spec.max_memory == 2 * 2**30 and spec.ds_scale == 1.0
    assert spec.replace(backend="onnxruntime").backend == "onnxruntime" and spec.backend == "torch"
    for kwargs, message in [
        (dict(variant="Q"), "unknown variant 'Q'"),
        (dict(checkpoint="a.pt", random_weights=True), "either a checkpoint or random weights"),
        (dict(export="e", checkpoint="a.pt"), "either an export or a checkpoint"),
        (dict(ds_scale=2.0), "ds_scale must lie in"),
        (dict(max_memory="lots"), "max_memory must be a number of bytes"),
        (dict(max_batch=0), "max_batch must be an integer >= 1"),
        (dict(seed=-1), "seed must be an integer >= 0"),
    ]:
        with pytest.raises(InputError, match=message):
            ModelSpec(**kwargs)
    with pytest.raises(AttributeError):
        spec.variant = "R-P"  # frozen: passed whole, never edited on the way


def test_registry_is_derived_from_the_backend_classes():
    assert BACKENDS == tuple(REGISTRY) == ("torch", "onnxruntime", "tensorrt", "tensorrt-rtx")
    assert set(PRECISIONS) == {"fp32", "fp16", "bf16"}
    for name, cls in REGISTRY.items():
        assert issubclass(cls, Backend) and cls.name == name and isinstance(cls.precisions, dict)
    assert registry.EXPORTED_BACKENDS == ("onnxruntime", "tensorrt", "tensorrt-rtx")
    assert [REGISTRY[n].options_type for n in registry.EXPORTED_BACKENDS] == [OrtOptions, TrtOptions, RtxOptions]
    assert REGISTRY["torch"].options_type is None
    # what the CLI offers is the registry's
    import gimm_trt.cli as cli

    (choice,) = [p for p in cli.interpolate.params if p.name == "backend"]
    assert tuple(choice.type.choices) == BACKENDS


def test_backend_options_from_text():
    assert registry.options_from_text("tensorrt", ["cuda_graph=on", "build=false"]) == TrtOptions(
        cuda_graph=True, build=False
    )
    assert registry.options_from_text("onnxruntime", ["threads=3"]) == OrtOptions(threads=3)
    assert registry.options_from_text("tensorrt-rtx", ["compute_capabilities=86,89"]) == RtxOptions(
        compute_capabilities="86,89"
    )
    assert registry.options_from_text("torch", []) is None
    with pytest.raises(InputError, match="backend 'onnxruntime' takes KEY=VALUE with KEY one of threads"):
        registry.options_from_text("onnxruntime", ["cuda_graph=on"])
    with pytest.raises(InputError, match=r"threads='many' of backend 'onnxruntime': expected a int"):
        registry.options_from_text("onnxruntime", ["threads=many"])
    with pytest.raises(InputError, match="backend 'torch' takes no options"):
        registry.options_from_text("torch", ["threads=1"])


def test_options_of_another_backend_are_refused_before_loading():
    with pytest.raises(InputError, match="backend 'torch' takes no options, got OrtOptions"):
        Interpolator.from_checkpoint(variant="R", random_weights=True, device="cpu", options=OrtOptions())


def test_from_spec_keeps_the_spec_and_its_runtime_fields():
    spec = ModelSpec(variant="R", random_weights=True, seed=2, device="cpu", ds_scale=0.5, max_memory="3GiB")
    with pytest.warns(UserWarning, match="random weights"):
        interp = Interpolator.from_spec(spec)
    assert interp.spec is spec and interp.ds_scale == 0.5 and interp.budget.limit == 3 * 2**30
    assert interp.check_size(256, 448) == 0.5  # the spec's scale when a call gives none
    with pytest.raises(InputError, match="ds_scale"):
        interp.check_size(64, 64)
    with pytest.warns(UserWarning, match="random weights"):
        same = Interpolator.from_checkpoint(None, variant="R", random_weights=True, seed=2, device="cpu")
    assert same.spec == spec.replace(ds_scale=None, max_memory=None)


def test_export_options_compose_the_spec_and_ignore_its_runtime_fields():
    from gimm_trt.export.exporter import ExportOptions, WeightsSource, export_key

    weights = WeightsSource(label="w")
    base = ExportOptions(model=ModelSpec(variant="R", random_weights=True), resolution="224x128")
    runtime = ExportOptions(
        model=ModelSpec(variant="R", random_weights=True, backend="tensorrt", device="cuda", max_memory="1GiB"),
        resolution="224x128",
    )
    assert export_key(base, weights) == export_key(runtime, weights)
    fp16 = ExportOptions(model=ModelSpec(variant="R", random_weights=True, precision="fp16"), resolution="224x128")
    assert export_key(fp16, weights) != export_key(base, weights) and fp16.name == "R-fp16-224x128"


def test_cli_backend_option_reaches_the_backend(tmp_path):
    from gimm_trt.cli import interpolate

    result = CliRunner().invoke(
        interpolate, ["--demo", str(tmp_path / "o"), "--random-weights", "--device", "cpu", "-O", "threads=2"]
    )
    assert result.exit_code == 2
    assert result.stderr.strip() == "error: backend 'torch' takes no options, got threads=2"
    result = CliRunner().invoke(
        interpolate,
        ["--demo", str(tmp_path / "o"), "--random-weights", "--backend", "tensorrt-rtx", "-O", "cuda_graph=maybe"],
    )
    assert result.exit_code == 2
    assert "cuda_graph='maybe' of backend 'tensorrt-rtx': expected a bool" in result.stderr


def test_gpu_only_backends_say_cuda_in_one_line_before_any_work(tmp_path, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for backend in ("tensorrt", "tensorrt-rtx"):
        # an export that does not exist: the device is said first, nothing is read
        with pytest.raises(DeviceError, match=f"backend '{backend}' runs on CUDA GPUs, and CUDA is not available"):
            Interpolator.from_export(tmp_path / "none", backend=backend)
        with pytest.raises(DeviceError, match=f"backend '{backend}' runs on CUDA devices only, not 'cpu'"):
            Interpolator.from_export(tmp_path / "none", backend=backend, device="cpu")
    from gimm_trt.cli import interpolate

    result = CliRunner().invoke(interpolate, ["--demo", str(tmp_path / "o"), "--backend", "tensorrt-rtx"])
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        "error: backend 'tensorrt-rtx' runs on CUDA GPUs, and CUDA is not available here"
    ]
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("device", ["cuda:abc", "cuda:-1", "", "CPU", "cpu,cuda", "meta", "cpu:1", " cuda", 0])
def test_a_bad_device_name_fails_where_the_spec_is_built(device):
    # checked once, at spec build: the CLI, the API, the service and the workers all start from a spec
    with pytest.raises(
        InputError, match=r"^device must be 'cpu', 'cuda' or 'cuda:N' \(N a GPU index from 0\), got "
    ) as e:
        ModelSpec(device=device)
    assert "\n" not in str(e.value)


def test_device_names_are_kept_as_written_and_lower_case_is_suggested():
    import torch

    assert [ModelSpec(device=d).device for d in ("cpu", "cuda", "cuda:3", torch.device("cuda", 1))] == [
        "cpu",
        "cuda",
        "cuda:3",
        "cuda:1",
    ]
    assert ModelSpec().device is None  # the default device is chosen where the model runs
    with pytest.raises(InputError, match=r"got 'CPU' \(write 'cpu'\)$"):
        ModelSpec(device="CPU")


@pytest.mark.parametrize("command", ["interpolate", "serve", "bench", "doctor"])
def test_cli_bad_device_is_one_line_exit_2(command, tmp_path):
    import gimm_trt.cli as cli

    args = {"interpolate": ["--demo", str(tmp_path / "o")], "serve": ["--random-weights"]}.get(command, [])
    result = CliRunner().invoke(getattr(cli, command), [*args, "--device", "cuda:abc"])
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        "error: device must be 'cpu', 'cuda' or 'cuda:N' (N a GPU index from 0), got 'cuda:abc'"
    ]
    assert not (tmp_path / "o").exists()


def test_variant_defaults_to_r_p_and_an_export_keeps_its_own():
    from gimm_trt.export.exporter import ExportOptions
    from gimm_trt.model.checkpoint import Weights

    assert ModelSpec().variant == "R-P" and ModelSpec(variant=Weights.F).variant == "F"
    spec = ModelSpec(export="e", backend="onnxruntime")
    assert spec.variant is None  # the manifest's, read where the export is opened
    with pytest.raises(InputError, match="the variant of the export e is the one its manifest records"):
        _ = spec.weights
    assert ModelSpec(export="e", variant="F").variant == "F"  # given: the export must match it
    with pytest.raises(InputError, match="an export is made from a checkpoint or random weights"):
        ExportOptions(model=spec)
