"""ONNX -> TensorRT or TensorRT-RTX plans, cached under the export directory.

The chain for one stage (or part of one), composed lazily (nothing is read, hashed or built until called)::

    CachedEngine(                              # plan path for EngineKey; builds under a lock when missing
        EngineBytesFromOnnx(onnx_path, ...),   # profiles from the ONNX "T" axis, splat plugin import, then
            # tensorrt: polygraphy_builder -> EngineBytesFromNetwork(NetworkFromOnnxPath(path, strongly_typed=True),
            #                        CreateConfig(tf32=False, profiles=..., load_timing_cache=...),
            #                        save_timing_cache=...)
            # tensorrt-rtx: rtx_builder -> tensorrt_rtx's Builder, OnnxParser and config, driven directly
            # (Polygraphy imports tensorrt), built ahead of time on the CPU for the target compute capabilities
        key=..., engine_dir=...)               # SaveEngineAtomic writes the bytes (temp file + rename)

How engines are built (strongly typed, TF32 off) is ``BuilderSettings``, which is also part of each plan's
name. Strongly typed because TensorRT 11 has no ``BuilderFlag.FP16``: fp16 comes from the fp16 ONNX graph,
which keeps its fp32 islands; TF32 is off so fp32 engines compare with the reference.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ..core.errors import EngineError, EngineMissingError, ExportError, ExportMissingError, MissingDependency
from ..core.files import atomic_write, file_lock, remove_stale_tmp
from ..core.stages import STAGES, T_AXIS, TimestepProfile
from ..core.trt import DEFAULT_FAMILY
from ..export import manifest
from . import compat
from .cache import ENGINE_DIR, EngineKey, explain_missing, timing_name
from .settings import BuilderSettings

try:
    from polygraphy import util
    from polygraphy.backend.base import BaseLoader
except ImportError as _err:  # Polygraphy comes with the tensorrt extra
    raise MissingDependency(f"gimm_trt.engines builds with Polygraphy: `{compat.INSTALL_HINT}`") from _err

__all__ = [
    "PLUGIN_MODULE",
    "OnnxInfo",
    "inspect_onnx",
    "profiles_for",
    "profile_tag",
    "import_plugin",
    "require_plugin_support",
    "RequireTensorRT",
    "polygraphy_builder",
    "rtx_builder",
    "rtx_network",
    "default_builder",
    "EngineBytesFromOnnx",
    "SaveEngineAtomic",
    "CachedEngine",
    "plan_loader",
    "build_plan",
    "engine_loaders",
    "graphs_to_build",
    "require_scatter_support",
    "build_engines",
]

PLUGIN_MODULE = compat.PLUGIN_MODULE


@dataclass(frozen=True, kw_only=True)
class OnnxInfo:
    """What the build needs from an ONNX graph: its inputs, whether it holds the splat op, and its reducing
    scatters (the portable splat).

    ``inputs``: ``((name, dims), ...)`` in graph order; a dim is an int when static, else its symbolic name
    (``"T"``) or ``"?"`` when it has none. ``scatter_adds``: ``((node name, op, reduction), ...)``.
    """

    inputs: tuple
    uses_splat: bool
    scatter_adds: tuple = ()


def _dims(value_info) -> tuple:
    if not value_info.type.tensor_type.HasField("shape"):
        raise ExportError(f"ONNX input {value_info.name!r} has no shape; export with static shapes and a named T axis")
    dims = []
    for dim in value_info.type.tensor_type.shape.dim:
        if dim.HasField("dim_value") and dim.dim_value >= 0:
            dims.append(dim.dim_value)
        else:
            dims.append(dim.dim_param or "?")
    return tuple(dims)


def _graph_nodes(graph):
    import onnx

    for node in graph.node:
        yield node
        for attr in node.attribute:  # If/Loop/Scan bodies
            if attr.type == onnx.AttributeProto.GRAPH:
                yield from _graph_nodes(attr.g)
            for sub in attr.graphs:
                yield from _graph_nodes(sub)


def _is_splat(node) -> bool:
    from ..plugins import schema

    if node.domain == schema.NAMESPACE:
        return True
    # TensorRT's parser ignores domains and picks plugins by op type + plugin_namespace
    return node.op_type == schema.OP_NAME and any(
        a.name == "plugin_namespace" and a.s == schema.NAMESPACE.encode() for a in node.attribute
    )


def inspect_onnx(path) -> OnnxInfo:
    """Read the graph's inputs and look for the splat op (weights stored outside the file are not read)."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    weights = {init.name for init in model.graph.initializer}  # IR < 4 lists initializers as inputs too
    inputs = tuple((vi.name, _dims(vi)) for vi in model.graph.input if vi.name not in weights)
    nodes = list(_graph_nodes(model.graph))
    for function in model.functions:
        nodes.extend(function.node)
    return OnnxInfo(
        inputs=inputs,
        uses_splat=any(_is_splat(node) for node in nodes),
        scatter_adds=tuple(
            (node.name, node.op_type, reduction)
            for node in nodes
            if node.op_type in ("ScatterElements", "ScatterND") and (reduction := _reduction(node)) != "none"
        ),
    )


def _reduction(node) -> str:
    return next((a.s.decode() for a in node.attribute if a.name == "reduction"), "none")


def profiles_for(inputs, profile: TimestepProfile = TimestepProfile()) -> list:
    """One optimisation profile: inputs whose first axis is ``T`` (or unnamed dynamic) get ``profile``'s
    min/opt/max timesteps on it; all other inputs are static (min = opt = max).

    Any other dynamic axis is an error: exports have fixed frame sizes.
    """
    from polygraphy.backend.trt import Profile

    out = Profile()
    for name, dims in inputs:
        dynamic = [i for i, d in enumerate(dims) if isinstance(d, str)]
        if not dynamic:
            out.add(name, min=dims, opt=dims, max=dims)
            continue
        if dynamic != [0] or dims[0] not in (T_AXIS, "?"):
            raise ExportError(
                f"ONNX input {name!r} has shape {list(dims)}: only its first axis may be dynamic, "
                f"and only as the timestep axis {T_AXIS!r}"
            )
        rest = tuple(dims[1:])
        out.add(name, min=(profile.min,) + rest, opt=(profile.opt,) + rest, max=(profile.max,) + rest)
    return [out]


def profile_tag(inputs, profile: TimestepProfile = TimestepProfile()) -> str:
    """``profile.tag`` when a graph input has the timestep axis (part of the plan's name), else ``""``."""
    dynamic = any(dims and isinstance(dims[0], str) for _, dims in inputs)
    return profile.tag if dynamic else ""


def import_plugin(onnx_path, needed: bool, module: str = PLUGIN_MODULE) -> None:
    """Register the splat plugin with TensorRT before parsing, when the graph holds the op.

    ``tensorrt.plugin`` registers on import (``lazy_register`` left False), and the parser only
    finds creators registered before it runs. A graph without the op (``--splat portable``) needs nothing.
    """
    if not needed:
        return
    from ..core import deps
    from ..plugins import schema

    # the plugin's kernel is compiled by Triton inside TensorRT's launch callback, where an error is only printed
    deps.require("triton", f"building the {schema.PLUGIN_ID} plugin's ahead-of-time kernel")
    from ..plugins.triton_kernel import require_triton_aot

    require_triton_aot()
    try:
        importlib.import_module(module)
    except ImportError as err:
        raise MissingDependency(
            f"{Path(onnx_path).name} holds the {schema.PLUGIN_ID} op, and building it needs the TensorRT plugin "
            f"module {module}, which could not be imported ({err}); install `{compat.INSTALL_HINT}` "
            f"(TensorRT >= {'.'.join(map(str, compat.MIN_TRT_VERSION))}) with Triton, or export with "
            f"`--splat portable`"
        ) from err


def require_plugin_support(onnx_path, uses_splat: bool, family: str) -> None:
    """EngineError when the graph holds the splat op and ``family`` cannot build plugins into an engine."""
    fam = compat.family(family)
    if uses_splat and not fam.plugins:
        from ..plugins import schema

        raise EngineError(
            f"{Path(onnx_path).name} holds the {schema.PLUGIN_ID} op, and {fam.title} engines have no plugin "
            f"layers; build that graph with family='tensorrt', or split the stage so that the splat runs outside "
            f"the engine"
        )


class RequireTensorRT(BaseLoader):
    """Passthrough that fails with gimm_trt's install hint, not Polygraphy's, when TensorRT is missing or too
    old or cannot build strongly typed networks; put first in a chain so it runs before anything else."""

    def __init__(self, obj):
        """
        Args:
            obj (Union[object, Callable() -> object]): returned, or called and its result returned.
        """
        self._obj = obj

    def call_impl(self):
        trt = compat.import_trt()
        if not compat.has_strongly_typed(trt):
            raise EngineError(f"TensorRT {trt.__version__} cannot build strongly typed networks")
        return util.invoke_if_callable(self._obj)[0]


def polygraphy_builder(onnx_path, *, profiles, timing_cache=None, settings: BuilderSettings = BuilderSettings()):
    """The tensorrt family's builder: Polygraphy's loaders with ``settings``, timing cache loaded and merged.

    Only composes: returns the uncalled ``EngineBytesFromNetwork``. A stand-in with the signature
    ``(path, *, profiles, timing_cache)`` may be passed as ``builder=`` wherever a builder is taken (tests,
    other build back ends).
    """
    from polygraphy.backend.trt import CreateConfig, EngineBytesFromNetwork, NetworkFromOnnxPath

    timing = None if timing_cache is None else str(timing_cache)
    # A missing cache is fine (Polygraphy would only warn); a torn one is rejected by TensorRT with
    # "The timing cache will not be used!", costing build time, not correctness.
    load = timing if timing is not None and Path(timing).is_file() else None
    network = RequireTensorRT(NetworkFromOnnxPath(str(onnx_path), strongly_typed=settings.strongly_typed))
    config = CreateConfig(tf32=settings.tf32, profiles=profiles, load_timing_cache=load)
    # Polygraphy merges into the saved cache under util.LockFile, so concurrent builds keep each other's tactics
    return EngineBytesFromNetwork(network, config, save_timing_cache=timing)


def rtx_builder(
    onnx_path, *, profiles, settings: BuilderSettings = BuilderSettings(), compute_capabilities=compat.RTX_DEFAULT_CCS
):
    """The tensorrt-rtx family's builder: ``tensorrt_rtx`` driven directly, ahead of time on the CPU (no GPU).

    Args:
        onnx_path: the ONNX file (weights stored beside it are found by the parser).
        profiles: Polygraphy ``Profile`` objects (``profiles_for``); only their min/opt/max shapes are read.
        settings: the ``BuilderSettings``.
        compute_capabilities (str): a ``Target.sm`` of the family: ``"default"`` (TensorRT-RTX's default set)
            or targets joined by ``"_"`` (``"86_89"``).

    Returns:
        Callable() -> ``tensorrt_rtx.IHostMemory``: builds when called (None when the builder fails).
    """
    return functools.partial(_build_rtx, Path(onnx_path), tuple(profiles), settings, compute_capabilities)


def rtx_network(onnx_path, settings: BuilderSettings = BuilderSettings()):
    """``(builder, network, parser)`` of ``tensorrt_rtx`` with ``onnx_path`` parsed into the network: what the
    RTX build compiles, and what can be inspected without a GPU (layers, their output dtypes).

    Keep all three alive while the network is used: the parser owns the graph's weights.
    """
    trt = compat.import_trt("tensorrt-rtx")
    logger = compat.trt_logger("tensorrt-rtx")
    builder = trt.Builder(logger)
    network = builder.create_network(settings.network_flags(trt))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise EngineError(f"TensorRT-RTX's ONNX parser rejected {Path(onnx_path).name}: {errors}")
    return builder, network, parser


def _build_rtx(onnx_path: Path, profiles: tuple, settings: BuilderSettings, compute_capabilities: str):
    trt = compat.import_trt("tensorrt-rtx")
    builder, network, parser = rtx_network(onnx_path, settings)
    config = builder.create_builder_config()
    settings.configure(config, trt)
    for profile in profiles:
        trt_profile = builder.create_optimization_profile()
        for name, shape in profile.items():
            trt_profile.set_shape(name, tuple(shape.min), tuple(shape.opt), tuple(shape.max))
        config.add_optimization_profile(trt_profile)
    if compute_capabilities != compat.RTX_DEFAULT_CCS:  # no setting: TensorRT-RTX's own default set
        ccs = compute_capabilities.split("_")
        config.num_compute_capabilities = len(ccs)
        for index, cc in enumerate(ccs):
            if not config.set_compute_capability(getattr(trt.ComputeCapability, f"SM{cc}"), index):
                raise EngineError(f"TensorRT-RTX refused compute capability {cc}; see its log above")
    engine_bytes = builder.build_serialized_network(network, config)
    del parser  # owns the weights the build read: released only after it
    return engine_bytes


def default_builder(target, settings: BuilderSettings = BuilderSettings()):
    """The builder of ``target``'s family, configured with ``settings`` (and the target compute capabilities
    for an AOT family): ``(path, *, profiles[, timing_cache]) -> loader of engine bytes``."""
    if compat.family(target.family).aot:
        return functools.partial(rtx_builder, settings=settings, compute_capabilities=target.sm)
    return functools.partial(polygraphy_builder, settings=settings)


class EngineBytesFromOnnx(BaseLoader):
    """Serialized engine bytes for one ONNX file: reads its inputs, derives the profile, imports the splat
    plugin when the graph holds the op (an error for a family without plugins), then runs ``builder``'s loader."""

    def __init__(
        self,
        path,
        *,
        timing_cache=None,
        profile: TimestepProfile = TimestepProfile(),
        builder=None,
        plugin_module=PLUGIN_MODULE,
        family: str = DEFAULT_FAMILY,
    ):
        """
        Args:
            path (Union[path, Callable() -> path]): the ONNX file.
            timing_cache (Union[path, Callable() -> path, None]): timing cache to load from and merge into;
                not passed to the builder of an AOT family (tensorrt-rtx times nothing).
            profile (TimestepProfile): the T axis profile.
            builder (Callable(path, *, profiles[, timing_cache]) -> Union[bytes, Callable() -> bytes]):
                ``polygraphy_builder`` unless given; ``timing_cache`` is passed for the tensorrt family only.
            plugin_module (str): imported before parsing when the graph holds the splat op.
            family (Union[str, Callable() -> str]): the engine family built for; one without plugins refuses a
                graph with the splat op.
        """
        self._path = path
        self._timing_cache = timing_cache
        self.profile = profile
        self._builder = builder if builder is not None else polygraphy_builder
        self.plugin_module = plugin_module
        self._family = family

    def call_impl(self):
        """
        Returns:
            bytes-like: the serialized engine (``IHostMemory`` from the real builders).
        """
        path = Path(util.invoke_if_callable(self._path)[0])
        info = inspect_onnx(path)
        family = compat.family(util.invoke_if_callable(self._family)[0])
        require_plugin_support(path, info.uses_splat, family.name)
        require_scatter_support(path, info, family.name)
        import_plugin(path, info.uses_splat, self.plugin_module)
        options = {"profiles": profiles_for(info.inputs, self.profile)}
        if not family.aot:  # an AOT build runs no tactics on a GPU: it has no timing cache
            options["timing_cache"] = util.invoke_if_callable(self._timing_cache)[0]
        engine_bytes, _ = util.invoke_if_callable(self._builder(path, **options))
        return engine_bytes


class SaveEngineAtomic(BaseLoader):
    """Passthrough that writes serialized engine bytes to ``path`` atomically (temp file, fsync, rename)."""

    def __init__(self, engine_bytes, path):
        """
        Args:
            engine_bytes (Union[bytes-like, Callable() -> bytes-like]): the serialized engine.
            path (Union[path, Callable() -> path]): where to write it.
        """
        self._engine_bytes = engine_bytes
        self._path = path

    def call_impl(self):
        """
        Returns:
            bytes-like: the engine bytes that were written.
        """
        data, _ = util.invoke_if_callable(self._engine_bytes)
        path, _ = util.invoke_if_callable(self._path)
        if data is None or memoryview(data).nbytes == 0:
            raise EngineError(f"the builder returned no engine for {Path(path).name}; see TensorRT's log above")
        atomic_write(path, data)
        return data


class CachedEngine(BaseLoader):
    """The plan file for an ``EngineKey``: reused when present, else built (under a lock) and saved.

    A plan of another family, GPU, compute capability, library version, builder settings, ONNX hash or timestep
    profile has another name, so it is
    never picked up; with ``build=False`` a missing plan is an ``EngineMissingError`` that lists the plans of
    the stage that are there and what differs. Of two processes asking for the same missing plan, one
    builds and the other waits on the directory's lock, then finds the plan and reuses it.
    """

    def __init__(self, engine_bytes, *, key, engine_dir, build=True):
        """
        Args:
            engine_bytes (Callable() -> bytes-like): builds the engine; only called when the plan is missing.
            key (Union[EngineKey, Callable() -> EngineKey]): what the plan must match.
            engine_dir (Union[path, Callable() -> path]): ``<export>/engines``.
            build (bool): whether a missing plan may be built.
        """
        self._engine_bytes = engine_bytes
        self._key = key
        self._engine_dir = engine_dir
        self.build = build

    def call_impl(self):
        """
        Returns:
            pathlib.Path: the plan file.
        """
        key, _ = util.invoke_if_callable(self._key)
        engine_dir = Path(util.invoke_if_callable(self._engine_dir)[0])
        path = engine_dir / key.plan_name
        if path.is_file():  # whole or absent: plans only appear by rename
            return path
        if not self.build:
            raise EngineMissingError(explain_missing(key, engine_dir))
        # One lock per engine directory, not per plan: builds there run one at a time (each can fill the GPU)
        # and the directory keeps a single hidden .build.lock instead of one lock file per plan.
        with file_lock(engine_dir / ".build"):
            if path.is_file():  # built by another process while we waited
                return path
            remove_stale_tmp(path)  # from a writer that was killed; we hold the lock, nobody else writes
            SaveEngineAtomic(self._engine_bytes, path)()
        return path


def plan_loader(
    onnx_path,
    stage: str,
    *,
    engine_dir,
    target,
    profile: TimestepProfile = TimestepProfile(),
    settings: BuilderSettings = BuilderSettings(),
    build: bool = True,
    builder=None,
) -> CachedEngine:
    """The uncalled ``CachedEngine`` of one ONNX file; calling it returns the plan path, building if missing.

    Args:
        onnx_path: the graph, e.g. ``<export>/motion.onnx`` or one part of a split stage.
        stage: the plan's stage name: a stage or a numbered part of one (``"motion.0"``).
        engine_dir: where plans live (``<export>/engines``).
        target: a ``compat.Target`` (its ``family`` picks the builder) or a callable returning one (on call).
        profile: the timestep profile, used when a graph input has the ``T`` axis.
        settings: the ``BuilderSettings``: configure the build and are part of the key.
        build: False never builds: a missing plan raises ``EngineMissingError`` saying what differs.
        builder: stand-in for the family's builder (``default_builder``), ``(path, *, profiles[, timing_cache])``.
    """
    onnx_path, engine_dir = Path(onnx_path), Path(engine_dir)
    resolve = functools.cache(target if callable(target) else lambda: target)  # probed at most once, on call

    def family_builder(path, **options):
        return (builder or default_builder(resolve(), settings))(path, **options)

    def timing_cache():
        return engine_dir / timing_name(resolve())

    engine_bytes = EngineBytesFromOnnx(
        onnx_path, timing_cache=timing_cache, profile=profile, builder=family_builder, family=lambda: resolve().family
    )
    key = lambda: EngineKey.of(
        stage, onnx_path, resolve(), profile_tag(inspect_onnx(onnx_path).inputs, profile), settings
    )
    return CachedEngine(engine_bytes, key=key, engine_dir=engine_dir, build=build)


def build_plan(
    onnx_path,
    stage: str,
    *,
    engine_dir,
    family: str = DEFAULT_FAMILY,
    profile: TimestepProfile = TimestepProfile(),
    settings: BuilderSettings = BuilderSettings(),
    compute_capabilities=None,
    target=None,
    device=None,
    build: bool = True,
    builder=None,
) -> Path:
    """The cached plan of ONE ONNX file for an engine family, built where missing: what ``build_engines`` does
    per stage, for any graph (a part ``motion.0`` of a split stage is built the same way).

    Args:
        onnx_path: the graph.
        stage: the plan's stage name (``"flow"``, ``"motion.0"``).
        engine_dir: where plans live (``<export>/engines``).
        family: ``"tensorrt"`` (builds on ``device``'s GPU) or ``"tensorrt-rtx"`` (builds on the CPU).
        profile: the timestep profile, used when a graph input has the ``T`` axis.
        settings: the ``BuilderSettings``.
        compute_capabilities: tensorrt-rtx only: targets such as ``[86, 89]``; None = TensorRT-RTX's default set.
        target: a ``compat.Target`` to key the plan by instead of probing (tests, cross-checks).
        device: tensorrt only: the CUDA device to probe and build on (default: the current one).
        build: False never builds: a missing plan raises ``EngineMissingError`` saying what differs.
        builder: stand-in for the family's builder.

    Returns:
        pathlib.Path: the plan file ``<engine_dir>/<EngineKey.plan_name>``.
    """
    target = _target(family, target, device, compute_capabilities)
    loader = plan_loader(
        onnx_path,
        stage,
        engine_dir=engine_dir,
        target=target,
        profile=profile,
        settings=settings,
        build=build,
        builder=builder,
    )
    with _on_device(None if compat.family(family).aot else device):
        return loader()


def _target(family: str, target, device, compute_capabilities):
    """``target`` checked against ``family``, else this machine's (tensorrt) or the AOT targets (tensorrt-rtx)."""
    family = compat.family(family).name
    if target is None:
        return compat.target_for(family, device=device, compute_capabilities=compute_capabilities)
    if target.family != family:
        raise EngineError(
            f"target is for the {target.family} family and family is {family!r}; pass a target of {family!r} or "
            f"leave target out"
        )
    return target


def engine_loaders(
    export_dir,
    *,
    profile: TimestepProfile = TimestepProfile(),
    build=True,
    target=None,
    builder=None,
    stages=STAGES,
    graphs: Optional[dict] = None,
    settings: BuilderSettings = BuilderSettings(),
) -> dict:
    """One uncalled ``CachedEngine`` per graph of an export directory; calling one returns its plan path.

    ``graphs``: plan name -> ONNX file (``graphs_to_build``); default each of ``stages``' own graph. ``target``:
    a ``compat.Target`` or a callable returning one; default: probe this machine for the tensorrt family (on call).
    """
    export_dir = Path(export_dir)
    if graphs is None:
        graphs = {stage: _graph(export_dir, stage) for stage in stages}
    resolve = functools.cache(
        target if callable(target) else (lambda: target) if target is not None else compat.current_target
    )
    return {
        name: plan_loader(
            path,
            name,
            engine_dir=export_dir / ENGINE_DIR,
            target=resolve,
            profile=profile,
            settings=settings,
            build=build,
            builder=builder,
        )
        for name, path in graphs.items()
    }


def build_engines(
    export_dir,
    *,
    profile: TimestepProfile = None,
    build=True,
    device=None,
    target=None,
    builder=None,
    stages=STAGES,
    family: str = DEFAULT_FAMILY,
    settings: BuilderSettings = BuilderSettings(),
    compute_capabilities=None,
) -> dict:
    """The plan of each stage of a ``gimm-export`` directory for an engine family, built where missing.

    Args:
        export_dir: holds ``flow.onnx``, ``motion.onnx``, ``synthesis.onnx``; plans go to ``<export_dir>/engines``.
        profile: the timesteps per call the engines take; default ``TimestepProfile.up_to`` the manifest's
            ``max_timesteps`` (8 without a manifest).
        build: False never builds: a missing plan raises ``EngineMissingError`` saying what differs.
        device: tensorrt only: CUDA device to probe and build on (default: the current one).
        target: ``compat.Target`` to key the plans by instead of probing (tests, cross-checks).
        builder: stand-in for the family's builder.
        stages: which stages.
        family: ``"tensorrt"`` or ``"tensorrt-rtx"`` (builds on the CPU). A family without plugin layers
            builds a stage holding the splat op as its standard-op parts (``export.partition``: ``motion.0``,
            ``motion.1``), between which the runtime launches our splat kernel.
        settings: the ``BuilderSettings``.
        compute_capabilities: tensorrt-rtx only: targets such as ``[86, 89]``; None = its default set.

    Returns:
        dict[str, pathlib.Path]: stage (or part, ``motion.0``) -> plan file, in run order.
    """
    export_dir = Path(export_dir)
    missing = [f"{stage}.onnx" for stage in stages if not (export_dir / f"{stage}.onnx").is_file()]
    if missing:
        raise ExportMissingError(f"{export_dir} has no {', '.join(missing)}; pass a directory written by gimm-export")
    graphs = graphs_to_build(export_dir, stages, family)  # before any build: a refusal must not come after minutes
    if profile is None:
        profile = TimestepProfile.up_to(_manifest_max_timesteps(export_dir) or TimestepProfile().max)
    target = _target(family, target, device, compute_capabilities)
    loaders = engine_loaders(
        export_dir, profile=profile, build=build, target=target, builder=builder, graphs=graphs, settings=settings
    )
    with _on_device(None if compat.family(family).aot else device):
        return {stage: loader() for stage, loader in loaders.items()}


def graphs_to_build(export_dir, stages=STAGES, family: str = DEFAULT_FAMILY) -> dict:
    """The ONNX file of each engine ``family`` builds for ``stages``, by plan name, in run order: the stage's own
    graph, or, where it holds the splat op and the family has no plugin layers, its standard-op parts (written
    beside the export by ``export.partition.write_parts``). EngineError for a graph the family cannot build."""
    export_dir = Path(export_dir)
    fam = compat.family(family)
    graphs = {}
    for stage in stages:
        path = _graph(export_dir, stage)
        if fam.plugins and fam.scatter_add:  # every graph builds whole: nothing to read here
            graphs[stage] = path
            continue
        info = inspect_onnx(path)
        require_scatter_support(path, info, family)
        if fam.plugins or not info.uses_splat:
            graphs[stage] = path
            continue
        from ..export.partition import load_plan, write_parts

        write_parts(export_dir, stage=stage)
        for step in load_plan(export_dir, stage=stage).parts:
            graphs[f"{stage}.{step.index}"] = export_dir / step.file
    return graphs


def _graph(export_dir: Path, stage: str) -> Path:
    """``<export_dir>/<stage>.onnx``; ExportError when it leads outside the folder (a symlink), before it is read."""
    return manifest.export_file(export_dir, f"{stage}.onnx", f"{export_dir}: the {stage} graph")


def require_scatter_support(onnx_path, info: OnnxInfo, family: str) -> None:
    """EngineError when the graph (read as ``info``) adds with ScatterElements (the portable splat) and
    ``family`` has no scatter-add: said before a build, naming the node and what to export instead."""
    if compat.family(family).scatter_add or not info.scatter_adds:
        return
    name, op, reduction = info.scatter_adds[0]
    raise EngineError(
        f"{Path(onnx_path).name}: node {name!r} ({op}, reduction={reduction}) has no "
        f"{compat.family(family).title} layer; export with --splat plugin, whose splat runs outside the "
        "engines between the stage's parts"
    )


def _manifest_max_timesteps(export_dir: Path):
    """The manifest's ``max_timesteps``; None for a bare directory of ONNX files (hand-made graphs)."""
    if not (export_dir / manifest.MANIFEST).is_file():
        return None
    value = manifest.read_manifest(export_dir).get("max_timesteps")
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _on_device(device):
    """TensorRT builds on the current CUDA device: make it ``device`` while building."""
    if device is None:
        return contextlib.nullcontext()
    import torch

    return torch.cuda.device(compat.cuda_device(device))
