"""``python -m mmer.survey``: look at a dataset before using it.

    python -m mmer.survey --config configs/smoke.yaml [--set ravdess.root=...]
        [--text-only] [--skipped skipped.tsv]

Counts per speaker and per label of every task, the speakers and clip counts on each side
of every fold (or of the corpus's own split), and the skipped files with their reasons.
``--text-only`` reads a corpus's annotations without looking for media files. Exit
status 0, or 2 when the data cannot be used for training (e.g. an unusable MELD train or
dev CSV; the other notes are still printed).
"""
from __future__ import annotations

import argparse
import logging
import sys
from collections import Counter
from collections.abc import Sequence

from mmer.cli import add_config_args, load_args_config, run_command
from mmer.config import Config
from mmer.datasets import DatasetAdapter, get_adapter
from mmer.datasets.labels import task_labels
from mmer.datasets.records import ClipRecord
from mmer.datasets.splits import SplitError
from mmer.errors import BadInput


def _table(title: str, counts: Counter, order: Sequence) -> list[str]:
    """One line per key of `order` (those counted), then the total."""
    lines = [f"{title}:"]
    lines += [f"  {key!s:<12} {counts[key]:6d}" for key in order if counts[key]]
    lines.append(f"  {'total':<12} {sum(counts.values()):6d}")
    return lines


def _task_tables(adapter: DatasetAdapter, records: list[ClipRecord], prefix: str, noun: str) -> list[str]:
    lines = []
    for task, names in adapter.tasks.items():
        counts = Counter(names[i] for i in task_labels(records, task))
        lines += _table(f"{prefix}{noun} per {task}", counts, names)
    return lines


def fold_report(adapter: DatasetAdapter, records: list[ClipRecord], cfg: Config) -> list[str]:
    """Clips per speaker and per label, and every fold's sides (actor-fold corpora)."""
    speakers = sorted({r.speaker for r in records}, key=lambda s: (len(s), s))
    lines = _table("clips per actor", Counter(r.speaker for r in records), speakers)
    lines += _task_tables(adapter, records, "", "clips")
    lines.append(f"folds (n_folds={cfg.split.n_folds}, val_rule={cfg.split.val_rule}, "
                 f"n_val_actors={cfg.split.n_val_actors}):")
    try:
        for fold in range(cfg.split.n_folds):
            parts, split = adapter.split(cfg, records, fold)
            sides = ", ".join(f"{side} {len(parts[side])} clips {split['actors'][side]}"
                              for side in ("train", "val", "test"))
            lines.append(f"  fold {fold}: {sides}")
    except SplitError as err:
        lines.append(f"  cannot split: {err}")
    return lines


def split_report(adapter: DatasetAdapter, records: list[ClipRecord], cfg: Config) -> list[str]:
    """Rows per label of every task in each part of the corpus's own split."""
    lines = []
    parts, _ = adapter.split(cfg, records, 0)
    for part, recs in parts.items():
        if recs:
            name = adapter.part_label(part)
            lines += _task_tables(adapter, recs, f"{name}: ", "rows")
            lines.append(f"{name}: {len({r.speaker for r in recs})} speakers, "
                         f"{len({r.group for r in recs})} dialogues")
    return lines


def _run(args: argparse.Namespace) -> int:
    cfg = load_args_config(args)
    adapter = get_adapter(cfg)
    records, skips, notes = adapter.survey(cfg, require_media=not args.text_only)
    report = split_report if adapter.fixed_split else fold_report
    lines = notes + report(adapter, records, cfg)
    lines.append(f"skipped: {len(skips)}")
    lines += [f"  {skip}" for skip in skips]
    print("\n".join([f"{cfg.dataset}: {len(records)} records"] + lines))
    if args.skipped:
        skips.write(args.skipped)
    # The survey reads what it can; training needs what the adapter's records need (MELD:
    # usable train and dev CSVs), so a part training cannot use is an error here too.
    try:
        adapter.records(cfg, require_media=not args.text_only)
    except BadInput as err:
        print(f"error: {err} (training and extraction cannot use this data)", file=sys.stderr)
        return 2
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m mmer.survey", description=__doc__.split("\n")[0])
    add_config_args(parser, example="ravdess.root=data/Actors")
    parser.add_argument("--text-only", action="store_true", help="do not look for media files (MELD)")
    parser.add_argument("--skipped", metavar="TSV", help="also write the skip list here")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(build_parser(), _run, argv, level=logging.ERROR, plain_errors=True)
