"""``python -m mmer.probe``: a linear-probe baseline beside the model, on the same inputs and split.

    python -m mmer.probe --config CONFIG [--set key=value ...] [--fold K | --folds all]
                         [--run-name NAME]

Per fold, the model's own train / val / test inputs (:func:`mmer.train.data.fold_data`,
from the feature cache: run ``python -m mmer.extract`` first) are pooled to one vector per
clip and scored by a standardised logistic regression whose C is chosen on the validation
part (:mod:`mmer.experiments.probe`). When ``<runs_dir>/<NAME>/`` holds the model's results
(``fold_<k>/report.json`` of evaluate.py, else ``summary.json`` of ``train.py --folds all``),
its softmax-head figures are printed beside the probe's. Writes ``probe.json`` and
``probe.md`` to ``<runs_dir>/<NAME>/``. Training computes the same probe per fold
(:func:`mmer.train.probe.probe_fold_data`, ``fold_<k>/linear_probe.json``); this command
recomputes it from the cache without a trained run. Exit codes: 0 done, 2 bad config or data,
130 interrupted.
"""
from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Sequence
from pathlib import Path

from mmer.cli import add_config_args, add_fold_args, chosen_folds, load_args_config, run_command
from mmer.datasets import get_adapter
from mmer.device import apply_threads
from mmer.errors import BadInput
from mmer.experiments.probe import probe_doc, render_markdown
from mmer.io import atomic_write_json, atomic_write_text
from mmer.metrics.probe import PROBE_METRICS, ProbeResult
from mmer.train.data import fold_data
from mmer.train.probe import probe_fold_data

log = logging.getLogger("mmer.probe")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m mmer.probe", description=__doc__.split("\n")[0])
    add_config_args(parser, example="ravdess.root=DIR")
    add_fold_args(parser, "probe")
    return parser


def probe_fold(cfg, fold: int) -> tuple[str, ProbeResult]:
    """(scored part, probe result) of one fold: test, or val when the split has no test."""
    try:
        return probe_fold_data(fold_data(cfg, fold), get_adapter(cfg).selection_metric)
    except BadInput as err:
        raise BadInput(f"fold {fold}: {err}") from None


def model_figures(root: Path, folds: Sequence[int], part: str) -> tuple[dict[int, dict], str | None]:
    """The model's softmax-head {fold: {metric: value}} on `part` from the run folder `root`:
    each fold's report.json (evaluate.py), else summary.json (train.py); and which file."""
    out = {}
    for fold in folds:
        path = root / f"fold_{fold}" / "report.json"
        if path.is_file():
            softmax = json.loads(path.read_text(encoding="utf-8"))["results"].get(part, {}).get("softmax")
            if softmax:
                out[fold] = {m: softmax[m] for m in PROBE_METRICS}
    if out:
        return out, f"{root}/fold_k/report.json (softmax head)"
    path = root / "summary.json"
    if not path.is_file():
        return {}, None
    summary = json.loads(path.read_text(encoding="utf-8")).get("folds", {})
    for fold in folds:
        row = summary.get(str(fold)) or {}
        if row.get(f"{part}_accuracy") is not None:
            out[fold] = {m: row.get(f"{part}_{m}") for m in PROBE_METRICS}
    return out, (f"{path} (softmax head)" if out else None)


def _run(args: argparse.Namespace) -> int:
    cfg = load_args_config(args)
    apply_threads()
    folds = chosen_folds(cfg, args)
    results, parts = {}, set()
    for fold in folds:
        part, results[fold] = probe_fold(cfg, fold)
        parts.add(part)
    part = parts.pop() if len(parts) == 1 else "test"
    root = Path(cfg.train.runs_dir) / (args.run_name or cfg.name)
    model, source = model_figures(root, folds, part)
    doc = probe_doc(cfg.name, get_adapter(cfg).part_label(part), results, model, source,
                    get_adapter(cfg).selection_metric)
    text = render_markdown(doc)
    root.mkdir(parents=True, exist_ok=True)
    atomic_write_json(root / "probe.json", doc)
    atomic_write_text(root / "probe.md", text)
    print(text, end="")
    log.info("wrote %s and %s", root / "probe.json", root / "probe.md")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(build_parser(), _run, argv)
