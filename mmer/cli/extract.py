"""``python -m mmer.extract``: turn every clip of a dataset into cached backbone features.

    python -m mmer.extract --config configs/ravdess.yaml [--set k=v ...] [--limit N]
                           [--device cpu|cuda|auto] [--verify]

Clips already in the cache are skipped, so a killed or interrupted run resumes where it
stopped; an entry cut short is redone, and ``--verify`` loads every entry and redoes the
unreadable ones. Exit codes: 0 done, meaning every usable clip has features (also when
every clip was cached already, and when some clips are unusable: they are listed in the
cache's ``skipped-*.tsv``); 1 no clip of the data has features (every one failed);
2 bad config or data; 130 interrupted.
"""
from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence

from mmer.cli import add_config_args, load_args_config, run_command
from mmer.device import apply_threads
from mmer.features.pipeline import extract

log = logging.getLogger("mmer.extract")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m mmer.extract", description=__doc__.split("\n")[0])
    add_config_args(parser, example="features.num_workers=4")
    parser.add_argument("--limit", type=int, default=None, help="only the first N clips (by clip id)")
    parser.add_argument("--device", choices=("cpu", "cuda", "auto"), default=None,
                        help="default: features.device of the config")
    parser.add_argument("--verify", action="store_true",
                        help="load every cache entry and extract the unreadable ones again")
    return parser


def _run(args: argparse.Namespace) -> int:
    cfg = load_args_config(args)
    apply_threads()
    summary = extract(cfg, limit=args.limit, device=args.device, verify=args.verify)
    log.info("done %d, skipped %d, already cached %d, %.1f s, %.2f clips/s",
             summary.done, summary.skipped, summary.cached, summary.seconds, summary.clips_per_s)
    if summary.truncated:
        log.info("%d of the %d clips extracted were longer than the corpus's maximum and truncated",
                 summary.truncated, summary.done)
    # Clips that failed are listed and skipped by training; only a cache left with no clip
    # at all (every one failed) is a failed extraction.
    return 1 if summary.total and summary.done + summary.cached == 0 else 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(build_parser(), _run, argv,
                       interrupted="the clips extracted so far are cached; rerun the same command to resume")
