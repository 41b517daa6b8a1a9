"""Train the emotion model on cached features, one fold or every fold.

    python train.py --config configs/ravdess.yaml [--fold K | --folds all]
                    [--set key=value ...] [--run-name NAME] [--extract]

Writes ``<train.runs_dir>/<NAME>/fold_<k>/`` (config.yaml, split.json, metrics.jsonl,
last.pt, best.pt, skipped.tsv, TensorBoard events). Rerunning the same command
resumes from ``last.pt``. ``--folds all`` trains every fold and writes
``summary.md``/``summary.json`` (per fold, mean +- std) to ``<runs_dir>/<NAME>/``.
Exit codes: 0 done, 1 training failed (e.g. non-finite loss), 2 bad config or data.
"""
from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence

from mmer.cli import setup_logging
from mmer.config import ConfigError, load_config
from mmer.engine import NonFiniteLossError
from mmer.runs import fold_dir, summarise_folds, write_summary
from mmer.training import CacheIncompleteError, run_fold

log = logging.getLogger("train")
SUMMARY_KEYS = ("val_uar", "val_accuracy", "test_accuracy", "test_uar")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python train.py", description=__doc__.split("\n")[0])
    parser.add_argument("--config", required=True, help="YAML config file")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--fold", type=int, default=None, help="fold to train (default: split.fold)")
    which.add_argument("--folds", choices=("all",), default=None, help="train every fold")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, e.g. --set train.lr=1e-3")
    parser.add_argument("--run-name", default=None, help="run folder name (default: the config's name)")
    parser.add_argument("--extract", action="store_true",
                        help="extract missing features first (python -m mmer.extract) instead of failing")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging()
    try:
        cfg = load_config(args.config, args.overrides)
        if args.extract:
            from mmer.extract import extract
            extract(cfg)
        name = args.run_name or cfg.name
        folds = list(range(cfg.split.n_folds)) if args.folds == "all" else [
            cfg.split.fold if args.fold is None else args.fold]
        if cfg.dataset == "meld" and args.folds == "all":
            raise ConfigError("MELD has one fixed train/dev/test split: use --fold 0 (the default)")
        results = {}
        for fold in folds:
            out = fold_dir(cfg.train.runs_dir, name, fold)
            log.info("fold %d -> %s", fold, out)
            if cfg.dataset == "meld" and (cfg.text.encoder == "scratch" or cfg.text.finetune):
                # A trained text encoder reads token ids, not cached vectors (text-only).
                from mmer.meld_text import train_text
                results[fold] = train_text(cfg, out)
            else:
                results[fold] = run_fold(cfg, fold, out)
            log.info("fold %d result: %s", fold, results[fold])
    except (ConfigError, CacheIncompleteError, ValueError) as err:
        log.error("%s", err)
        return 2
    except NonFiniteLossError as err:
        log.error("training stopped: %s", err)
        return 1
    if args.folds == "all":
        root = fold_dir(cfg.train.runs_dir, name, 0).parent
        keys = SUMMARY_KEYS + (("select_test_accuracy", "select_test_uar") if cfg.train.refit else ())
        table = write_summary(root, summarise_folds(results, keys), keys)
        log.info("summary (%s):\n%s", root / "summary.md", table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
