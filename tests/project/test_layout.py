"""The package reads as the pipeline: each folder of mmer/ is a stage, and a module imports
only its own or earlier stages.

docs/design.md lists the stages; this test parses every module's imports (no import is
executed) and fails on a module importing a later stage, training and evaluation importing
each other, an import cycle, a function-local ``mmer`` import, or a dataset name compared
outside :mod:`mmer.datasets`.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "mmer"

# The top-level entries of mmer/, in pipeline order (docs/design.md): a module's stage is the
# index of its entry. Any other top-level module is an entry shim (``python -m mmer.<command>``)
# after them all, which imports mmer.cli alone.
STAGES = [
    ("errors", "io", "seed", "device", "config"),
    ("media",),
    ("synth",),
    ("datasets",),
    ("nets",),
    ("features",),
    ("inputs",),
    ("models",),
    ("losses",),
    ("metrics",),
    ("viz",),
    ("run",),
    ("extraction",),
    ("train",),
    ("evaluation",),
    ("prediction",),
    ("experiments",),
    ("cli",),
]
ENTRY_STAGE = {entry: i for i, entries in enumerate(STAGES) for entry in entries}
SHIMS = len(STAGES)
# Stages that never import each other, in either direction, whatever their order.
APART = [("train", "evaluation"), ("train", "prediction")]


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def entry(module: str) -> str | None:
    """The top-level entry of `module` under mmer/ (None for the package itself)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def stage(module: str) -> int:
    """The index in STAGES of `module`'s entry; an entry shim or the package: after them all."""
    return ENTRY_STAGE.get(entry(module), SHIMS)


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
    """Every module lies under an entry of STAGES, except the package itself and the entry
    shims: top-level modules that import mmer.cli alone."""
    for module, path in MODULES.items():
        if module == "mmer" or entry(module) in ENTRY_STAGE:
            continue
        top, _ = imports(path)
        assert path.parent == PACKAGE, f"{module}: its folder {entry(module)}/ is no stage (add it to STAGES)"
        assert top and all(m.startswith("mmer.cli.") for m in top), f"{module} is not an entry shim: {top}"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_module_imports_only_earlier_stages(module: str) -> None:
    top, local = imports(MODULES[module])
    later = [m for m in top if stage(m) > stage(module)]
    assert not later, f"{module} (stage {stage(module)}) imports later stages: {later}"
    assert not local, f"{module} has function-local mmer imports: {local}"


@pytest.mark.parametrize("pair", APART)
def test_apart_stages_do_not_import_each_other(pair: tuple[str, str]) -> None:
    found = [f"{m} imports {i}" for m, p in MODULES.items() for i in imports(p)[0]
             for a, b in (pair, pair[::-1]) if entry(m) == a and entry(i) == b]
    assert not found, "\n".join(found)


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
    assert stage("mmer.train.loop") > stage("mmer.run.folder") > stage("mmer.metrics.knn")
    assert stage("mmer.extract") == stage("mmer") == SHIMS > stage("mmer.cli")
