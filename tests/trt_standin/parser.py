"""What TensorRT's ONNX parser does with a node it has no importer for: find a plugin creator and create the plugin.

Follows onnx/onnx-tensorrt (the parser TensorRT 10.9+ ships; ``onnxOpImporters.cpp`` and ``importerUtils.cpp``
at commits dd0a3a9f and fa5aa9f6):

* ``FallbackPluginImporter``: creator = registry.getCreator(op_type, attr ``plugin_version`` (default "1"),
  attr ``plugin_namespace`` (default "")); from TensorRT 10.10 on (its changelog: "Plugin fallback importer now
  also reads its namespace from a Node's domain field") retried with the node's domain as namespace; none is an
  error.
* ``loadFields``: only the fields the creator declares (``getFieldNames``) are passed, each from the node's
  attribute of that name; a STRING attribute becomes a kCHAR field of its bytes plus a NUL (``copyField``:
  "Append \\0 as end of C style string"), length = bytes + 1; STRINGS the same for each string, concatenated;
  INT becomes one kINT32, FLOAT one kFLOAT32, INTS/FLOATS arrays of those; a TENSOR attribute its elements as
  the parser's weight conversion (``convertOnnxWeights``) leaves them: FLOAT, INT8, INT32, FLOAT16, BFLOAT16 as
  they are, DOUBLE cast to kFLOAT32, UINT8 widened to kINT32 (length = element count); an element type that
  conversion lacks (INT16 among them) fails it ("Unable to convert ONNX weights"), others are rejected by
  ``loadFields``; GRAPH(S), SPARSE_TENSOR(S), TENSORS and TYPE_PROTO(S) attributes are rejected.
* ``createPlugin`` (V3 quick creators): name = op type, the namespace found above, phase kBUILD, request
  kSTRICT_AOT if the node has ``aot`` != 0, kSTRICT_JIT if ``aot`` == 0, else from the network's PREFER flags.
"""

import numpy as np

from . import native

DOMAIN_FALLBACK = (10, 10)  # the first release whose parser looks in the node's domain too


def find_creator(registry, node):
    """(creator, namespace) as the parser of the TensorRT that owns ``registry`` finds them."""
    attrs = _attributes(node)
    version = attrs.get("plugin_version", "1")
    namespace = attrs.get("plugin_namespace", "")
    creator = registry.get_creator(node.op_type, version, namespace)
    if creator is None and registry._release >= DOMAIN_FALLBACK:  # "Fallback check to the node's domain"
        namespace = node.domain
        creator = registry.get_creator(node.op_type, version, namespace)
    if creator is None:
        raise LookupError(
            f"Plugin not found, are the plugin name, version, and namespace correct? "
            f"({node.op_type}, {version}, {namespace!r})"
        )
    if getattr(creator, "KIND", None) != native.IPluginCreatorV3Quick.KIND:
        raise TypeError("only quickly-deployable (V3 quick) creators are part of this stand-in")
    return creator, namespace


def plugin_fields(creator, node) -> native.PluginFieldCollection:
    """The field collection ``loadFields`` builds for ``node`` from the fields ``creator`` declares."""
    found = {a.name: a for a in node.attribute}
    fields = []
    for declared in creator.field_names:
        attr = found.get(declared.name)
        if attr is None:  # the parser warns and leaves the field out
            continue
        data, type_ = _field_data(attr)
        fields.append(native.PluginField(declared.name, data, type_))
    return native.PluginFieldCollection(fields)


_TENSOR_FIELDS = {  # element type after convertOnnxWeights -> (numpy type, PluginFieldType) (loadFields' TENSOR case)
    "FLOAT": (np.float32, native.PluginFieldType.FLOAT32),
    "DOUBLE": (np.float32, native.PluginFieldType.FLOAT32),  # the weights are cast to FLOAT first
    "INT8": (np.int8, native.PluginFieldType.INT8),
    "UINT8": (np.int32, native.PluginFieldType.INT32),  # widened to INT32 first
    "INT32": (np.int32, native.PluginFieldType.INT32),
    "FLOAT16": (np.float16, native.PluginFieldType.FLOAT16),
    "BFLOAT16": (None, native.PluginFieldType.BF16),
}
_UNCONVERTED = ("INT16", "UINT16", "UINT32", "UINT64", "COMPLEX64", "COMPLEX128")  # no case in convertOnnxWeights


def _field_data(attr):
    """(buffer, PluginFieldType) of one attribute, as ``copyField`` lays it out."""
    import onnx

    kind = attr.type
    if kind == onnx.AttributeProto.STRING:
        return np.frombuffer(attr.s + b"\0", np.int8), native.PluginFieldType.CHAR
    if kind == onnx.AttributeProto.STRINGS:
        return np.frombuffer(b"".join(s + b"\0" for s in attr.strings), np.int8), native.PluginFieldType.CHAR
    if kind == onnx.AttributeProto.INT:
        return np.array([attr.i], np.int32), native.PluginFieldType.INT32
    if kind == onnx.AttributeProto.FLOAT:
        return np.array([attr.f], np.float32), native.PluginFieldType.FLOAT32
    if kind == onnx.AttributeProto.INTS:
        return np.array(attr.ints, np.int32), native.PluginFieldType.INT32
    if kind == onnx.AttributeProto.FLOATS:
        return np.array(attr.floats, np.float32), native.PluginFieldType.FLOAT32
    if kind == onnx.AttributeProto.TENSOR:
        element = onnx.TensorProto.DataType.Name(attr.t.data_type)
        if element == "STRING":  # a kCHAR field in TensorRT, laid out as ShapedWeights holds strings
            raise NotImplementedError("string tensor attributes are not part of this stand-in")
        if element in _UNCONVERTED:
            raise RuntimeError("Unable to convert ONNX weights")
        if element not in _TENSOR_FIELDS:
            raise TypeError(f"Tensor type: {element} is unsupported in plugin fields.")
        values = onnx.numpy_helper.to_array(attr.t).reshape(-1)
        kind, field_type = _TENSOR_FIELDS[element]
        if element == "BFLOAT16":  # numpy has no bfloat16: the raw 2-byte words
            values = np.frombuffer(attr.t.raw_data, np.uint16) if attr.t.raw_data else values.view(np.uint16)
        else:
            values = values.astype(kind)
        return np.ascontiguousarray(values), field_type
    name = onnx.AttributeProto.AttributeType.Name(kind)
    raise TypeError(f"Attributes of type: {name} are unsupported as plugin fields.")


def creation_request(node, prefer_aot=False, prefer_jit=False):
    attrs = _attributes(node)
    request = native.QuickPluginCreationRequest
    if "aot" in attrs:  # "Node-level specifications override network-level preferences"
        return request.STRICT_AOT if attrs["aot"] else request.STRICT_JIT
    if prefer_aot and prefer_jit:
        raise ValueError("PREFER_AOT_PYTHON_PLUGINS and PREFER_JIT_PYTHON_PLUGINS cannot both be set")
    return request.PREFER_JIT if prefer_jit else request.PREFER_AOT if prefer_aot else request.UNKNOWN


def import_node(registry, node, **prefer):
    """The plugin the parser would add for ``node`` (what ``createPlugin`` returns)."""
    creator, namespace = find_creator(registry, node)
    return creator.create_plugin(
        node.op_type,
        namespace,
        plugin_fields(creator, node),
        native.TensorRTPhase.BUILD,
        creation_request(node, **prefer),
    )


def _attributes(node) -> dict:
    import onnx

    values = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    return {name: v.decode() if isinstance(v, bytes) else v for name, v in values.items()}
