"""``python train.py``: train the emotion model, one fold or every fold.

    python train.py --config configs/ravdess.yaml [--fold K | --folds all]
                    [--set key=value ...] [--run-name NAME] [--extract]

Every model trains through the one loop (:mod:`mmer.train.loop`), text models included.
Writes ``<train.runs_dir>/<NAME>/fold_<k>/`` (config.yaml, split.json, metrics.jsonl,
last.pt, best.pt, skipped.tsv, TensorBoard events). Rerunning the same command resumes
from ``last.pt``. A config with ``text.stage1`` first trains that config's run (unless
it is complete) and reads its ``text_encoder/`` (:mod:`mmer.train.chain`). ``--folds all``
trains every fold and writes ``summary.md``/``summary.json`` (per fold, mean +- std, and
the "linear probe" row of ``eval.probe``: mean +- std of the same scores) to
``<runs_dir>/<NAME>/``.

Data-parallel: ``torchrun --nproc_per_node N train.py --config ...`` (the same global
batch, split across the N processes; rank 0 writes the run folder; see
:mod:`mmer.train.distributed`).
Exit codes: 0 done, 1 training stopped (e.g. a non-finite loss), 2 bad config or data,
130 interrupted.
"""
from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence

from mmer.cli import add_config_args, add_fold_args, chosen_folds, load_args_config, run_command
from mmer.device import apply_threads
from mmer.extraction.job import extract
from mmer.io import writable_folder
from mmer.run.folder import fold_dir, summarise_folds, write_summary
from mmer.train import distributed
from mmer.train.chain import resolve_stage1
from mmer.train.loop import run_fold

log = logging.getLogger("train")
SUMMARY_KEYS = ("val_uar", "val_accuracy", "test_accuracy", "test_uar")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python train.py", description=__doc__.split("\n")[0])
    add_config_args(parser)
    add_fold_args(parser, "train")
    parser.add_argument("--extract", action="store_true",
                        help="extract missing features first (python -m mmer.extract) instead of failing")
    return parser


def _run(args: argparse.Namespace) -> int:
    cfg = load_args_config(args)
    apply_threads()
    ctx = distributed.init_from_env(cfg.train.device)
    try:
        return _train(args, cfg, ctx)
    finally:
        distributed.shutdown()


def _train(args: argparse.Namespace, cfg, ctx: distributed.DistContext) -> int:
    folds = chosen_folds(cfg, args)
    writable_folder(cfg.train.runs_dir)  # before extraction and data: one line naming it
    if args.extract:
        extract(cfg, shard=(ctx.rank, ctx.world_size), progress=ctx.is_main)
        distributed.barrier()
    cfg = resolve_stage1(cfg, args.overrides)  # text.stage1: its run first, then its text_encoder/
    name = args.run_name or cfg.name
    results = {}
    for fold in folds:
        out = fold_dir(cfg.train.runs_dir, name, fold)
        log.info("fold %d -> %s", fold, out)
        results[fold] = run_fold(cfg, fold, out)
        log.info("fold %d result: %s", fold, results[fold])
    if args.folds == "all" and ctx.is_main:
        root = fold_dir(cfg.train.runs_dir, name, 0).parent
        keys = SUMMARY_KEYS + (("select_test_accuracy", "select_test_uar") if cfg.train.refit else ())
        summary = summarise_folds(results, keys)
        probe = {f: {k: r.get(f"probe_{k}") for k in keys} for f, r in results.items()}
        if any(v is not None for row in probe.values() for v in row.values()):
            summary["linear_probe"] = summarise_folds(probe, keys)
        table = write_summary(root, summary, keys)
        log.info("summary (%s):\n%s", root / "summary.md", table)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(build_parser(), _run, argv, interrupted=(
        "finished epochs are kept in the fold's last.pt; rerun the same command to resume"))
