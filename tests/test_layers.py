"""The package's import graph: layers import one way and no module imports itself back through others.

Every ``import`` and ``from ... import`` in ``gimm_trt`` counts, the ones inside functions too (a lazy import
is still a dependency). Layers, lowest first: core; plugins and model; export; engines; runtime; benchmarks
and distributed (both above the runtime); serve (uses distributed's cluster) and diagnostics (the doctor: uses the
runtime and benchmarks' environment); cli.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "gimm_trt"
LAYERS = {  # subpackage or top-level module -> layer; a module may import its own layer and those below
    "core": 0,
    "plugins": 1,
    "model": 1,
    "export": 2,
    "engines": 3,
    "runtime": 4,
    "benchmarks": 5,
    "distributed": 5,
    "serve": 6,
    "diagnostics": 6,  # the doctor runs the runtime, engines and export, and reads benchmarks' environment
    "cli": 7,
    "__init__": 7,  # gimm_trt/__init__.py re-exports the Interpolator
}
ALLOWED_SAME_LAYER = {("plugins", "model"): False, ("model", "plugins"): True}  # the model splats; never the reverse


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set:
    """gimm_trt modules ``path`` imports (absolute names), resolved from relative imports."""
    tree = ast.parse(path.read_text())
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "gimm_trt")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "gimm_trt":
                continue
            for alias in node.names:  # `from . import x` may name a module
                candidate = f"{target}.{alias.name}"
                found.add(candidate if _exists(candidate) else target)
    return found


def _exists(module: str) -> bool:
    path = ROOT.parent.joinpath(*module.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def graph() -> dict:
    return {_module_name(p): {m for m in _imports(p) if m != _module_name(p)} for p in ROOT.rglob("*.py")}


def test_every_subpackage_has_a_layer():
    assert {_layer(m) for m in graph()} <= set(LAYERS)


def test_no_import_goes_up_a_layer():
    upward = []
    for module, imports in graph().items():
        here = _layer(module)
        for target in imports:
            there = _layer(target)
            same_rank = LAYERS[there] == LAYERS[here] and there != here
            if LAYERS[there] > LAYERS[here] or (same_rank and not ALLOWED_SAME_LAYER.get((here, there), False)):
                upward.append(f"{module} -> {target}")
    assert upward == []


def test_no_import_cycles():
    g = graph()
    # package __init__ modules re-export their children; the child importing its package is not a cycle of
    # work, but a child importing a sibling through the package is, so packages stay in the graph
    cycles, state = [], {}

    def visit(node, stack):
        state[node] = "open"
        for nxt in sorted(g.get(node, ())):
            if state.get(nxt) == "open":
                cycles.append(" -> ".join(stack[stack.index(nxt) :] + [nxt]))
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = "done"

    for node in sorted(g):
        if node not in state:
            visit(node, [node])
    assert cycles == []


@pytest.mark.parametrize(
    "source, target, upward",
    [
        ("gimm_trt.export.exporter", "gimm_trt.runtime.frames", True),
        ("gimm_trt.runtime.interpolator", "gimm_trt.export.manifest", False),
        ("gimm_trt.plugins.ops", "gimm_trt.model.gimm", True),
        ("gimm_trt.model.motion", "gimm_trt.plugins.ops", False),
    ],
)
def test_the_rule_itself(source, target, upward):
    here, there = _layer(source), _layer(target)
    same_rank = LAYERS[there] == LAYERS[here] and there != here
    assert (LAYERS[there] > LAYERS[here] or (same_rank and not ALLOWED_SAME_LAYER.get((here, there), False))) == upward
