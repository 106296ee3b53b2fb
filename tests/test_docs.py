"""Docs that cannot drift: README.md's Python examples run from a fresh copy of the tracked tree, every keyword
argument it passes to a public mmscore callable exists, and mmscore/README.md names every module."""

import ast
import inspect
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
PYTHON_BLOCKS = re.findall(r"```python\n(.*?)```", README, re.S)


def _public_callables() -> dict:
    import mmscore
    from mmscore.report import build_report, write_review_queue
    from mmscore.scorer import Scorer

    return {
        "Scorer": Scorer.__init__,
        "score_file": Scorer.score_file,
        "score_frame": Scorer.score_frame,
        "score_arrow": Scorer.score_arrow,
        "run": Scorer.run,
        "train": mmscore.train,
        "nli_probabilities": mmscore.nli_probabilities,
        "write_review_queue": write_review_queue,
        "build_report": build_report,
    }


def _code_in_readme() -> list[str]:
    """Python blocks, and inline code spans that parse as Python and call something."""
    spans = [" ".join(s.split()) for s in re.findall(r"`([^`]+?\([^`]*\))`", README)]  # a span may wrap lines
    return PYTHON_BLOCKS + spans


def _calls(code: str):
    try:
        tree = ast.parse(code.replace("...", "None"))
    except SyntaxError:
        return
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            yield name, [k.arg for k in node.keywords if k.arg]


def test_readme_has_python_examples():
    assert PYTHON_BLOCKS and any("nli_probabilities" in block for block in PYTHON_BLOCKS)


def test_every_keyword_the_readme_passes_exists_in_the_signature():
    callables, checked = _public_callables(), 0
    for code in _code_in_readme():
        for name, keywords in _calls(code):
            if name not in callables:
                continue
            parameters = inspect.signature(callables[name]).parameters
            takes_any = any(p.kind is p.VAR_KEYWORD for p in parameters.values())
            for keyword in keywords:
                assert takes_any or keyword in parameters, f"README passes {keyword}= to {name}(), which has no such"
                checked += 1
    assert checked >= 5  # the check saw the README's calls


def test_the_package_map_names_every_module():
    package_map = (ROOT / "mmscore" / "README.md").read_text()
    missing = [
        str(p.relative_to(ROOT))
        for p in sorted((ROOT / "mmscore").rglob("*.py"))
        if p.stem != "__init__" and not re.search(rf"\b{re.escape(p.stem)}\b", package_map)
    ]
    assert not missing, f"mmscore/README.md does not name: {missing}"


@pytest.mark.slow
@pytest.mark.parametrize("block", range(len(PYTHON_BLOCKS)))
def test_each_readme_python_block_runs_from_a_fresh_copy(tmp_path, block):
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout.split(b"\0")
    clone = tmp_path / "clone"
    for name in filter(None, files):
        source = ROOT / name.decode()
        if source.is_file():
            (clone / name.decode()).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, clone / name.decode())
    env = {**os.environ, "PYTHONPATH": str(clone)}
    run = subprocess.run([sys.executable, "-c", PYTHON_BLOCKS[block]], cwd=clone, env=env, capture_output=True,
                         text=True, timeout=600)  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
