"""``python -m mmer.faces``: a PNG contact sheet of the face crops a detector gives.

    python -m mmer.faces CLIP [CLIP ...] --out sheet.png [--detector mtcnn|haar]
        [--frames 6] [--margin 0.2] [--weights resnet]

One row per clip, `--frames` evenly spaced frames per row, each tile the square crop the
video features would take (``video.face_margin`` = `--margin`), or a grey "no face" tile.
A clip that cannot be decoded is left out and named (exit 2 when none is left).
Exit codes: 0 written, 2 bad input (no usable clip, missing MTCNN weights), 130 interrupted.
"""
from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path

from mmer.cli import run_command
from mmer.errors import BadInput
from mmer.features.mtcnn import DETECTORS
from mmer.viz.faces import clip_row, contact_sheet, make_detector, save_sheet

log = logging.getLogger("mmer.faces")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m mmer.faces", description=__doc__.split("\n")[0])
    parser.add_argument("clips", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, required=True, help="PNG file to write")
    parser.add_argument("--detector", choices=DETECTORS, default="mtcnn")
    parser.add_argument("--frames", type=int, default=6, help="tiles per clip")
    parser.add_argument("--margin", type=float, default=0.2, help="box padding, fraction of its side")
    parser.add_argument("--weights", type=Path, default=Path("resnet"), help="weights folder (MTCNN)")
    return parser


def _run(args: argparse.Namespace) -> int:
    detect = make_detector(args.detector, weights_dir=args.weights)
    rows = []
    for clip in args.clips:
        try:
            rows.append(clip_row(clip, detect, frames=args.frames, margin=args.margin))
        except BadInput as err:
            log.warning("left out: %s", err)
    if not rows:
        raise BadInput(f"no clip of {len(args.clips)} could be decoded; nothing to draw")
    title = f"{args.detector} face crops (margin {args.margin})"
    log.info("wrote %s", save_sheet(contact_sheet(rows, title), args.out))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(build_parser(), _run, argv, interrupted="no sheet was written")
