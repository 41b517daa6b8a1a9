"""Wall time of a whole recipe: feature extraction, training of every fold, evaluation.

    PYTHONPATH=. python bench/recipe.py --config CONFIG [--set key=value ...] [--repeats 3]
                                        [--folds all] [--work DIR]

Each repeat starts from nothing: a fresh feature cache and runs folder under `--work`
(kept there; by default a temporary folder, removed at the end), then runs, each in its own process as a user would,

    python -m mmer.extract --config CONFIG ...       (skipped for configs without media)
    python train.py --config STAGE1 ...              (only for a config with text.stage1)
    python train.py --config CONFIG ... [--folds all]
    python evaluate.py --run RUN --no-plots

and prints, as medians over the repeats, the seconds of each step and of the whole recipe,
the seconds per training epoch of each training (its wall time over the epochs every fold
ran, their validation included) and the bytes per cached item (the cache folder's files over
the clips or utterances its entries hold). Stage 1 gets only the ``--set`` items train.py
would pass down to it, so its run is the one the stage-2 command then finds and does not
retrain. The thread count is the caller's (``OMP_NUM_THREADS``); absolute times hold for
the machine they ran on only.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def _timed(cmd: list[str], log: Path) -> float:
    """Run `cmd` from the project root, output to `log`; its wall seconds. A failure stops the bench."""
    start = time.perf_counter()
    with open(log, "w") as out:
        proc = subprocess.run(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, check=False)
    if proc.returncode != 0:
        sys.exit(f"bench/recipe.py: {' '.join(cmd[1:3])} ... exited {proc.returncode}; see {log}")
    return time.perf_counter() - start


def _recipe(config: str, sets: list[str]) -> dict:
    """What the bench runs for `config`: whether it reads media (so extraction runs), its run
    name, and its stage-1 config (None without ``text.stage1``), that config's run name and
    the ``--set`` items passed down to it."""
    from mmer.config import load_config
    from mmer.config.keys import needs_media
    from mmer.train.chain import stage1_overrides
    cfg = load_config(config, sets)
    plan = {"media": needs_media(cfg), "name": cfg.name, "stage1": cfg.text.stage1}
    if cfg.text.stage1 is not None:
        plan["stage1_sets"] = stage1_overrides(cfg, sets)
        plan["stage1_name"] = load_config(cfg.text.stage1, plan["stage1_sets"]).name
    return plan


def _epochs(run: Path) -> int:
    """Epochs trained over every fold of `run` (the lines of each metrics.jsonl)."""
    return sum(len(p.read_text().splitlines()) for p in run.rglob("metrics.jsonl"))


def _items(path: Path) -> int:
    """Items in one cache file: a table of many (the text and trunk caches: a dict with
    ``keys``, one per utterance) or one clip's entry. Memory-mapped: the tensors are not read."""
    blob = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    return len(blob["keys"]) if isinstance(blob, dict) and "keys" in blob else 1


def _cache_bytes_per_item(cache: Path) -> tuple[float, int]:
    """(bytes of every file in `cache` over the items its .pt files hold, those items)."""
    files = [p for p in cache.rglob("*") if p.is_file()]
    items = sum(_items(p) for p in files if p.suffix == ".pt")
    return (sum(p.stat().st_size for p in files) / items if items else 0.0), items


def _train(args: list[str], run: Path, log: Path, prefix: str) -> dict[str, float]:
    """Time one train.py command; its seconds, the epochs it trained and seconds per epoch."""
    seconds = _timed([sys.executable, "train.py", *args], log)
    epochs = _epochs(run)
    return {f"{prefix}_s": seconds, f"{prefix}_epochs": float(epochs),
            f"{prefix}_s_per_epoch": seconds / epochs if epochs else float("nan")}


def one_repeat(config: str, sets: list[str], folds: str | None, work: Path, plan: dict) -> dict[str, float]:
    work.mkdir(parents=True, exist_ok=True)
    where = ["--set", f"features.cache_dir={work / 'cache'}", "--set", f"train.runs_dir={work / 'runs'}"]

    def args(cfg: str, items: list[str]) -> list[str]:
        return ["--config", cfg, *(a for s in items for a in ("--set", s)), *where]
    row = {"extract_s": 0.0}
    if plan["media"]:
        row["extract_s"] = _timed([sys.executable, "-m", "mmer.extract", *args(config, sets)], work / "extract.log")
    if plan["stage1"] is not None:
        row.update(_train(args(plan["stage1"], plan["stage1_sets"]), work / "runs" / plan["stage1_name"],
                          work / "stage1.log", "stage1"))
    run = work / "runs" / plan["name"]
    row.update(_train([*args(config, sets), *(["--folds", folds] if folds else [])], run,
                      work / "train.log", "train"))
    row["evaluate_s"] = _timed([sys.executable, "evaluate.py", "--run", str(run), "--no-plots"],
                               work / "evaluate.log")
    row["total_s"] = sum(v for k, v in row.items() if k.endswith("_s"))
    row["cache_bytes_per_item"], row["cache_items"] = _cache_bytes_per_item(work / "cache")
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--folds", default=None, help="passed to train.py (e.g. all)")
    parser.add_argument("--work", type=Path, default=None,
                        help="where caches and runs go, kept (default: a temporary folder, removed)")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be 1 or more")
    plan = _recipe(args.config, args.sets)
    with tempfile.TemporaryDirectory(prefix="mmer-recipe-") as tmp:
        base = args.work or Path(tmp)
        rows = []
        for i in range(args.repeats):
            rows.append(one_repeat(args.config, args.sets, args.folds, base / f"repeat_{i}", plan))
            print(f"repeat {i}: " + json.dumps({k: round(v, 1) for k, v in rows[-1].items()}), flush=True)
    print(f"{args.config} {' '.join(args.sets)} (OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, "
          f"{args.repeats} repeats, medians)")
    for key in rows[0]:
        print(f"  {key:22} {statistics.median(r[key] for r in rows):12.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
