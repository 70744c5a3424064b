"""The README's Python examples, run as they are (in order, one namespace, in a temporary directory)."""

import os
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
SERVICE = "# needs a running gimm-serve"


def python_blocks() -> list:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_the_readme_has_python_examples():
    assert len(python_blocks()) >= 3


def test_the_readme_examples_run(tmp_path, capsys):
    namespace = {"__name__": "readme"}
    cwd = os.getcwd()
    os.chdir(tmp_path)  # the examples write ./exports
    try:
        for i, block in enumerate(python_blocks()):
            code = compile(block, f"README.md python block {i + 1}", "exec")
            if not block.startswith(SERVICE):  # a client needs a service: compiled, not run
                exec(code, namespace)
    finally:
        os.chdir(cwd)
    printed = capsys.readouterr().out.splitlines()
    # what the comments in the examples say they print
    assert printed[:2] == ["torch.Size([3, 3, 128, 224])", "9"]
    assert printed[2].startswith("img0 and img1 differ in size")
    assert printed[3] == "torch.Size([1, 3, 128, 224])"


def test_the_quick_start_says_which_extras_video_workers_and_the_service_need():
    from gimm_trt.core.deps import EXTRAS

    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    text = README.read_text()
    start = text.index("## Quick start")
    clauses = text[start : text.index("\n## ", start)].split(";")
    extras = tomllib.loads((README.parent / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    # each by the module it imports, so the extra named is the one that brings that module
    for what, module in (("video files", "av"), ("--workers", "ray"), ("gimm-serve", "ray")):
        (clause,) = [c for c in clauses if what in c]
        assert f"`[{EXTRAS[module]}]`" in clause, clause
        assert any(dep.split("[")[0].split(">")[0].split("=")[0] == module for dep in extras[EXTRAS[module]])
