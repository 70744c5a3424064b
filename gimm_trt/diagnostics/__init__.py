"""gimm-doctor: is this install sound? Versions, then each path against the PyTorch reference, and the export's
graphs against the ONNX parsers of TensorRT and TensorRT-RTX.

    from gimm_trt.diagnostics import doctor

Modules: ``doctor`` (the checks in order, running them, the table and the JSON), ``context`` (what the checks
share), ``splat_checks``, ``frame_checks`` (whole models against torch), ``parser_checks`` and ``rtx_parser``
(the real TensorRT-RTX parser, node by node).
"""
