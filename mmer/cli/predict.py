"""``python -m mmer.predict``: ask a trained run about one clip.

    python -m mmer.predict CLIP.mp4 --run runs/NAME [--fold K] [--which best|last] [--k 5] [--json]
    python -m mmer.predict CLIP.mp4 --checkpoint runs/NAME/fold_0/best.pt [...]

Prints the softmax head's probabilities, the kNN vote and the nearest training clips.
Exit codes: 0 done, 1 the clip cannot be used, 2 bad run, checkpoint or cache.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from mmer.cli import run_command
from mmer.prediction.predict import ClipError, predict_clip, render_text, resolve_checkpoint


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m mmer.predict", description=__doc__.split("\n")[0])
    parser.add_argument("clip", type=Path, help="video (mp4) or audio file, in the run's modality")
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--run", type=Path, help="run folder (runs/NAME)")
    which.add_argument("--checkpoint", type=Path, help="a fold's best.pt or last.pt")
    parser.add_argument("--fold", type=int, default=None, help="fold of the run (default: the first)")
    parser.add_argument("--which", choices=("best", "last"), default="best")
    parser.add_argument("--k", type=int, default=5, help="nearest training clips to list (default 5)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--device", default="cpu")
    return parser


def _run(args: argparse.Namespace) -> int:
    ckpt = resolve_checkpoint(args.run, args.checkpoint, args.fold, args.which)
    try:
        result = predict_clip(args.clip, ckpt, k=args.k, device=args.device)
    except ClipError as err:
        print(f"error: cannot use clip: {err}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2) if args.json else render_text(result))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(build_parser(), _run, argv, level=logging.WARNING, plain_errors=True)
