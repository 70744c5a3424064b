"""TensorRT's own ``tensorrt.plugin`` package, run over a test-only stand-in for its native bindings.

The PyPI wheel ``tensorrt-cu12-bindings`` ships ``tensorrt_bindings/plugin/`` as plain Python; only its
``tensorrt.so`` needs TensorRT's native libraries. ``native`` provides the ~30 native names that package uses,
written from TensorRT's headers and bindings; ``parser`` does what TensorRT's ONNX parser does with our node;
``builder`` makes the calls an engine build and an engine run make.

``plugin_layers()`` finds the wheel's plugin packages: the installed wheel's and those of wheels unpacked into
the folders listed in ``GIMM_TRT_PLUGIN_LAYERS`` (os.pathsep-separated; each holds ``tensorrt_bindings/``, e.g.
``pip install --no-deps --target DIR tensorrt-cu12-bindings==10.16.1.11``, as ``.ci/plugin-layers`` does). A listed
folder without one is an error, so a run that was given a layer never skips it. Nothing is copied: ``installed``
imports the package from where the wheel put it, as ``tensorrt.plugin`` over the stand-in ``tensorrt``.
"""

import contextlib
import importlib.util
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from . import native

ENV = "GIMM_TRT_PLUGIN_LAYERS"


@dataclass(frozen=True)
class Layer:
    """One wheel's ``tensorrt_bindings/plugin`` folder and the TensorRT version of that wheel."""

    version: str
    path: Path

    @property
    def release(self) -> tuple:
        """(major, minor): ``(10, 16)`` for 10.16.1.11."""
        return tuple(int(p) for p in self.version.split(".")[:2])

    @property
    def major(self) -> int:
        return self.release[0]


def plugin_layers() -> list:
    roots = []
    spec = importlib.util.find_spec("tensorrt_bindings")  # finds without importing (tensorrt.so would fail)
    if spec is not None and spec.submodule_search_locations:
        roots += [Path(p) for p in spec.submodule_search_locations]
    listed = [Path(folder) / "tensorrt_bindings" for folder in filter(None, os.environ.get(ENV, "").split(os.pathsep))]
    layers = []
    for root in roots + listed:
        layer = _layer(root)
        if layer is None and root in listed:
            raise FileNotFoundError(f"{ENV} lists {root.parent}, which holds no tensorrt_bindings wheel with a plugin")
        if layer is not None and layer not in layers:
            layers.append(layer)
    return layers


def _layer(root: Path):
    """The Layer of an unpacked ``tensorrt_bindings`` folder, None when it is not one with a plugin package."""
    init = root / "__init__.py"
    match = re.search(r'^__version__\s*=\s*"([^"]+)"', init.read_text(), re.M) if init.is_file() else None
    if match and (root / "plugin" / "__init__.py").is_file():
        return Layer(match.group(1), root / "plugin")
    return None


@contextlib.contextmanager
def installed(layer: Layer, dependents=()):
    """``sys.modules`` with the stand-in as ``tensorrt`` and ``layer`` as ``tensorrt.plugin`` for the block.

    Afterwards the ``tensorrt*`` modules that were there before are back, and the modules named in
    ``dependents`` (those that bound themselves to the stand-in, such as our plugin module) are gone.
    """

    def ours(name):
        return name == "tensorrt" or name.startswith("tensorrt.") or name in dependents

    saved = {n: m for n, m in sys.modules.items() if ours(n)}
    for name in saved:
        del sys.modules[name]
    trt = native.module(layer.version)
    sys.modules["tensorrt"] = trt
    spec = importlib.util.spec_from_file_location(
        "tensorrt.plugin", layer.path / "__init__.py", submodule_search_locations=[str(layer.path)]
    )
    plugin = importlib.util.module_from_spec(spec)
    sys.modules["tensorrt.plugin"] = plugin
    trt.plugin = plugin
    try:
        spec.loader.exec_module(plugin)
        yield trt, plugin
    finally:
        for name in [n for n in sys.modules if ours(n)]:
            module = sys.modules.pop(name)
            parent, _, child = name.rpartition(".")
            if parent in sys.modules and getattr(sys.modules[parent], child, None) is module:
                delattr(sys.modules[parent], child)
        sys.modules.update(saved)
