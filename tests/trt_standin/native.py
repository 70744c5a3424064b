"""The native names of TensorRT's Python bindings that its ``tensorrt.plugin`` package uses, in plain Python.

Written from NVIDIA/TensorRT at the 11.1 OSS release: ``include/NvInferRuntime.h``, ``NvInferRuntimeBase.h``,
``NvInferRuntimeCommon.h``, ``NvInferPluginBase.h``, ``NvInferRuntimePlugin.h``, ``impl/NvInferPythonPlugin.h``
and the bindings ``python/src/infer/pyPlugin.cpp``, ``pyFoundationalTypes.cpp``, ``pyGraph.cpp``,
``python/src/pyTensorRT.cpp``. Where the bindings would accept something, so does this; where they reject it
(a pybind11 type check, a bounds check, a NULL return) this raises. Nothing here is kinder than TensorRT.

``module(version)`` returns a fresh ``tensorrt`` module object each call, so no state outlives a test.
"""

import enum
import types

import numpy as np

# --- enums (values from the headers; pybind11 enums without py::arithmetic never equal an int) -----------------


class DataType(enum.Enum):  # NvInferRuntimeBase.h:151-197; pyFoundationalTypes.cpp:179 (no py::arithmetic)
    FLOAT = 0
    HALF = 1
    INT8 = 2
    INT32 = 3
    BOOL = 4
    UINT8 = 5
    FP8 = 6
    BF16 = 7
    INT64 = 8
    INT4 = 9
    FP4 = 10
    E8M0 = 11


class TensorFormat(enum.IntEnum):  # NvInferRuntime.h:1420-1525; pyGraph.cpp:392 (py::arithmetic)
    LINEAR = 0
    CHW2 = 1
    HWC8 = 2
    CHW4 = 3
    CHW16 = 4
    CHW32 = 5
    DHWC8 = 6
    CDHW32 = 7
    HWC = 8
    DLA_LINEAR = 9
    DLA_HWC4 = 10
    HWC16 = 11
    DHWC = 12


class PluginFieldType(enum.Enum):  # NvInferPluginBase.h:36-66; pyPlugin.cpp:3517 (no py::arithmetic)
    FLOAT16 = 0
    FLOAT32 = 1
    FLOAT64 = 2
    INT8 = 3
    INT16 = 4
    INT32 = 5
    CHAR = 6
    DIMS = 7
    UNKNOWN = 8
    BF16 = 9
    INT64 = 10
    FP8 = 11
    INT4 = 12
    FP4 = 13


class DimensionOperation(enum.IntEnum):  # NvInferRuntime.h:177-188
    SUM = 0
    PROD = 1
    MAX = 2
    MIN = 3
    SUB = 4
    EQUAL = 5
    LESS = 6
    FLOOR_DIV = 7
    CEIL_DIV = 8


class TensorRTPhase(enum.IntEnum):  # NvInferPluginBase.h:115-121
    BUILD = 0
    RUNTIME = 1


class PluginCapabilityType(enum.IntEnum):  # NvInferPluginBase.h:128-136
    CORE = 0
    BUILD = 1
    RUNTIME = 2


class QuickPluginCreationRequest(enum.IntEnum):  # impl/NvInferPythonPlugin.h:124-136
    UNKNOWN = 0
    PREFER_JIT = 1
    PREFER_AOT = 2
    STRICT_JIT = 3
    STRICT_AOT = 4


class PluginArgType(enum.IntEnum):  # impl/NvInferPythonPlugin.h:37-41
    INT = 0


class PluginArgDataType(enum.IntEnum):  # impl/NvInferPythonPlugin.h:45-53
    INT8 = 0
    INT16 = 1
    INT32 = 2


def _check(value, kind, what):
    """pybind11 converts only instances of the bound class: anything else is a TypeError."""
    if not isinstance(value, kind):
        raise TypeError(f"{what}: incompatible type {type(value).__name__}, expected {kind.__name__}")
    return value


# --- shapes ---------------------------------------------------------------------------------------------------


class Dims:
    """``trt.Dims``: at most MAX_DIMS int64 extents (NvInferRuntimeBase.h:225; pyFoundationalTypes.cpp:68-122)."""

    MAX_DIMS = 8

    def __init__(self, shape=()):
        if isinstance(shape, (int, np.integer)):
            raise TypeError("Dims(shape): a list or tuple of ints, not an int")
        shape = [int(d) for d in shape]
        if len(shape) > self.MAX_DIMS:
            raise ValueError(f"Input length {len(shape)}. Max expected length is {self.MAX_DIMS}")
        self._d = shape

    def __len__(self):
        return len(self._d)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return tuple(self._d[index])
        return self._d[_index(index, len(self._d))]

    def __setitem__(self, index, value):
        self._d[_index(index, len(self._d))] = int(value)

    def __iter__(self):
        return iter(list(self._d))

    def __eq__(self, other):
        return isinstance(other, (Dims, list, tuple)) and list(self) == list(other)

    def __repr__(self):
        return str(tuple(self._d))


def _index(index, size):
    """pyPlugin.cpp:3207-3218, pyFoundationalTypes.cpp:99-122: negative indices wrap once, then bounds check."""
    at = index + size if index < 0 else index
    if not 0 <= at < size:
        raise IndexError(f"index {index} out of range for {size} dimensions")
    return at


class IDimensionExpr:
    """A node of TensorRT's shape-expression graph (NvInferRuntime.h:216-263).

    ``get_constant_value`` of a non-constant returns INT64 min, as the header says. ``_symbol`` and ``_value``
    are for tests only (TensorRT resolves symbols from the optimisation profile itself).
    """

    def __init__(self, constant=None, symbol=None, op=None, args=()):
        self._constant, self._symbol, self._op, self._args = constant, symbol, op, args

    def is_constant(self) -> bool:
        return self._constant is not None

    def get_constant_value(self) -> int:
        return self._constant if self._constant is not None else -(2**63)  # NvInferRuntime.h:241-247

    def is_size_tensor(self) -> bool:
        return False

    def _value(self, env: dict) -> int:
        if self._constant is not None:
            return self._constant
        if self._symbol is not None:
            return env[self._symbol]
        return _apply(self._op, *(a._value(env) for a in self._args))


def _apply(op, a, b):
    """DimensionOperation semantics, NvInferRuntime.h:179-187 (EQUAL and LESS yield 1 or 0)."""
    if op is DimensionOperation.SUM:
        return a + b
    if op is DimensionOperation.PROD:
        return a * b
    if op is DimensionOperation.MAX:
        return max(a, b)
    if op is DimensionOperation.MIN:
        return min(a, b)
    if op is DimensionOperation.SUB:
        return a - b
    if op is DimensionOperation.EQUAL:
        return int(a == b)
    if op is DimensionOperation.LESS:
        return int(a < b)
    if op is DimensionOperation.FLOOR_DIV:
        return a // b
    return -(-a // b)  # CEIL_DIV


class IExprBuilder:
    """``trt.IExprBuilder`` (NvInferRuntime.h:267-310): constants and binary operations, folded when both
    operands are build-time constants. ``_symbol(name)`` stands for a network input's dynamic extent."""

    def constant(self, value: int) -> IDimensionExpr:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise TypeError(f"constant(): incompatible argument {value!r}, expected int")
        return IDimensionExpr(constant=int(value))

    def operation(self, op, first, second):
        if not isinstance(op, DimensionOperation):
            raise TypeError(f"operation(): incompatible op {op!r}")
        _check(first, IDimensionExpr, "operation() first")
        _check(second, IDimensionExpr, "operation() second")
        if first.is_constant() and second.is_constant():
            if op in (DimensionOperation.FLOOR_DIV, DimensionOperation.CEIL_DIV) and second._constant == 0:
                raise ZeroDivisionError("dimension expression divides by zero")
            return IDimensionExpr(constant=_apply(op, first._constant, second._constant))
        return IDimensionExpr(op=op, args=(first, second))

    def declare_size_tensor(self, output_index, opt, upper):
        raise NotImplementedError("size tensors are not part of this stand-in")

    def _symbol(self, name: str) -> IDimensionExpr:
        return IDimensionExpr(symbol=name)


class DimsExprs:
    """``trt.DimsExprs`` (pyPlugin.cpp:3178-3218, 3469-3478): built from a length or a list; every item an
    IDimensionExpr."""

    def __init__(self, items=0):
        if isinstance(items, int):
            if items > Dims.MAX_DIMS:
                raise ValueError(f"Input length {items}. Max expected length is {Dims.MAX_DIMS}")
            self._d = [None] * items
        else:
            items = [_check(e, IDimensionExpr, "DimsExprs item") for e in items]
            if len(items) > Dims.MAX_DIMS:
                raise ValueError(f"Input length {len(items)}. Max expected length is {Dims.MAX_DIMS}")
            self._d = items

    def __len__(self):
        return len(self._d)

    def __getitem__(self, index):
        return self._d[_index(index, len(self._d))]

    def __setitem__(self, index, expr):
        self._d[_index(index, len(self._d))] = _check(expr, IDimensionExpr, "DimsExprs item")


# --- tensor descriptions --------------------------------------------------------------------------------------


class PluginTensorDesc:
    """``trt.PluginTensorDesc`` (NvInferRuntimePlugin.h:72-82; pyPlugin.cpp:3502-3507)."""

    def __init__(self):
        self._dims, self._type, self._format, self.scale = Dims(), DataType.FLOAT, TensorFormat.LINEAR, 0.0

    dims = property(
        lambda self: self._dims, lambda self, v: setattr(self, "_dims", v if isinstance(v, Dims) else Dims(v))
    )
    type = property(
        lambda self: self._type, lambda self, v: setattr(self, "_type", _check(v, DataType, "PluginTensorDesc.type"))
    )
    format = property(
        lambda self: self._format,
        lambda self, v: setattr(self, "_format", _check(v, TensorFormat, "PluginTensorDesc.format")),
    )


class DynamicPluginTensorDesc:
    """``trt.DynamicPluginTensorDesc`` (pyPlugin.cpp:3509-3515): desc plus the profile's min/opt/max extents."""

    def __init__(self):
        self.desc, self.min, self.opt, self.max = PluginTensorDesc(), Dims(), Dims(), Dims()


class ITensor:
    """A network tensor; only its type matters to ``tensorrt.plugin`` (isinstance checks)."""


# --- plugin fields --------------------------------------------------------------------------------------------

_FIELD_DTYPES = {  # pyPlugin.cpp:3541-3566: what PluginField.data returns for each type
    PluginFieldType.INT32: np.int32,
    PluginFieldType.UNKNOWN: np.int8,
    PluginFieldType.INT8: np.int8,
    PluginFieldType.INT16: np.int16,
    PluginFieldType.FLOAT32: np.float32,
    PluginFieldType.FLOAT64: np.float64,
    PluginFieldType.INT64: np.int64,
    PluginFieldType.CHAR: np.int8,  # `char` is signed on x86-64 Linux: pybind11 makes it int8
}


class PluginField:
    """``trt.PluginField`` (NvInferPluginBase.h:75-96; pyPlugin.cpp:2955-2964, 3533-3575).

    The constructor takes any buffer and records its item count as ``size``; ``data`` reads ``size`` items
    of the field's type back from those bytes. So a kCHAR field holds exactly the bytes it was given: a NUL
    the producer appended (TensorRT's ONNX parser does, see ``parser.py``) comes back as a 0 item.
    """

    def __init__(self, name="", data=None, type=PluginFieldType.UNKNOWN):
        _check(type, PluginFieldType, "PluginField type")
        self.name, self.type = str(name), type
        if data is None:
            self._bytes, self.size = b"", 0
        else:
            view = memoryview(data)
            self._bytes, self.size = view.tobytes(), view.nbytes // view.itemsize

    @property
    def data(self):
        dtype = _FIELD_DTYPES.get(self.type)
        if dtype is None:
            raise AttributeError("No known conversion for returning data from PluginField")
        # reading past the buffer would be undefined behaviour in TensorRT: an error here
        return np.frombuffer(self._bytes, dtype=dtype, count=self.size).copy()


class PluginFieldCollection(list):
    """``trt.PluginFieldCollection``: a bound ``std::vector<PluginField>`` (pyTensorRT.cpp:48)."""

    def __init__(self, fields=()):
        super().__init__(_check(f, PluginField, "PluginFieldCollection item") for f in fields)


# --- symbolic kernel arguments (AOT plugins) ------------------------------------------------------------------


class ISymExpr:
    """``trt.ISymExpr`` (impl/NvInferPythonPlugin.h:56-66; pyPlugin.cpp:3919-3923): three write-only
    properties, read back by TensorRT (here: ``_read``)."""

    def __init__(self):
        self._type = self._dtype = self._expr = None

    def _set(name, kind):
        def setter(self, value):
            setattr(self, name, _check(value, kind, f"ISymExpr.{name[1:]}"))

        def getter(self):
            raise AttributeError("unreadable attribute")  # pybind11 def_property(..., nullptr, setter)

        return property(getter, setter)

    type = _set("_type", PluginArgType)
    dtype = _set("_dtype", PluginArgDataType)
    expr = _set("_expr", IDimensionExpr)
    del _set

    def _read(self):
        if None in (self._type, self._dtype, self._expr):
            raise RuntimeError("ISymExpr read before type, dtype and expr were set")
        return self._type, self._dtype, self._expr


class ISymExprs:
    """``trt.ISymExprs``: the extra kernel arguments TensorRT asks for (impl/NvInferPythonPlugin.h:81-118)."""

    def __init__(self):
        self._items = []

    @property
    def nbSymExprs(self):  # noqa: N802 (TensorRT's name)
        return len(self._items)

    @nbSymExprs.setter
    def nbSymExprs(self, count):  # noqa: N802
        self._items = [None] * int(count)

    def __len__(self):
        return len(self._items)

    def __getitem__(self, index):
        return self._items[index]

    def __setitem__(self, index, expr):
        if not 0 <= index < len(self._items):  # setSymExpr returns false out of range: an error here
            raise IndexError(f"extra argument {index} out of range ({len(self._items)} declared)")
        self._items[index] = _check(expr, ISymExpr, "ISymExprs item")


class KernelLaunchParams:
    """``trt.KernelLaunchParams`` (IKernelLaunchParams, impl/NvInferPythonPlugin.h:139-266; pyPlugin.cpp:3902-3910):
    every field an ISymExpr (setGridX(ISymExpr*) ...)."""

    FIELDS = ("grid_x", "grid_y", "grid_z", "block_x", "block_y", "block_z", "shared_mem")

    def __init__(self):
        object.__setattr__(self, "_values", {})

    def __setattr__(self, name, value):
        if name not in self.FIELDS:
            raise AttributeError(f"KernelLaunchParams has no attribute {name!r}")
        self._values[name] = _check(value, ISymExpr, f"KernelLaunchParams.{name}")

    def __getattr__(self, name):
        if name in self.FIELDS:
            return self._values.get(name)
        raise AttributeError(name)


# --- plugins and creators -------------------------------------------------------------------------------------


class IPluginV3:
    """Base of every V3 plugin; the plugin answers get_capability_interface (NvInferRuntime.h, IPluginV3)."""

    def __init__(self):
        pass


class _Capability:
    KIND = ""

    def __init__(self):
        pass


class IPluginV3QuickCore(_Capability):
    KIND = "PLUGIN_V3QUICK_CORE"  # impl/NvInferPythonPlugin.h:281


class IPluginV3QuickBuild(_Capability):
    KIND = "PLUGIN_V3QUICK_BUILD"  # impl/NvInferPythonPlugin.h:296


class IPluginV3QuickAOTBuild(IPluginV3QuickBuild):
    KIND = "PLUGIN_V3QUICKAOT_BUILD"  # impl/NvInferPythonPlugin.h:409


class IPluginV3QuickRuntime(_Capability):
    KIND = "PLUGIN_V3QUICK_RUNTIME"  # impl/NvInferPythonPlugin.h:469


class IPluginCreatorV3Quick:
    """``trt.IPluginCreatorV3Quick`` (impl/NvInferPythonPlugin.h:508-513; pyPlugin.cpp:2662-2785, 3803). TensorRT reads
    ``name``, ``plugin_version``, ``plugin_namespace`` and ``field_names``; an unset one is an error."""

    KIND = "PLUGIN CREATOR_V3QUICK"

    def __init__(self):
        pass


class IPluginRegistry:
    """The plugin registry (NvInferRuntimeCommon.h:148-200; pyPlugin.cpp:3096-3121, 3836-3870).

    Creators are keyed by (name, version, namespace). ``register_creator`` returns False when that key is
    taken; ``get_creator`` returns None when it is not. ``_release`` is the (major, minor) of the TensorRT that
    owns the registry, for the stand-in of its ONNX parser (``parser.py``), which differs between releases.
    """

    def __init__(self, release: tuple):
        self._creators = {}
        self._release = tuple(release)

    def register_creator(self, creator, plugin_namespace=""):
        key = (creator.name, creator.plugin_version, str(plugin_namespace))
        if key in self._creators:
            return False
        self._creators[key] = creator
        return True

    def deregister_creator(self, creator):
        for key, known in list(self._creators.items()):
            if known is creator:
                del self._creators[key]
                return True
        return False

    def get_creator(self, type, version, plugin_namespace=""):
        return self._creators.get((type, version, plugin_namespace))

    @property
    def all_creators(self):
        return list(self._creators.values())


class Logger:
    INTERNAL_ERROR, ERROR, WARNING, INFO, VERBOSE = range(5)

    def __init__(self, min_severity=WARNING):
        self.min_severity = min_severity
        self.messages = []

    def log(self, severity, msg):
        self.messages.append((severity, msg))


class Builder:
    """Present because every TensorRT has one; nothing native exists here to build with."""

    def __init__(self, logger):
        raise RuntimeError("the TensorRT stand-in has no builder: engines need native TensorRT")


def nptype(trt_type):
    """``trt.nptype`` (the bindings wheel's __init__.py): numpy type of a DataType, TypeError otherwise."""
    mapping = {
        DataType.FLOAT: np.float32,
        DataType.HALF: np.float16,
        DataType.INT8: np.int8,
        DataType.INT32: np.int32,
        DataType.INT64: np.int64,
        DataType.BOOL: np.bool_,
        DataType.UINT8: np.uint8,
    }
    if trt_type in mapping:
        return mapping[trt_type]
    raise TypeError("Could not resolve TensorRT datatype to an equivalent numpy datatype.")


_NAMES = (
    "DataType",
    "TensorFormat",
    "PluginFieldType",
    "DimensionOperation",
    "TensorRTPhase",
    "PluginCapabilityType",
    "QuickPluginCreationRequest",
    "PluginArgType",
    "PluginArgDataType",
    "Dims",
    "IDimensionExpr",
    "IExprBuilder",
    "DimsExprs",
    "PluginTensorDesc",
    "DynamicPluginTensorDesc",
    "ITensor",
    "PluginField",
    "PluginFieldCollection",
    "ISymExpr",
    "ISymExprs",
    "KernelLaunchParams",
    "IPluginV3",
    "IPluginV3QuickCore",
    "IPluginV3QuickBuild",
    "IPluginV3QuickAOTBuild",
    "IPluginV3QuickRuntime",
    "IPluginCreatorV3Quick",
    "IPluginRegistry",
    "Logger",
    "Builder",
    "nptype",
)


def module(version: str) -> types.ModuleType:
    """A fresh ``tensorrt`` module of the stand-in, claiming ``version``, with its own plugin registry."""
    trt = types.ModuleType("tensorrt")
    trt.__version__ = version
    trt.__path__ = []  # a package, so ``tensorrt.plugin`` can be its submodule
    for name in _NAMES:
        setattr(trt, name, globals()[name])
    # pyFoundationalTypes.cpp:194-201: trt.float32 is DataType.FLOAT, and so on
    trt.float32, trt.float16, trt.bfloat16 = DataType.FLOAT, DataType.HALF, DataType.BF16
    trt.int8, trt.int32, trt.int64 = DataType.INT8, DataType.INT32, DataType.INT64
    trt.bool, trt.uint8, trt.fp8, trt.int4, trt.fp4 = (
        DataType.BOOL,
        DataType.UINT8,
        DataType.FP8,
        DataType.INT4,
        DataType.FP4,
    )
    registry = IPluginRegistry(tuple(int(p) for p in version.split(".")[:2]))
    trt.get_plugin_registry = lambda: registry  # pyPlugin.cpp:3873-3882: one registry per module
    return trt
