"""What TensorRT's ONNX parser does with a node it has no importer for: find a plugin creator and create the plugin.

Follows onnx/onnx-tensorrt (the parser TensorRT 10.9+ ships; ``onnxOpImporters.cpp`` and ``importerUtils.cpp``
at commits dd0a3a9f and fa5aa9f6):

* ``FallbackPluginImporter``: creator = registry.getCreator(op_type, attr ``plugin_version`` (default "1"),
  attr ``plugin_namespace`` (default "")), retried with the node's domain as namespace; none is an error.
* ``loadFields``: only the fields the creator declares (``getFieldNames``) are passed, each from the node's
  attribute of that name; a STRING attribute becomes a kCHAR field of its bytes plus a NUL (``copyField``:
  "Append \\0 as end of C style string"), length = bytes + 1; INT becomes one kINT32, FLOAT one kFLOAT32,
  INTS/FLOATS arrays of those; other attribute types are rejected.
* ``createPlugin`` (V3 quick creators): name = op type, the namespace found above, phase kBUILD, request
  kSTRICT_AOT if the node has ``aot`` != 0, kSTRICT_JIT if ``aot`` == 0, else from the network's PREFER flags.
"""

import numpy as np

from . import native


def find_creator(registry, node):
    attrs = _attributes(node)
    version = attrs.get("plugin_version", "1")
    namespace = attrs.get("plugin_namespace", "")
    creator = registry.get_creator(node.op_type, version, namespace)
    if creator is None:  # "Fallback check to the node's domain"
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
    import onnx

    found = {a.name: a for a in node.attribute}
    fields = []
    for declared in creator.field_names:
        attr = found.get(declared.name)
        if attr is None:  # the parser warns and leaves the field out
            continue
        kind = attr.type
        if kind == onnx.AttributeProto.STRING:
            data, type_ = np.frombuffer(attr.s + b"\0", np.int8), native.PluginFieldType.CHAR
        elif kind == onnx.AttributeProto.INT:
            data, type_ = np.array([attr.i], np.int32), native.PluginFieldType.INT32
        elif kind == onnx.AttributeProto.FLOAT:
            data, type_ = np.array([attr.f], np.float32), native.PluginFieldType.FLOAT32
        elif kind == onnx.AttributeProto.INTS:
            data, type_ = np.array(attr.ints, np.int32), native.PluginFieldType.INT32
        elif kind == onnx.AttributeProto.FLOATS:
            data, type_ = np.array(attr.floats, np.float32), native.PluginFieldType.FLOAT32
        else:
            raise TypeError(f"Attributes of type {kind} are unsupported as plugin fields.")
        fields.append(native.PluginField(declared.name, data, type_))
    return native.PluginFieldCollection(fields)


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
