"""``python -m mmer.extract``: turn every clip of a dataset into cached backbone features.

    python -m mmer.extract --config configs/ravdess.yaml [--set k=v ...] [--limit N]
                           [--device cpu|cuda|auto] [--shard I/N] [--verify]
    torchrun --nproc_per_node N -m mmer.extract --config ...   # one shard per rank

Clips are split by rank (``--shard``, or torchrun's RANK/WORLD_SIZE) with no clip done
twice; independent processes on one cache claim clips and so share the work. Each leaves
its counts and clip lists in the cache's ``summary.json``; the skip list is merged.

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
import os
from collections.abc import Sequence

import torch

from mmer.cli import add_config_args, load_args_config, run_command
from mmer.device import apply_threads
from mmer.extraction.job import extract
from mmer.features.claims import parse_shard

log = logging.getLogger("mmer.extract")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m mmer.extract", description=__doc__.split("\n")[0])
    add_config_args(parser, example="features.num_workers=4")
    parser.add_argument("--limit", type=int, default=None, help="only the first N clips (by clip id)")
    parser.add_argument("--device", choices=("cpu", "cuda", "auto"), default=None,
                        help="default: features.device of the config")
    parser.add_argument("--verify", action="store_true",
                        help="load every cache entry and extract the unreadable ones again")
    parser.add_argument("--shard", default=None, metavar="I/N",
                        help="only clips I, I+N, ... (default under torchrun: RANK/WORLD_SIZE)")
    return parser


def shard_from(args: argparse.Namespace) -> tuple[int, int] | None:
    """--shard, else torchrun's RANK/WORLD_SIZE (each rank on its own GPU), else None."""
    if args.shard is not None:
        return parse_shard(args.shard)
    if "RANK" in os.environ and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        if torch.cuda.is_available() and local < torch.cuda.device_count():
            torch.cuda.set_device(local)  # "cuda" then means this rank's GPU
        return int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    return None


def _run(args: argparse.Namespace) -> int:
    cfg = load_args_config(args)
    apply_threads()
    shard = shard_from(args)
    summary = extract(cfg, limit=args.limit, device=args.device, shard=shard,
                      progress=shard is None or shard[0] == 0, verify=args.verify)
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
