"""``python -m mmer.results``: a markdown results table made from run folders.

    python -m mmer.results RUN [RUN ...] [--out FILE.md] [--knn K] [--part val|test]

Reads every ``fold_<k>/report.json`` of each run (written by ``python evaluate.py --run
RUN``) and writes one row per run: the mean ± sample std (ddof=1) over its folds of the
scored part (test; dev for a corpus scored on dev only; ``--part val`` for the validation
part, the one recipes are chosen on), the protocol (folds, validation
rule, speaker normalisation, refit), a hash of the resolved config with ``train.seed`` left
out, and the git commit (and its date) the checkpoints were trained from. Runs whose
configs differ only in ``train.seed`` get one more row: mean ± std over their seeds' means.
A run whose fold reports hold the linear probe (``eval.probe``) gets a "linear probe" row
beside its own, in the softmax-head columns.
Scores are in %. Exit codes: 0 written, 2 a run folder without fold reports.
"""
from __future__ import annotations

import argparse
import copy
import hashlib
import json
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mmer.cli import run_command
from mmer.datasets import get_adapter
from mmer.errors import BadInput
from mmer.evaluation.report import PROBE_ROW, fold_scalars, pct_spread
from mmer.io import atomic_write_text

log = logging.getLogger("mmer.results")

# (column title, fold_scalars key) per selection metric; "{k}" is the kNN k.
COLUMNS = {
    "uar": [("accuracy", "softmax head / accuracy"), ("UAR", "softmax head / UAR"),
            ("kNN k={k} accuracy", "kNN k={k} / accuracy")],
    "weighted_f1": [("emotion wF1", "softmax head / weighted F1"), ("accuracy", "softmax head / accuracy"),
                    ("macro-F1", "softmax head / macro-F1"), ("sentiment wF1", "sentiment head / weighted F1")],
}


@dataclass
class RunScores:
    """One run folder's fold scores and what identifies how they were made."""

    name: str
    part: str                               # "test", or "val" (MELD dev) when no fold has test
    metric: str                             # the corpus's selection metric: the column set
    folds: list[int]
    values: dict[str, list[float]]          # column title -> one value per fold
    probe: dict[str, list[float]]           # the same of the linear probe (softmax-head columns)
    protocol: str
    config_hash: str                        # resolved config, train.seed and split.fold left out
    seed: int
    commit: str


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise BadInput(f"{path}: not a readable report ({type(err).__name__})") from None


def fold_reports(run_dir: str | Path) -> list[dict[str, Any]]:
    """The ``fold_<k>/report.json`` of a run, by fold number."""
    run_dir = Path(run_dir)
    paths = [p for p in run_dir.glob("fold_*/report.json") if p.parent.name[5:].isdigit()]
    if not paths:
        raise BadInput(f"{run_dir}: no fold_<k>/report.json (run `python evaluate.py --run {run_dir}` first)")
    return [_read_json(p) for p in sorted(paths, key=lambda p: int(p.parent.name[5:]))]


def config_hash(config: dict[str, Any]) -> str:
    """First 10 hex digits of the SHA-256 of the resolved config, seed and fold left out."""
    cfg = copy.deepcopy(config)
    cfg.get("train", {}).pop("seed", None)
    cfg.get("split", {}).pop("fold", None)
    return hashlib.sha256(json.dumps(cfg, sort_keys=True).encode()).hexdigest()[:10]


def protocol(config: dict[str, Any], n_folds: int, fixed_split: bool) -> str:
    """'4 of 4 folds, val next_fold (4 actors), speaker norm off, refit off' and the like."""
    split, model, train = config.get("split", {}), config.get("model", {}), config.get("train", {})
    where = ("fixed train/dev/test split" if fixed_split else
             f"{n_folds} of {split.get('n_folds')} folds, val {split.get('val_rule')} "
             f"({split.get('n_val_actors')} actors)")
    parts = [where, f"speaker norm {'on' if model.get('speaker_norm') else 'off'}",
             f"refit {'on' if train.get('refit') else 'off'}"]
    if int(model.get("ensemble") or 1) > 1:
        parts.append(f"ensemble of {model['ensemble']}")
    return ", ".join(parts)


def _commit(reports: Sequence[dict[str, Any]]) -> str:
    found = {(g.get("sha") or "unknown", bool(g.get("dirty")), g.get("date") or "")
             for g in (r.get("git") or {} for r in reports)}
    if len(found) > 1:
        return "several commits"
    sha, dirty, date = found.pop()
    return f"{sha[:10]}{'+dirty' if dirty else ''}" + (f" ({date[:10]})" if date else "")


def _knn_k(reports: Sequence[dict[str, Any]], knn: int | None, part: str) -> str | None:
    ks = sorted(int(k) for k in reports[0]["results"][part].get("knn", {}))
    if not ks:
        return None
    if knn is not None:
        if knn not in ks:
            raise BadInput(f"--knn {knn}: the reports have kNN k = {', '.join(map(str, ks))}")
        return str(knn)
    return str(5 if 5 in ks else ks[0])


def _part(reports: Sequence[dict[str, Any]], wanted: str | None, run_dir: Path) -> str:
    """`wanted` when every fold scored it; by default test, else val (a dev-only corpus)."""
    if wanted is None:
        return "test" if all("test" in r["results"] for r in reports) else "val"
    lacking = [str(r["fold"]) for r in reports if wanted not in r["results"]]
    if lacking:
        raise BadInput(f"{run_dir}: fold {', '.join(lacking)} has no {wanted} part to tabulate")
    return wanted


def run_scores(run_dir: str | Path, knn: int | None = None, part: str | None = None) -> RunScores:
    """Read one run folder's fold reports into a :class:`RunScores` (scores of `part`)."""
    reports = fold_reports(run_dir)
    config = reports[0]["config"]
    adapter = get_adapter(config["dataset"])
    part = _part(reports, part, Path(run_dir))
    k = _knn_k(reports, knn, part)
    scalars = [fold_scalars(r, part) for r in reports]
    values: dict[str, list[float]] = {}
    probe: dict[str, list[float]] = {}
    for title, key in COLUMNS.get(adapter.selection_metric, COLUMNS["uar"]):
        if "{k}" in key and k is None:
            continue
        title, key = title.format(k=k), key.format(k=k)
        probe_key = key.replace("softmax head", PROBE_ROW, 1) if key.startswith("softmax head") else None
        for out, name in ((values, key), (probe, probe_key)):
            per_fold = [s.get(name) for s in scalars] if name else [None]
            if all(v is not None for v in per_fold):
                out[title] = [float(v) for v in per_fold]
    return RunScores(name=Path(run_dir).name, part=part, metric=adapter.selection_metric,
                     folds=[int(r["fold"]) for r in reports], values=values, probe=probe,
                     protocol=protocol(config, len(reports), adapter.fixed_split),
                     config_hash=config_hash(config), seed=int(config.get("train", {}).get("seed", 0)),
                     commit=_commit(reports))


def mean_std(values: Sequence[float]) -> str:
    """'72.0 ± 4.8' in % (sample std, ddof=1); just the mean for one value."""
    arr = np.asarray(values, dtype=np.float64)
    return pct_spread(float(arr.mean()), float(arr.std(ddof=1)) if len(arr) > 1 else None)


def render(runs: Sequence[RunScores]) -> str:
    """Markdown: one table per column set, a row per run, a row per group of seeds."""
    out = []
    for metric in dict.fromkeys(r.metric for r in runs):
        rows = [r for r in runs if r.metric == metric]
        titles = list(dict.fromkeys(t for r in rows for t in r.values))
        head = ["run", "seed", "part", "protocol", *titles, "config", "commit"]
        lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
        for r in rows:
            for label, values in ((f"`{r.name}`", r.values), (f"`{r.name}` {PROBE_ROW}", r.probe)):
                if values:
                    cells = [mean_std(values[t]) if t in values else "-" for t in titles]
                    lines.append("| " + " | ".join([label, str(r.seed), r.part, r.protocol, *cells,
                                                    f"`{r.config_hash}`", r.commit]) + " |")
        lines += _group_rows(rows, titles)
        out.append("\n".join(lines))
    note = ("Scores in %: mean ± sample std (ddof=1) over the folds of each run; a row "
            "\"seeds of ...\" is mean ± std over the seeds' means of runs with the same config; a "
            f"row \"... {PROBE_ROW}\" is the run's linear probe on the same inputs and folds.")
    return "\n\n".join(out) + "\n\n" + note + "\n"


def _group_rows(rows: Sequence[RunScores], titles: Sequence[str]) -> list[str]:
    lines = []
    for digest in dict.fromkeys(r.config_hash for r in rows):
        group = [r for r in rows if r.config_hash == digest]
        if len({r.seed for r in group}) < 2 or len({r.part for r in group}) > 1:
            continue
        names = ", ".join(f"`{r.name}`" for r in group)
        for suffix, field in (("", "values"), (f" {PROBE_ROW}", "probe")):
            if not all(getattr(r, field) for r in group):
                continue
            cells = [mean_std([float(np.mean(getattr(r, field)[t])) for r in group])
                     if all(t in getattr(r, field) for r in group) else "-" for t in titles]
            lines.append("| " + " | ".join([f"seeds of {names}{suffix}", ", ".join(str(r.seed) for r in group),
                                            group[0].part, group[0].protocol, *cells, f"`{digest}`",
                                            _joined(r.commit for r in group)]) + " |")
    return lines


def _joined(commits) -> str:
    found = list(dict.fromkeys(commits))
    return found[0] if len(found) == 1 else "several commits"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m mmer.results", description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run folders (runs/NAME), evaluated")
    parser.add_argument("--out", type=Path, default=None, help="write the table here (default: stdout)")
    parser.add_argument("--knn", type=int, default=None,
                        help="kNN k of the kNN column (default: 5 when scored, else the smallest)")
    parser.add_argument("--part", choices=("val", "test"), default=None,
                        help="the part tabulated (default: test where every fold has one, else val)")
    return parser


def _run(args: argparse.Namespace) -> int:
    text = render([run_scores(run, args.knn, args.part) for run in args.runs])
    if args.out is None:
        sys.stdout.write(text)
    else:
        atomic_write_text(args.out, text)
        log.info("wrote %s", args.out)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(build_parser(), _run, argv, level=logging.WARNING, plain_errors=True)
