"""Write synthetic sets in the real formats of RAVDESS and MELD.

    python -m mmer.synthetic --out data/synth --actors 1-24 --meld 40

writes ``data/synth/Actors/Actor_XX/01-01-EE-II-SS-RR-AA.mp4`` (and, with
``--audio-twins``/``--video-twins``, ``03-...wav`` and video-only ``02-...mp4``)
and with ``--meld N`` a MELD-style tree (see :mod:`mmer.synth.meld`).
"""
from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from mmer.cli import setup_logging
from mmer.synth.meld import make_meld_set
from mmer.synth.ravdess import make_ravdess_set
from mmer.synth.render import EMOTION_CODES


def _int_range(text: str) -> list[int]:
    """'1-4,7' -> [1, 2, 3, 4, 7]."""
    values: list[int] = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        values.extend(range(int(lo), int(hi or lo) + 1))
    return values


def _emotions(text: str) -> list[int]:
    """'all', or codes and names separated by commas: '1,3,angry'."""
    if text == "all":
        return list(EMOTION_CODES.values())
    return [int(t) if t.isdigit() else EMOTION_CODES[t] for t in text.split(",")]


def _size(text: str) -> tuple[int, int]:
    width, _, height = text.lower().partition("x")
    return int(width), int(height)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry: ``python -m mmer.synthetic --out DIR ...``."""
    parser = argparse.ArgumentParser(prog="python -m mmer.synthetic", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    parser.add_argument("--actors", default="1-24", help="actor numbers, e.g. 1-24 or 1-4,7; "
                        "'none' writes no RAVDESS clips")
    parser.add_argument("--emotions", default="all", help="'all' or codes/names: 1,3,angry")
    parser.add_argument("--statements", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repetitions", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--intensities", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--size", type=_size, default=(128, 96), help="WIDTHxHEIGHT, even sides")
    parser.add_argument("--fps", type=float, default=15.0)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--sample-rate", type=int, default=48000)
    parser.add_argument("--audio-twins", action="store_true", help="also write 03-...wav")
    parser.add_argument("--video-twins", action="store_true", help="also write 02-...mp4")
    parser.add_argument("--meld", type=int, default=0, metavar="N",
                        help="also write N MELD-style train utterances (+ dev and test)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        actors = [] if args.actors == "none" else _int_range(args.actors)
        emotions = _emotions(args.emotions)
    except (ValueError, KeyError) as err:
        parser.error(f"bad --actors/--emotions value: {err}")
    setup_logging()
    common = dict(size=args.size, fps=args.fps, seconds=args.seconds, seed=args.seed)
    if actors:
        make_ravdess_set(args.out, actors=actors, emotions=emotions, statements=args.statements,
                         repetitions=args.repetitions, intensities=args.intensities,
                         sample_rate=args.sample_rate, audio_twins=args.audio_twins,
                         video_twins=args.video_twins, **common)
    if args.meld:
        make_meld_set(args.out, args.meld, **common)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
