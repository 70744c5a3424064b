"""Every ``scripts/*.py`` runs with ``--help``: exit 0, a description, and each of its options named."""

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted((ROOT / "scripts").glob("*.py"))


def _declared_options(path: Path) -> list:
    """The first argument of every ``add_argument`` call: the options (or positionals) the script declares."""
    calls = [n for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.Call)]
    return [
        c.args[0].value
        for c in calls
        if getattr(c.func, "attr", None) == "add_argument" and c.args and isinstance(c.args[0], ast.Constant)
    ]


def test_the_scripts_are_there():
    assert {p.name for p in SCRIPTS} >= {"measure_rss.py", "ray_bench.py", "stream_memory.py"}


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_help(script):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT)] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    proc = subprocess.run(
        [sys.executable, str(script), "--help"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    options = _declared_options(script)
    assert options, f"{script.name} declares no options"
    for option in options:
        assert option in proc.stdout, f"{script.name} --help does not name {option}"
    assert f"scripts/{script.name}" in proc.stdout  # the usage example of its docstring
