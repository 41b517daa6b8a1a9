"""``python -m mmer.ablation``: modality and fusion ablation on the same folds.

    python -m mmer.ablation --config configs/ravdess_av_aus.yaml [--set key=value ...]
        [--run-name NAME] [--variants visual,audio,cross_attention,concat,late]
        [--extract] [--plots] [--table-only]

See :mod:`mmer.experiments.ablation`. Exit codes as train.py: 0 done, 1 training stopped,
2 bad config or data, 130 interrupted.
"""
from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mmer.cli import add_config_args, load_args_config, run_command
from mmer.errors import BadInput, ConfigError
from mmer.experiments.ablation import (
    MARKER,
    finished_variant,
    run_variant,
    variant_config,
    variants,
    write_ablation,
)
from mmer.extraction.job import extract

log = logging.getLogger("mmer.ablation")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m mmer.ablation", description=__doc__.split("\n")[0])
    add_config_args(parser, example="ravdess.root=DIR")
    parser.add_argument("--run-name", default=None, help="run folder name (default: <config name>_ablation)")
    parser.add_argument("--variants", default=None,
                        help="comma-separated variants in the order to run (default: all; names: each "
                             "modality, fused_<fusion> or just the fusion name)")
    parser.add_argument("--extract", action="store_true", help="extract missing features first")
    parser.add_argument("--plots", action="store_true", help="write t-SNE and confusion PNGs per fold")
    parser.add_argument("--table-only", action="store_true",
                        help="train nothing: write the table from every finished variant in the run "
                             "folder, whatever config it was trained with (e.g. a partial ablation)")
    return parser


def _chosen(all_variants: dict[str, Any], text: str | None) -> list[str]:
    if not text:
        return list(all_variants)
    names = []
    for item in (t.strip() for t in text.split(",") if t.strip()):
        name = item if item in all_variants else f"fused_{item}"
        if name not in all_variants:
            raise ConfigError(f"--variants: unknown variant {item!r}; valid: {', '.join(all_variants)}")
        names.append(name)
    return names


def _run(args: argparse.Namespace) -> int:
    cfg = load_args_config(args)
    if args.extract:
        extract(cfg, progress=False)
    root = Path(cfg.train.runs_dir) / (args.run_name or f"{cfg.name}_ablation")
    table = variants(cfg)
    chosen = _chosen(table, args.variants)
    title = f"Ablation of `{cfg.name}` ({root})"
    if args.table_only:
        done = [json.loads((root / n / MARKER).read_text(encoding="utf-8")) for n in table
                if (root / n / MARKER).is_file()]
        if not done:
            raise BadInput(f"{root}: no finished variant ({MARKER}) to tabulate")
        text = write_ablation(root, done, title)
        log.info("ablation (%s):\n%s", root / "ablation.md", text)
        return 0
    results = [r for r in (finished_variant(variant_config(cfg, *table[n]), root, n) for n in table
                           if n not in chosen) if r]
    for name in chosen:
        results.append(run_variant(variant_config(cfg, *table[name]), root, name, plots=args.plots))
        text = write_ablation(root, sorted(results, key=lambda r: list(table).index(r["variant"])), title)
    log.info("ablation (%s):\n%s", root / "ablation.md", text)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(build_parser(), _run, argv, interrupted=(
        "finished variants and epochs are kept; rerun the same command to resume"))
