"""The package reads as the pipeline: each module imports only its own or earlier stages.

docs/design.md lists the stages; this test parses every module's imports (no import is
executed) and fails on a module importing a later stage, an import cycle, a function-local
``mmer`` import, or a dataset name compared outside :mod:`mmer.datasets`.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "mmer"

# Stage of each module (longest prefix wins), in pipeline order; see docs/design.md.
STAGES = [
    ("mmer.errors", 0), ("mmer.io", 0), ("mmer.seed", 0), ("mmer.device", 0), ("mmer.config", 0),
    ("mmer.media", 1),
    ("mmer.synth", 2),
    ("mmer.datasets", 3),
    ("mmer.nets", 4),
    ("mmer.features", 5),
    ("mmer.inputs", 6),
    ("mmer.models", 7),
    ("mmer.losses", 8),
    ("mmer.eval.metrics", 9), ("mmer.eval.knn", 9),
    ("mmer.train", 10),
    ("mmer.viz", 11),
    ("mmer.eval", 12),
    ("mmer.train.ablation", 13),
    ("mmer.cli", 14),
    ("mmer", 15),  # the `python -m mmer.X` entry modules (two-line shims)
]


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def rule(module: str) -> str:
    """The STAGES prefix that decides `module`'s stage (the longest that matches)."""
    return max((p for p, _ in STAGES if module == p or module.startswith(p + ".")), key=len)


def stage(module: str) -> int:
    return dict(STAGES)[rule(module)]


def imports(path: Path) -> tuple[list[str], list[tuple[int, str]]]:
    """(mmer modules imported at module level, (line, module) of function-local mmer imports)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    top, local = [], []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("mmer"):
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names if a.name.startswith("mmer")]
        else:
            continue
        if not names:
            continue
        (top if node.col_offset == 0 else local).extend(
            names if node.col_offset == 0 else [(node.lineno, n) for n in names])
    return top, local


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def test_stages_cover_every_module() -> None:
    """Only the package itself and its top-level entry shims fall to the catch-all "mmer"
    stage; every other module has a rule of its own, and a shim imports mmer.cli alone."""
    for module, path in MODULES.items():
        if rule(module) != "mmer" or module == "mmer":
            continue
        top, _ = imports(path)
        assert module.count(".") == 1, f"{module} has no stage rule of its own (add it to STAGES)"
        assert top and all(m.startswith("mmer.cli.") for m in top), f"{module} is not an entry shim: {top}"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_module_imports_only_earlier_stages(module: str) -> None:
    top, local = imports(MODULES[module])
    later = [m for m in top if stage(m) > stage(module)]
    assert not later, f"{module} (stage {stage(module)}) imports later stages: {later}"
    assert not local, f"{module} has function-local mmer imports: {local}"


def test_no_import_cycle() -> None:
    graph = {m: {i for i in imports(p)[0] if i in MODULES} for m, p in MODULES.items()}
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in graph[node]:
            if state.get(nxt) == 1:
                raise AssertionError("import cycle: " + " -> ".join([*trail, node, nxt]))
            if nxt not in state:
                visit(nxt, [*trail, node])
        state[node] = 2

    for m in graph:
        if m not in state:
            visit(m, [])


DATASET_COMPARE = re.compile(r"""dataset\s*[!=]=|[!=]=\s*["'](ravdess|meld|crema_d|mead)["']""")


def test_no_dataset_branch_outside_the_registry() -> None:
    found = []
    for module, path in MODULES.items():
        if module.startswith("mmer.datasets"):
            continue
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if DATASET_COMPARE.search(line):
                found.append(f"{module}:{n}: {line.strip()}")
    assert not found, "dataset names compared outside mmer.datasets:\n" + "\n".join(found)


def test_the_layering_check_can_fail(tmp_path: Path) -> None:
    """A module that imports a later stage inside a function is caught by both checks."""
    bad = tmp_path / "bad.py"
    bad.write_text("from mmer.config import Config\n\ndef f():\n    from mmer.cli import run_command\n")
    top, local = imports(bad)
    assert top == ["mmer.config"] and local == [(4, "mmer.cli")]
    assert stage("mmer.cli.train") > stage("mmer.train.loop") > stage("mmer.models.build")
