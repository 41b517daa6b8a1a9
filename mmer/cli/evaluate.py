"""``python evaluate.py``: FAISS kNN and softmax-head evaluation of trained folds, with plots.

    python evaluate.py --run runs/NAME [--which best|last] [--data-root OTHER_ROOT]
                       [--data-set visual.table=FILE ...] [--extract] [--no-plots]
    python evaluate.py --checkpoint runs/NAME/fold_0/best.pt [...]

The model is rebuilt from the config stored in each checkpoint. Writes ``report.json``,
``report.md`` and PNGs into every fold folder, and a per-fold table with mean ± std
into the run folder. ``--data-root`` scores the clips of another folder of actors with
the same layout against the training clips (into ``eval_<root>/`` folders).
Exit codes: 0 done, 2 bad input (missing run, checkpoint, data or features).
"""
from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path

from mmer.cli import run_command
from mmer.evaluation.evaluate import evaluate_checkpoint, evaluate_run
from mmer.evaluation.report import fold_scalars, main_part, pct
from mmer.evaluation.sets import data_config
from mmer.extraction.job import extract
from mmer.run.folder import fold_checkpoints, load_checkpoint

log = logging.getLogger("evaluate")
HEADLINE = ("softmax head / accuracy", "softmax head / UAR")
PROBE = ("linear probe / accuracy", "linear probe / UAR")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python evaluate.py", description=__doc__.split("\n")[0])
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--run", type=Path, help="run folder: every fold_<k>/ in it is evaluated")
    which.add_argument("--checkpoint", type=Path, help="one checkpoint file (a fold's best.pt or last.pt)")
    parser.add_argument("--which", choices=("best", "last"), default="best",
                        help="with --run: which checkpoint of each fold (default: best)")
    parser.add_argument("--data-root", default=None,
                        help="score every clip under this root (same layout) instead of the test fold")
    parser.add_argument("--data-set", dest="data_overrides", action="append", default=[],
                        metavar="KEY=VALUE", help="change a ravdess/meld/features setting for the "
                        "evaluation data, e.g. --data-set visual.table=other_aus.csv")
    parser.add_argument("--extract", action="store_true",
                        help="extract missing features first: of the run's own clips and of the "
                        "--data-root / --data-set data")
    parser.add_argument("--no-plots", action="store_true", help="skip the t-SNE and confusion PNGs")
    parser.add_argument("--device", default="cpu", help="torch device for embedding (default: cpu)")
    return parser


def _extract_first(checkpoints: Sequence[Path], args: argparse.Namespace) -> None:
    """Fill the feature cache for each checkpoint's own clips (the training clips that
    other data is scored against) and, with --data-root / --data-set, for that data."""
    done = set()
    other = bool(args.data_root or args.data_overrides)
    for path in checkpoints:
        cfg_dict = load_checkpoint(path)["config"]
        wanted = [data_config(cfg_dict)]
        if other:
            wanted.append(data_config(cfg_dict, args.data_root, args.data_overrides))
        for cfg in wanted:
            if repr(cfg) not in done:
                extract(cfg, progress=False)
                done.add(repr(cfg))


def _print_report(reports: list[dict], where: Path) -> None:
    for report in reports:
        if "headline" in report:  # MELD: weighted F1 of both heads, on dev and test
            for part, heads in report["headline"].items():
                cells = [f"{head} weighted F1 {pct(m['weighted_f1'])}% (accuracy "
                         f"{pct(m['accuracy'])}%, macro-F1 {pct(m['macro_f1'])}%)"
                         for head, m in heads.items()]
                print(f"{'dev' if part == 'val' else part} ({report['n_clips'].get(part, 0)} clips): "
                      + ", ".join(cells))
            if "truncated" in report:
                print(f"clips truncated at {report['truncated']['max_seconds']:g} s: "
                      + ", ".join(f"{p} {n}" for p, n in report["truncated"]["clips"].items()))
            continue
        part = main_part(report["results"])
        scalars = fold_scalars(report, part)
        knn = {k: v for k, v in scalars.items() if k.startswith("kNN") and k.endswith("/ accuracy")}
        cells = [f"{k} {pct(scalars[k])}%" for k in HEADLINE + PROBE if k in scalars] + [
            f"{k} {pct(v)}%" for k, v in knn.items()]
        print(f"fold {report['fold']} ({report['n_clips'].get(part, 0)} {part} clips): " + ", ".join(cells))
    if reports and reports[0]["backbones"]["random"]:
        print("NOTE: the backbones were randomly initialised (no pretrained weights): "
              + "; ".join(f"{k}: {v}" for k, v in reports[0]["backbones"]["pretrained"].items()))
    print(f"report: {where / 'report.md'}")


def _run(args: argparse.Namespace) -> int:
    common = dict(data_root=args.data_root, data_overrides=args.data_overrides,
                  plots=not args.no_plots, device=args.device)
    checkpoints = fold_checkpoints(args.run, args.which) if args.run else [args.checkpoint]
    if args.extract:
        _extract_first(checkpoints, args)
    if args.run:
        reports, where = evaluate_run(args.run, which=args.which, **common)
    else:
        report = evaluate_checkpoint(args.checkpoint, **common)
        reports, where = [report], Path(report["out_dir"])
    _print_report(reports, where)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(build_parser(), _run, argv)
