"""``make demo``: data -> features -> one trained fold -> evaluation report and plots.

    python -m mmer.demo [--config configs/demo.yaml] [--run-name demo]

Uses real RAVDESS videos when ``data/Actors`` holds actor folders (actors 1-12 only, to
keep the demo short), otherwise writes a small synthetic RAVDESS-format set (12 actors,
all 8 emotions, 96 clips) into the config's ``ravdess.root`` with the synthetic
generator. configs/demo.yaml runs the audio branch on the pretrained Whisper tiny.en
encoder (random weights, said plainly, when resnet/ lacks its file). Then extracts features (``python -m mmer.extract``), trains fold 0
(``train.py``), evaluates it (``evaluate.py``) and asks the model about one test clip
(``python -m mmer.predict``). Rerunning reuses the data, the cache and the trained run.
"""
from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from mmer.cli import run_command
from mmer.cli.evaluate import main as evaluate_main
from mmer.cli.predict import main as predict_main
from mmer.cli.train import main as train_main
from mmer.config import Config, load_config
from mmer.datasets import get_adapter
from mmer.extraction.job import extract
from mmer.io import atomic_write_json

log = logging.getLogger("mmer.cli.demo")

REAL_ROOT = Path("data/Actors")
DEMO_ACTORS = list(range(1, 13))
# 12 actors (the smoke config's 6 folds need a multiple of 6; fold 0 tests 2, validates on 4,
# trains on 6) x 8 emotions, one trial each: 96 clips. Extraction dominates the demo's time
# (about 1 s of CPU per clip with the smoke backbones), so the set is kept this small.
SYNTHETIC = {"actors": DEMO_ACTORS, "emotions": list(range(1, 9)), "statements": [1],
             "repetitions": [1], "intensities": [1], "size": [96, 72], "fps": 15.0, "seconds": 2.0}
MARKER = "demo_set.json"


def _stage(name: str, start: float) -> None:
    print(f"[demo] {name} done in {time.perf_counter() - start:.0f} s", flush=True)


def ensure_data(root: Path) -> tuple[Path, bool]:
    """(RAVDESS root to use, whether it is real data). Writes the synthetic set if needed."""
    if REAL_ROOT.is_dir() and any(REAL_ROOT.glob("Actor_*")):
        print(f"[demo] real RAVDESS found in {REAL_ROOT}: using actors 1-12", flush=True)
        return REAL_ROOT, True
    marker = root.parent / MARKER
    if marker.is_file():
        if json.loads(marker.read_text()) == SYNTHETIC:
            print(f"[demo] reusing the synthetic set in {root}", flush=True)
            return root, False
        print(f"[demo] {root} was made by an older demo: writing it again", flush=True)
        shutil.rmtree(root, ignore_errors=True)
        marker.unlink()
    elif root.is_dir() and any(root.glob("Actor_*")):
        print(f"[demo] using the existing clips in {root} (not made by the demo: may take longer)",
              flush=True)
        return root, False
    print(f"[demo] no data/Actors: writing a synthetic RAVDESS-format set to {root}", flush=True)
    spec = dict(SYNTHETIC, size=tuple(SYNTHETIC["size"]))
    get_adapter("ravdess").write_synthetic(root.parent, **spec)
    atomic_write_json(marker, SYNTHETIC)
    return root, False


def run_demo(config: str, run_name: str) -> int:
    """Run every stage; returns the exit code."""
    total = time.perf_counter()
    cfg = load_config(config)
    start = time.perf_counter()
    root, real = ensure_data(Path(cfg.ravdess.root))
    overrides = [f"ravdess.root={root}", f"ravdess.actors={DEMO_ACTORS}"]
    cfg = load_config(config, overrides)
    _stage("data", start)

    start = time.perf_counter()
    summary = extract(cfg)
    print(f"[demo] features: {summary.done} extracted, {summary.cached} already cached, "
          f"{summary.skipped} skipped", flush=True)
    _stage("feature extraction", start)

    start = time.perf_counter()
    args = ["--config", config, "--fold", "0", "--run-name", run_name]
    args += [a for o in overrides for a in ("--set", o)]
    if train_main(args) != 0:
        print(f"[demo] training failed (see the log above); to start over delete "
              f"{Path(cfg.train.runs_dir) / run_name}", file=sys.stderr)
        return 1
    _stage("training (fold 0)", start)

    start = time.perf_counter()
    run_dir = Path(cfg.train.runs_dir) / run_name
    if evaluate_main(["--run", str(run_dir)]) != 0:
        return 1
    _stage("evaluation", start)

    fold = run_dir / "fold_0"
    report = json.loads((fold / "report.json").read_text())
    clip = next(iter(_test_clips(cfg, report)))
    print(f"\n[demo] asking the model about one test clip: python -m mmer.predict {clip} --run {run_dir}")
    predict_main([str(clip), "--run", str(run_dir), "--k", "3"])

    print("\n[demo] ---------------------------------------------------------------")
    print(f"[demo] data: {'real RAVDESS' if real else 'SYNTHETIC clips (cartoon faces + tones)'} in {root}")
    print(f"[demo] fold report:  {fold / 'report.md'}  (numbers: {fold / 'report.json'})")
    for caption, name in report["plots"].items():
        print(f"[demo] {caption}: {fold / name}")
    for part, status in sorted(report["backbones"]["pretrained"].items()):
        print(f"[demo] {part} backbone: {status}")
    if report["backbones"]["random"]:
        print("[demo] NOTE: some backbones were RANDOMLY INITIALISED (no weight file, or "
              "backbone.pretrained: none): the numbers show the pipeline works, not what "
              "pretrained backbones would reach.")
    print(f"[demo] total {time.perf_counter() - total:.0f} s")
    return 0


def _test_clips(cfg: Config, report: dict) -> list[Path]:
    """Paths of the fold's test clips (for the prediction example)."""
    records, _ = get_adapter(cfg).records(cfg)
    paths = {r.clip_id: r.path for r in records}
    return [paths[c] for c in report["clips"]["test"] if paths.get(c) is not None]


def _run(args: argparse.Namespace) -> int:
    return run_demo(args.config, args.run_name)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mmer.demo", description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="configs/demo.yaml")
    parser.add_argument("--run-name", default="demo")
    return run_command(parser, _run, argv, interrupted=(
        "the data, features and finished epochs are kept; rerun make demo to go on"))
