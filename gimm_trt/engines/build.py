"""ONNX -> TensorRT plans with Polygraphy's loaders, cached under the export directory.

The chain for one stage, composed lazily (nothing is read, hashed or built until it is called)::

    CachedEngine(                              # plan path for EngineKey; builds under a lock when missing
        EngineBytesFromOnnx(onnx_path, ...),   # profiles from the ONNX "T" axis, splat plugin import, then
            # EngineBytesFromNetwork(NetworkFromOnnxPath(path, strongly_typed=True),
            #                        CreateConfig(tf32=False, profiles=..., load_timing_cache=...),
            #                        save_timing_cache=...)
        key=..., engine_dir=...)               # SaveEngineAtomic writes the bytes (temp file + rename)

Engines are always strongly typed: TensorRT 11 has no ``BuilderFlag.FP16``, so fp16 comes from the fp16
ONNX graph; TF32 is off so fp32 engines compare with the reference.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import EngineError, EngineMissingError, ExportError, ExportMissingError, MissingDependency
from ..core.files import atomic_write, file_lock, remove_stale_tmp
from ..core.stages import STAGES, T_AXIS, TimestepProfile
from ..export import manifest
from . import compat
from .cache import ENGINE_DIR, EngineKey, explain_missing, timing_name

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
    "RequireTensorRT",
    "polygraphy_builder",
    "EngineBytesFromOnnx",
    "SaveEngineAtomic",
    "CachedEngine",
    "engine_loaders",
    "build_engines",
]

PLUGIN_MODULE = compat.PLUGIN_MODULE


@dataclass(frozen=True, kw_only=True)
class OnnxInfo:
    """What the build needs from an ONNX graph: its inputs and whether it holds the splat op.

    ``inputs``: ``((name, dims), ...)`` in graph order; a dim is an int when static, else its symbolic name
    (``"T"``) or ``"?"`` when it has none.
    """

    inputs: tuple
    uses_splat: bool


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
    return OnnxInfo(inputs=inputs, uses_splat=any(_is_splat(node) for node in nodes))


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
    from ..plugins import schema

    try:
        importlib.import_module(module)
    except ImportError as err:
        raise MissingDependency(
            f"{Path(onnx_path).name} holds the {schema.PLUGIN_ID} op, and building it needs the TensorRT plugin "
            f"module {module}, which could not be imported ({err}); install `{compat.INSTALL_HINT}` "
            f"(TensorRT >= {'.'.join(map(str, compat.MIN_TRT_VERSION))}) with Triton, or export with "
            f"`--splat portable`"
        ) from err


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


def polygraphy_builder(onnx_path, *, profiles, timing_cache=None):
    """The real builder: Polygraphy's loaders, strongly typed, TF32 off, timing cache loaded and merged.

    Only composes: returns the uncalled ``EngineBytesFromNetwork``. A stand-in with this signature may be
    passed as ``builder=`` wherever a builder is taken (tests, other build back ends).
    """
    from polygraphy.backend.trt import CreateConfig, EngineBytesFromNetwork, NetworkFromOnnxPath

    timing = None if timing_cache is None else str(timing_cache)
    # A missing cache is fine (Polygraphy would only warn); a torn one is rejected by TensorRT with
    # "The timing cache will not be used!" (NVIDIA/TensorRT#3566), costing build time, not correctness.
    load = timing if timing is not None and Path(timing).is_file() else None
    network = RequireTensorRT(NetworkFromOnnxPath(str(onnx_path), strongly_typed=True))
    config = CreateConfig(tf32=False, profiles=profiles, load_timing_cache=load)
    # Polygraphy merges into the saved cache under util.LockFile, so concurrent builds keep each other's tactics
    return EngineBytesFromNetwork(network, config, save_timing_cache=timing)


class EngineBytesFromOnnx(BaseLoader):
    """Serialized engine bytes for one ONNX file: reads its inputs, derives the profile, imports the splat
    plugin when the graph holds the op, then runs ``builder``'s loader."""

    def __init__(
        self,
        path,
        *,
        timing_cache=None,
        profile: TimestepProfile = TimestepProfile(),
        builder=None,
        plugin_module=PLUGIN_MODULE,
    ):
        """
        Args:
            path (Union[path, Callable() -> path]): the ONNX file.
            timing_cache (Union[path, Callable() -> path, None]): timing cache to load from and merge into.
            profile (TimestepProfile): the T axis profile.
            builder (Callable(path, *, profiles, timing_cache) -> Union[bytes, Callable() -> bytes]):
                ``polygraphy_builder`` unless given.
            plugin_module (str): imported before parsing when the graph holds the splat op.
        """
        self._path = path
        self._timing_cache = timing_cache
        self.profile = profile
        self._builder = builder if builder is not None else polygraphy_builder
        self.plugin_module = plugin_module

    def call_impl(self):
        """
        Returns:
            bytes-like: the serialized engine (``trt.IHostMemory`` from the real builder).
        """
        path = Path(util.invoke_if_callable(self._path)[0])
        timing, _ = util.invoke_if_callable(self._timing_cache)
        info = inspect_onnx(path)
        import_plugin(path, info.uses_splat, self.plugin_module)
        profiles = profiles_for(info.inputs, self.profile)
        engine_bytes, _ = util.invoke_if_callable(self._builder(path, profiles=profiles, timing_cache=timing))
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

    A plan of another GPU, compute capability, TensorRT version or ONNX hash has another name, so it is
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


def engine_loaders(
    export_dir, *, profile: TimestepProfile = TimestepProfile(), build=True, target=None, builder=None, stages=STAGES
) -> dict:
    """One uncalled ``CachedEngine`` per stage of an export directory; calling one returns its plan path.

    ``target``: a ``compat.Target`` or a callable returning one; default: probe this machine (on call).
    """
    export_dir = Path(export_dir)
    engine_dir = export_dir / ENGINE_DIR
    # probed at most once for all stages, and only when a loader runs
    resolve = functools.cache(
        target if callable(target) else (lambda: target) if target is not None else compat.current_target
    )
    loaders = {}
    for stage in stages:
        onnx_path = export_dir / f"{stage}.onnx"
        engine_bytes = EngineBytesFromOnnx(
            onnx_path, timing_cache=lambda: engine_dir / timing_name(resolve()), profile=profile, builder=builder
        )
        key = functools.partial(
            lambda s, p: EngineKey.of(s, p, resolve(), profile_tag(inspect_onnx(p).inputs, profile)), stage, onnx_path
        )
        loaders[stage] = CachedEngine(engine_bytes, key=key, engine_dir=engine_dir, build=build)
    return loaders


def build_engines(
    export_dir, *, profile: TimestepProfile = None, build=True, device=None, target=None, builder=None, stages=STAGES
) -> dict:
    """The TensorRT plan of each stage of a ``gimm-export`` directory, built where missing.

    Args:
        export_dir: holds ``flow.onnx``, ``motion.onnx``, ``synthesis.onnx``; plans go to ``<export_dir>/engines``.
        profile: the timesteps per call the engines take; default ``TimestepProfile.up_to`` the manifest's
            ``max_timesteps`` (8 without a manifest).
        build: False never builds: a missing plan raises ``EngineMissingError`` saying what differs.
        device: CUDA device to probe and build on (default: the current one).
        target: ``compat.Target`` to key the plans by instead of probing (tests, cross-checks).
        builder: stand-in for ``polygraphy_builder`` (same signature).
        stages: which stages.

    Returns:
        dict[str, pathlib.Path]: stage -> plan file.
    """
    export_dir = Path(export_dir)
    missing = [f"{stage}.onnx" for stage in stages if not (export_dir / f"{stage}.onnx").is_file()]
    if missing:
        raise ExportMissingError(f"{export_dir} has no {', '.join(missing)}; pass a directory written by gimm-export")
    if profile is None:
        profile = TimestepProfile.up_to(_manifest_max_timesteps(export_dir) or TimestepProfile().max)
    if target is None:
        target = compat.current_target(device)
    loaders = engine_loaders(export_dir, profile=profile, build=build, target=target, builder=builder, stages=stages)
    with _on_device(device):
        return {stage: loader() for stage, loader in loaders.items()}


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
