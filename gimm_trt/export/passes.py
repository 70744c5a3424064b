"""Graph clean-up after the trace, and the step from ``onnx_ir`` to a checked ``onnx.ModelProto``.

``clean`` is the onnxscript optimiser's pass list without its pattern rewriter (quadratic in graph size: it
took minutes on the unrolled flow graph and removed nothing that constant folding does not), with a larger
folding input limit so that weight-only arithmetic (the coordinate MLP's normalised weights) becomes
initializers. Folding never materialises large tensors (``output_size_limit``): coordinate grids at 4K stay
ops, which TensorRT folds itself.
"""

from __future__ import annotations

import contextlib
import logging

__all__ = ["quiet", "clean", "prune", "to_proto", "validate", "op_counts"]

FOLD_INPUT_LIMIT = 1 << 20  # elements: weights of any one layer here
FOLD_OUTPUT_LIMIT = 512 * 512  # elements: the onnxscript default


@contextlib.contextmanager
def quiet(*loggers):
    """Only errors from these loggers: the exporter logs each optional op library it does not find, the folder
    each op it leaves alone."""
    saved = [(logging.getLogger(name), logging.getLogger(name).level) for name in loggers]
    for logger, _ in saved:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for logger, level in saved:
            logger.setLevel(level)


def clean(model, *, steps: int = 2):
    """Inline, fold constants, drop dead nodes, lift constants to initializers, dedupe, CSE (in place)."""
    import onnx_ir as ir
    import onnx_ir.passes.common as common
    from onnxscript.optimizer import _constant_folding

    fold = _constant_folding.FoldConstantsPass(
        shape_inference=True, input_size_limit=FOLD_INPUT_LIMIT, output_size_limit=FOLD_OUTPUT_LIMIT
    )
    pipeline = ir.passes.Sequential(
        common.InlinePass(),
        ir.passes.PassManager(
            [fold, common.RemoveUnusedNodesPass(), common.RemoveUnusedFunctionsPass(), common.RemoveUnusedOpsetsPass()],
            steps=steps,
            early_stop=True,
        ),
        common.RemoveUnusedNodesPass(),
        common.LiftConstantsToInitializersPass(lift_all_constants=True, size_limit=0),
        common.DeduplicateInitializersPass(),
        common.CommonSubexpressionEliminationPass(),
        common.RemoveUnusedNodesPass(),
        common.OutputFixPass(),
        common.NameFixPass(),
    )
    with quiet("onnxscript"):
        pipeline(model)
    return model


def prune(model):
    """Drop nodes and initializers nothing uses (in place)."""
    import onnx_ir.passes.common as common

    common.RemoveUnusedNodesPass()(model)
    return model


def to_proto(model, *, name: str, doc: str = ""):
    """An ``onnx.ModelProto`` of ``model`` with a graph name, producer and doc string."""
    import onnx_ir as ir

    from ..core.version import __version__

    model.graph.name = name
    model.producer_name = "gimm_trt"
    model.producer_version = __version__
    model.doc_string = doc
    return ir.serde.serialize_model(model)


def validate(proto) -> None:
    """``onnx.checker`` with full shape inference; the splat op's schema is registered first."""
    import onnx

    from ..plugins import onnx_node

    onnx_node.register_onnx_schema()
    onnx.checker.check_model(proto, full_check=True)


def op_counts(proto) -> dict:
    """op type -> how many nodes (the main graph; the exporters inline everything there)."""
    counts = {}
    for node in proto.graph.node:
        key = node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}::{node.op_type}"
        counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items()))
