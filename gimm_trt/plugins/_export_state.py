"""Which splat form an export emits; set only by ``onnx_node.export_splat_mode`` (kept apart so ``splat``
can read it without importing onnx)."""

form = None  # None | "plugin" | "portable"
aot = True  # the plugin node asks TensorRT for the ahead-of-time kernel
emit = None  # while exporting: ``(x, flow, metric, mode) -> tensor`` for the chosen form
