"""The README's walkthrough runs as written, on a fresh copy of the repository.

The commands are parsed from README.md: every line of the fenced ``bash`` blocks between
``<!-- walkthrough -->`` and ``<!-- /walkthrough -->``, in order, with ``python`` run as
this interpreter. They run in a temporary copy of the tracked tree (what a fresh clone
holds: no data, cache, runs or weight files), so nothing is written into the repository.
Nothing is appended to the commands: the walkthrough's synthetic set is already small
enough (about two minutes on one CPU core).
"""
from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
BEGIN, END = "<!-- walkthrough -->", "<!-- /walkthrough -->"
# Untracked paths of a working checkout (.gitignore) that a fresh clone does not have.
NOT_IN_A_CLONE = shutil.ignore_patterns(".git", ".venv", "__pycache__", "*.pyc", ".pytest_cache",
                                        ".ruff_cache", "runs", "cache", "data", "resnet",
                                        "*.egg-info", ".whl", ".gl")


def walkthrough_commands(text: str) -> list[str]:
    """The command lines of the bash blocks between the walkthrough markers (a trailing
    backslash joins the next line; blank lines and comments are left out)."""
    if text.count(BEGIN) != 1 or text.count(END) != 1:
        raise AssertionError(f"README.md must hold exactly one {BEGIN} ... {END} section")
    section = text.split(BEGIN, 1)[1].split(END, 1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", section, flags=re.S)
    commands = []
    for block in blocks:
        for line in block.replace("\\\n", " ").splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                commands.append(line)
    return commands


def test_walkthrough_parser_reads_only_the_marked_blocks() -> None:
    text = ("```bash\npython outside.py\n```\n" + BEGIN + "\nsome prose\n```bash\n# comment\n"
            "python a.py --x 1 \\\n    --y 2\n\npython -m b\n```\n" + END + "\n```bash\nlater\n```\n")
    assert walkthrough_commands(text) == ["python a.py --x 1      --y 2", "python -m b"]
    with pytest.raises(AssertionError, match="exactly one"):
        walkthrough_commands("no markers")


def _argv(command: str) -> list[str]:
    argv = shlex.split(command)
    assert argv[0] == "python", f"walkthrough commands start with python: {command}"
    return [sys.executable, *argv[1:]]


@pytest.fixture()
def fresh_clone(tmp_path: Path) -> Path:
    """A copy of the repository as a fresh clone has it."""
    clone = tmp_path / "mmer"
    shutil.copytree(ROOT, clone, ignore=NOT_IN_A_CLONE)
    return clone


@pytest.mark.slow
def test_readme_walkthrough_runs_verbatim(fresh_clone: Path) -> None:
    commands = walkthrough_commands(README.read_text(encoding="utf-8"))
    steps = ["mmer.synthetic", "mmer.survey", "mmer.extract", "train.py", "evaluate.py",
             "mmer.predict", "mmer.results"]
    found = [next((i for i, c in enumerate(commands) if step in c), None) for step in steps]
    assert None not in found and found == sorted(found), \
        f"the walkthrough must run {' -> '.join(steps)} in that order: {commands}"
    env = dict(os.environ, PYTHONPATH=str(fresh_clone), OMP_NUM_THREADS="1")
    for command in commands:
        done = subprocess.run(_argv(command), cwd=fresh_clone, env=env, capture_output=True,
                              text=True, timeout=900)
        assert done.returncode == 0, (f"README command failed (exit {done.returncode}): {command}\n"
                                      f"{done.stdout[-2000:]}\n{done.stderr[-3000:]}")
    table = (fresh_clone / "runs" / "smoke" / "results.md").read_text(encoding="utf-8")
    assert "| `smoke` |" in table
