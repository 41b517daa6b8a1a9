"""Look at a dataset before using it: counts per actor/speaker, emotion and split, and skips.

Command line::

    python -m mmer.data.inspect --config configs/smoke.yaml [--set ravdess.root=...]
        [--text-only] [--skipped skipped.tsv]

RAVDESS: clips per actor and per emotion, and the actors and clip counts on each
side of every fold. MELD: rows per split and emotion/sentiment (``--text-only``
reads the CSVs without looking for clips). Exit status 0, or 2 when the data
cannot be read at all.
"""
from __future__ import annotations

import argparse
import logging
import sys
from collections import Counter
from collections.abc import Sequence

from mmer.config import Config, ConfigError, load_config
from mmer.data.meld import MELD_EMOTIONS, MELD_SENTIMENTS, MELD_SPLITS, MeldError, meld_records
from mmer.data.ravdess import RAVDESS_EMOTIONS, RavdessRootError, scan_ravdess
from mmer.data.records import ClipRecord
from mmer.data.splits import SplitError, fold_split, record_actors, split_records
from mmer.io import SkipList

log = logging.getLogger(__name__)


def _table(title: str, counts: Counter, order: Sequence) -> list[str]:
    """One line per key of `order` (those counted), then the total."""
    lines = [f"{title}:"]
    lines += [f"  {key!s:<12} {counts[key]:6d}" for key in order if counts[key]]
    lines.append(f"  {'total':<12} {sum(counts.values()):6d}")
    return lines


def ravdess_report(records: list[ClipRecord], cfg: Config) -> list[str]:
    """Report lines for RAVDESS records: per actor, per emotion, and every fold's sides."""
    actors = record_actors(records)
    lines = _table("clips per actor", Counter(int(r.speaker) for r in records), actors)
    lines += _table("clips per emotion", Counter(RAVDESS_EMOTIONS[r.label] for r in records),
                    RAVDESS_EMOTIONS)
    lines.append(f"folds (n_folds={cfg.split.n_folds}, val_rule={cfg.split.val_rule}, "
                 f"n_val_actors={cfg.split.n_val_actors}):")
    try:
        for fold in range(cfg.split.n_folds):
            split = fold_split(actors, cfg.split, fold)
            parts = split_records(records, split)
            sides = ", ".join(f"{side} {len(parts[side])} clips {getattr(split, side)}"
                              for side in ("train", "val", "test"))
            lines.append(f"  fold {fold}: {sides}")
    except SplitError as err:
        lines.append(f"  cannot split: {err}")
    return lines


def meld_report(records: list[ClipRecord]) -> list[str]:
    """Report lines for MELD records of every split: emotions, sentiments, speakers."""
    lines = []
    for split in MELD_SPLITS:
        part = [r for r in records if r.clip_id.startswith(f"{split}/")]
        if not part:
            continue
        lines += _table(f"{split}: rows per emotion", Counter(MELD_EMOTIONS[r.label] for r in part),
                        MELD_EMOTIONS)
        lines += _table(f"{split}: rows per sentiment",
                        Counter(MELD_SENTIMENTS[r.extra["sentiment"]] for r in part), MELD_SENTIMENTS)
        lines.append(f"{split}: {len({r.speaker for r in part})} speakers, "
                     f"{len({r.group for r in part})} dialogues")
    return lines


def collect(cfg: Config, text_only: bool = False) -> tuple[list[ClipRecord], SkipList, list[str]]:
    """Records, skips and report lines of ``cfg.dataset``; MELD splits whose CSV is missing
    are reported and left out."""
    if cfg.dataset == "ravdess":
        records, skips = scan_ravdess(cfg.ravdess)
        return records, skips, ravdess_report(records, cfg)
    records, skips, notes = [], SkipList(), []
    for split in MELD_SPLITS:
        try:
            part, part_skips = meld_records(cfg.meld, split, require_clips=not text_only)
        except MeldError as err:
            notes.append(f"{split}: not used ({err})")
            continue
        records += part
        skips.extend(part_skips)
    return records, skips, notes + meld_report(records)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mmer.data.inspect", description=__doc__.split("\n")[0])
    parser.add_argument("--config", required=True, help="YAML config file")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value (repeatable), e.g. ravdess.root=data/Actors")
    parser.add_argument("--text-only", action="store_true", help="MELD: do not look for clips")
    parser.add_argument("--skipped", metavar="TSV", help="also write the skip list here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    try:
        cfg = load_config(args.config, args.set)
        records, skips, lines = collect(cfg, args.text_only)
    except (ConfigError, RavdessRootError, MeldError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    lines.append(f"skipped: {len(skips)}")
    lines += [f"  {skip}" for skip in skips]
    print("\n".join([f"{cfg.dataset}: {len(records)} records"] + lines))
    if args.skipped:
        skips.write(args.skipped)
    return 0


if __name__ == "__main__":
    sys.exit(main())
