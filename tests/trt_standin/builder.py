"""TensorRT's calls on a quickly-deployable plugin while it builds an engine, and when the engine runs.

The order and the checks follow NVIDIA/TensorRT 11.1: ``include/NvInferRuntime.h`` (the IPluginV3OneBuild timing
protocol, lines 1004-1035: for each supported format combination configurePlugin, then for each tactic of
getValidTactics time the tactic; tactic values unique and non-zero), ``include/impl/NvInferPythonPlugin.h``
(IPluginV3QuickBuild / IPluginV3QuickAOTBuild / IPluginV3QuickRuntime) and the trampolines of
``python/src/infer/pyPlugin.cpp`` that call the Python plugin and check its answers (PyIPluginV3QuickBuildBaseImpl,
lines 1534-1960: output type and shape lists as long as getNbOutputs, format combinations a multiple of the
I/O count; PyIPluginV3QuickAOTBuildImpl, 1966-2094: getKernel's answer cast to (std::string, py::bytes),
getLaunchParams; PyIPluginV3QuickRuntimeImpl, 2096-2160: enqueue's arguments). TensorRT prints a Python exception
and fails the build; here it propagates.

The network is strongly typed (as gimm_trt builds it), so only combinations whose types match the tensors'
are configured. One expression builder serves the whole build: ``tensorrt.plugin`` keeps the input shape
expressions from getOutputShapes and uses them again in getLaunchParams.
"""

from dataclasses import dataclass, field

from . import native


@dataclass(frozen=True)
class Kernel:
    """What an AOT plugin handed over for one (types, formats, tactic)."""

    name: str
    code: bytes
    launch: dict  # KernelLaunchParams field -> IDimensionExpr
    extra: list  # [(PluginArgDataType, IDimensionExpr)], passed between input and output pointers


@dataclass
class Build:
    output_types: list
    output_shapes: list  # [DimsExprs] per output
    combinations: list  # [(PluginTensorDesc, ...)] per advertised combination, inputs then outputs
    tactics: dict = field(default_factory=dict)  # combination types -> tactics advertised
    kernels: dict = field(default_factory=dict)  # (combination types, tactic) -> Kernel (AOT only)


def capability(plugin, kind):
    want = {
        native.PluginCapabilityType.CORE: native.IPluginV3QuickCore,
        native.PluginCapabilityType.BUILD: native.IPluginV3QuickBuild,
        native.PluginCapabilityType.RUNTIME: native.IPluginV3QuickRuntime,
    }[kind]
    cap = plugin.get_capability_interface(kind)
    if not isinstance(cap, want):
        raise TypeError(f"capability {kind.name} is {type(cap).__name__}, not a {want.__name__}")
    return cap


def is_aot(plugin) -> bool:
    return isinstance(capability(plugin, native.PluginCapabilityType.BUILD), native.IPluginV3QuickAOTBuild)


def output_shapes(plugin, inputs, exprs):
    """The first build calls: capabilities, output count, types and shape expressions.

    Args:
        inputs: [(DataType, shape)] per input; a shape entry is an int or the name of a dynamic extent.

    Returns:
        (output types, input DimsExprs, output DimsExprs).
    """
    core = capability(plugin, native.PluginCapabilityType.CORE)
    for attr in ("plugin_name", "plugin_namespace", "plugin_version"):
        if not isinstance(getattr(core, attr), str):
            raise TypeError(f"{attr} must be a string")
    build_cap = capability(plugin, native.PluginCapabilityType.BUILD)
    nb_out = build_cap.get_num_outputs()
    out_types = list(build_cap.get_output_data_types([t for t, _ in inputs], [len(s) for _, s in inputs]))
    if len(out_types) != nb_out or not all(isinstance(t, native.DataType) for t in out_types):
        raise RuntimeError("get_output_data_types() returned a list with a different length than num_outputs")
    in_exprs = [
        native.DimsExprs([exprs._symbol(d) if isinstance(d, str) else exprs.constant(d) for d in s]) for _, s in inputs
    ]
    out_exprs = build_cap.get_output_shapes(in_exprs, [], exprs)
    if len(out_exprs) != nb_out:
        raise RuntimeError("get_output_shapes() returned a list with a different length than num_outputs")
    for shape in out_exprs:
        native._check(shape, native.DimsExprs, "get_output_shapes() item")
        for d in range(len(shape)):
            native._check(shape[d], native.IDimensionExpr, "output extent")
    return out_types, in_exprs, list(out_exprs)


def build(plugin, inputs, profile: dict, exprs=None) -> Build:
    """Drive ``plugin`` through an engine build.

    Args:
        inputs: [(DataType, shape)] per input, as for ``output_shapes``.
        profile: name -> extent used where the optimisation profile's value is needed (min = opt = max).
    """
    exprs = exprs or native.IExprBuilder()
    out_types, in_exprs, out_exprs = output_shapes(plugin, inputs, exprs)
    build_cap = capability(plugin, native.PluginCapabilityType.BUILD)
    in_types, nb_out = [t for t, _ in inputs], len(out_types)
    out_shapes = [tuple(e._value(profile) for e in _items(s)) for s in out_exprs]
    in_shapes = [tuple(profile[d] if isinstance(d, str) else d for d in s) for _, s in inputs]
    dynamic = [_dynamic(s) for _, s in inputs] + [
        tuple(-1 if not e.is_constant() else e.get_constant_value() for e in _items(s)) for s in out_exprs
    ]
    in_out = [_io_desc(t, dyn, shape) for t, dyn, shape in zip(in_types + out_types, dynamic, in_shapes + out_shapes)]
    flat = build_cap.get_supported_format_combinations(in_out, len(inputs))
    nb_io = len(inputs) + nb_out
    if len(flat) % nb_io:
        raise ValueError("Number of supported format combinations not a multiple of number of IO.")
    combos = [
        tuple(native._check(d, native.PluginTensorDesc, "combination item") for d in flat[i : i + nb_io])
        for i in range(0, len(flat), nb_io)
    ]
    result = Build(out_types, out_exprs, combos)
    for combo in combos:
        types = tuple(d.type for d in combo)
        if list(types) != in_types + out_types:
            continue  # strongly typed: TensorRT never picks another type for a tensor
        descs = [
            _io_desc(d.type, dyn, shape, d.format) for d, dyn, shape in zip(combo, dynamic, in_shapes + out_shapes)
        ]
        build_cap.configure_plugin(descs[: len(inputs)], descs[len(inputs) :])
        tactics = list(build_cap.get_valid_tactics())
        if len(set(tactics)) != len(tactics) or 0 in tactics or not all(isinstance(t, int) for t in tactics):
            raise ValueError(f"custom tactics must be unique, non-zero ints, got {tactics}")
        result.tactics[types] = tactics
        for tactic in tactics or [0]:
            build_cap.set_tactic(tactic)
            if isinstance(build_cap, native.IPluginV3QuickAOTBuild):
                result.kernels[(types, tactic)] = _aot_kernel(build_cap, in_exprs, descs, len(inputs), exprs)
    return result


def _aot_kernel(plugin, in_exprs, descs, nb_inputs, exprs) -> Kernel:
    launch, extra = native.KernelLaunchParams(), native.ISymExprs()
    plugin.get_launch_params(in_exprs, descs, nb_inputs, launch, extra, exprs)
    plain = [d.desc for d in descs]
    answer = plugin.get_kernel(plain[:nb_inputs], plain[nb_inputs:])
    # cast<std::tuple<std::string, py::bytes>>: pybind11's std::string takes str (UTF-8) or bytes as they are,
    # py::bytes only bytes
    if not (
        isinstance(answer, tuple)
        and len(answer) == 2
        and isinstance(answer[0], (str, bytes))
        and isinstance(answer[1], bytes)
    ):
        raise TypeError(f"get_kernel() must return (str, bytes), got {answer!r:.80}")
    kernel_name = answer[0].decode() if isinstance(answer[0], bytes) else answer[0]
    fields = {}
    for name in native.KernelLaunchParams.FIELDS:
        value = getattr(launch, name)
        if value is None:
            raise RuntimeError(f"launch parameter {name} was not set")
        arg_type, _, expr = value._read()
        if arg_type is not native.PluginArgType.INT:
            raise TypeError(f"launch parameter {name} is not an integer expression")
        fields[name] = expr
    args = []
    for i in range(len(extra)):
        if extra[i] is None:
            raise RuntimeError(f"extra argument {i} was declared but not set")
        _, dtype, expr = extra[i]._read()
        args.append((dtype, expr))
    return Kernel(kernel_name, answer[1], fields, args)


def _items(dims_exprs):
    return [dims_exprs[i] for i in range(len(dims_exprs))]


def _dynamic(shape):
    return tuple(-1 if isinstance(d, str) else d for d in shape)


def _io_desc(dtype, dynamic, shape, fmt=native.TensorFormat.LINEAR):
    desc = native.DynamicPluginTensorDesc()
    desc.desc.type, desc.desc.format, desc.desc.dims = dtype, fmt, native.Dims(dynamic)
    desc.min = desc.opt = desc.max = native.Dims(shape)
    desc.desc.scale = -1.0  # NvInferRuntimePlugin.h:66-67: -1 when the type is not INT8
    return desc


def runtime_plugin(plugin, creator, request):
    """What an engine holds for a JIT plugin: its serialised fields, deserialised by the creator at load time
    (TensorRTPhase.RUNTIME). TensorRT's C++ wrapper of a quick creator always passes a QuickPluginCreationRequest
    (``createPlugin(name, namespace, fc, phase, quickPluginType)``); which one TensorRT's runtime chooses is not
    in its open sources, so ``request`` is the caller's."""
    core = capability(plugin, native.PluginCapabilityType.CORE)
    fields = capability(plugin, native.PluginCapabilityType.RUNTIME).get_fields_to_serialize()
    native._check(fields, native.PluginFieldCollection, "get_fields_to_serialize()")
    copied = native.PluginFieldCollection(native.PluginField(f.name, f._bytes, f.type) for f in fields)
    for original, copy in zip(fields, copied):  # an engine stores `size` items of the field's type
        copy.size = original.size
    native._check(request, native.QuickPluginCreationRequest, "createPlugin quickPluginType")
    return creator.create_plugin(core.plugin_name, core.plugin_namespace, copied, native.TensorRTPhase.RUNTIME, request)


def enqueue(plugin, tactic, inputs, outputs, stream=0):
    """Run a JIT plugin: ``inputs``/``outputs`` are contiguous torch tensors (their memory is the device memory
    here), described to the plugin as TensorRT describes bindings (type, LINEAR format, dims, element strides)."""
    runtime = capability(plugin, native.PluginCapabilityType.RUNTIME)
    runtime.set_tactic(tactic)
    descs = [_plugin_desc(t) for t in inputs], [_plugin_desc(t) for t in outputs]
    strides = [native.Dims(t.stride()) for t in inputs], [native.Dims(t.stride()) for t in outputs]
    runtime.enqueue(
        descs[0],
        descs[1],
        [t.data_ptr() for t in inputs],
        [t.data_ptr() for t in outputs],
        strides[0],
        strides[1],
        stream,
    )


def _plugin_desc(tensor):
    import torch

    dtype = {torch.float32: native.DataType.FLOAT, torch.float16: native.DataType.HALF}[tensor.dtype]
    if not tensor.is_contiguous():
        raise ValueError("TensorRT passes LINEAR (contiguous) buffers")
    desc = native.PluginTensorDesc()
    desc.type, desc.format, desc.dims, desc.scale = dtype, native.TensorFormat.LINEAR, native.Dims(tensor.shape), -1.0
    return desc
