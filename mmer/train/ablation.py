"""Modality and fusion ablation on the same folds: each modality alone, then fused.

    python -m mmer.ablation --config configs/ravdess_av_aus.yaml [--set key=value ...]
        [--run-name NAME] [--variants visual,audio,cross_attention,concat,late]
        [--extract] [--plots] [--table-only]

Every variant is the config with only ``model.modalities`` / ``model.fusion`` changed:
one variant per modality of ``model.modalities`` (alone, concat head) and one per
fusion option over all of them. Each is trained on every fold with
:func:`mmer.training.run_fold` (resuming from ``last.pt``) and evaluated with
:func:`mmer.eval.evaluate.evaluate_run` into ``<runs_dir>/<NAME>/<variant>/``. A variant
whose evaluation finished with the same config (``ablation_variant.json``) is reused,
so rerunning the command resumes. Writes ``ablation.md`` and ``ablation.json`` (per
fold, mean +- std of accuracy and UAR for the softmax head and FAISS kNN) to
``<runs_dir>/<NAME>/``. Exit codes as train.py: 0 done, 1 training failed, 2 bad config or data.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mmer.cli import setup_logging
from mmer.config import Config, ConfigError, config_to_dict, load_config
from mmer.io import atomic_write_json, atomic_write_text
from mmer.models.fusion import FUSIONS

log = logging.getLogger("mmer.ablation")
MARKER = "ablation_variant.json"
METRICS = ("accuracy", "UAR")


def variants(cfg: Config) -> dict[str, tuple[list[str], str]]:
    """{variant name: (modalities, fusion)}: each modality alone, then each fusion of all."""
    mods = list(cfg.model.modalities)
    out = {m: ([m], "concat") for m in mods}
    if len(mods) > 1:
        out.update({f"fused_{f}": (mods, f) for f in FUSIONS})
    return out


def variant_config(cfg: Config, modalities: list[str], fusion: str) -> Config:
    """`cfg` with only the model's modalities and fusion changed."""
    model = dataclasses.replace(cfg.model, modalities=list(modalities), fusion=fusion)
    if fusion != "late" or len(modalities) != len(cfg.model.modalities):
        model = dataclasses.replace(model, late_weights=None)
    return dataclasses.replace(cfg, model=model)


def fold_scores(reports: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Per-fold and mean +- std of accuracy and UAR of each method (softmax head, kNN k=...)."""
    from mmer.eval.report import aggregate_folds
    agg = aggregate_folds(reports)
    keys = [k for k in agg["mean"] if k.split(" / ")[-1] in METRICS and not k.startswith("embedding")]
    return {"folds": agg["folds"], "std_ddof": agg["std_ddof"],
            "per_fold": {f: {k: s[k] for k in keys} for f, s in agg["per_fold"].items()},
            "mean": {k: agg["mean"][k] for k in keys}, "std": {k: agg["std"][k] for k in keys}}


def _finished(cfg: Config, root: Path, name: str) -> dict[str, Any] | None:
    """The stored result of variant `name` when it finished with config `cfg`, else None."""
    marker = root / name / MARKER
    if not marker.is_file():
        return None
    done = json.loads(marker.read_text(encoding="utf-8"))
    return done if done.get("config") == config_to_dict(cfg) else None


def run_variant(cfg: Config, root: Path, name: str, *, plots: bool = False) -> dict[str, Any]:
    """Train every fold of variant `name` (config `cfg`) under ``root/name`` and evaluate it."""
    from mmer.eval.evaluate import evaluate_run
    from mmer.training import run_fold

    out = root / name
    done = _finished(cfg, root, name)
    if done is not None:
        log.info("variant %s: reusing %s", name, out / MARKER)
        return done
    start = time.perf_counter()
    for fold in range(cfg.split.n_folds):
        log.info("variant %s: fold %d", name, fold)
        result = run_fold(cfg, fold, out / f"fold_{fold}")
        log.info("variant %s: fold %d result: %s", name, fold, result)
    reports, _ = evaluate_run(out, plots=plots)
    result = {"variant": name, "modalities": list(cfg.model.modalities), "fusion": cfg.model.fusion,
              "scores": fold_scores(reports), "seconds": round(time.perf_counter() - start, 1),
              "config": config_to_dict(cfg)}
    atomic_write_json(out / MARKER, result)
    return result


def _cell(mean: float | None, std: float | None) -> str:
    if mean is None:
        return "—"
    return f"{100 * mean:.1f} ± {100 * std:.1f}" if std is not None else f"{100 * mean:.1f}"


def ablation_markdown(results: Sequence[dict[str, Any]], title: str) -> str:
    """Markdown table: one row per variant, mean ± std (%) of each method's accuracy and UAR."""
    keys = [k for k in results[0]["scores"]["mean"]] if results else []
    header = ["variant", "modalities", "fusion", *keys, "folds", "train+eval s"]
    lines = [f"# {title}", "", "Mean ± sample std (ddof=1) over folds, in %, on the test actors of each fold.",
             "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in results:
        s = r["scores"]
        cells = [_cell(s["mean"].get(k), s["std"].get(k)) for k in keys]
        lines.append(f"| {r['variant']} | {'+'.join(r['modalities'])} | "
                     f"{r['fusion'] if len(r['modalities']) > 1 else '—'} | " + " | ".join(cells)
                     + f" | {len(s['folds'])} | {r.get('seconds', '—')} |")
    lines += ["", "Per fold (test accuracy / UAR of the softmax head):", ""]
    for r in results:
        per = r["scores"]["per_fold"]
        lines.append(f"- {r['variant']}: " + ", ".join(
            f"fold {f} {_cell(v.get('softmax head / accuracy'), None)} / {_cell(v.get('softmax head / UAR'), None)}"
            for f, v in per.items()))
    return "\n".join(lines) + "\n"


def write_ablation(root: Path, results: Sequence[dict[str, Any]], title: str) -> str:
    table = ablation_markdown(results, title)
    atomic_write_json(root / "ablation.json", {"variants": [{k: v for k, v in r.items() if k != "config"}
                                                            for r in results]})
    atomic_write_text(root / "ablation.md", table)
    return table


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m mmer.ablation", description=__doc__.split("\n")[0])
    parser.add_argument("--config", required=True, help="YAML config file (the fused model)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, e.g. --set ravdess.root=DIR")
    parser.add_argument("--run-name", default=None, help="run folder name (default: <config name>_ablation)")
    parser.add_argument("--variants", default=None,
                        help="comma-separated variants in the order to run (default: all; names: each "
                             "modality, fused_<fusion> or just the fusion name)")
    parser.add_argument("--extract", action="store_true", help="extract missing features first")
    parser.add_argument("--plots", action="store_true", help="write t-SNE and confusion PNGs per fold")
    parser.add_argument("--table-only", action="store_true",
                        help="train nothing: write the table from every finished variant in the run "
                             "folder, whatever config it was trained with (e.g. a partial ablation)")
    return parser.parse_args(argv)


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


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging()
    from mmer.engine import NonFiniteLossError
    from mmer.training import CacheIncompleteError
    try:
        cfg = load_config(args.config, args.overrides)
        if args.extract:
            from mmer.extract import extract
            extract(cfg, progress=False)
        root = Path(cfg.train.runs_dir) / (args.run_name or f"{cfg.name}_ablation")
        table = variants(cfg)
        chosen = _chosen(table, args.variants)
        title = f"Ablation of `{cfg.name}` ({root})"
        if args.table_only:
            done = [json.loads((root / n / MARKER).read_text(encoding="utf-8")) for n in table
                    if (root / n / MARKER).is_file()]
            if not done:
                raise FileNotFoundError(f"{root}: no finished variant ({MARKER}) to tabulate")
            text = write_ablation(root, done, title)
            log.info("ablation (%s):\n%s", root / "ablation.md", text)
            return 0
        results = [r for r in (_finished(variant_config(cfg, *table[n]), root, n) for n in table
                               if n not in chosen) if r]
        for name in chosen:
            results.append(run_variant(variant_config(cfg, *table[name]), root, name, plots=args.plots))
            text = write_ablation(root, sorted(results, key=lambda r: list(table).index(r["variant"])),
                                  title)
    except (ConfigError, CacheIncompleteError, ValueError, FileNotFoundError) as err:
        log.error("%s", err)
        return 2
    except NonFiniteLossError as err:
        log.error("training stopped: %s", err)
        return 1
    log.info("ablation (%s):\n%s", root / "ablation.md", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
