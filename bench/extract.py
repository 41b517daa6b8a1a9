"""How much slower is feature extraction than decoding alone?

    python -m bench.extract [--clips 8] [--device auto] [--workers 2] [--batch-size 24]

Writes RAVDESS-like clips (1280x720, 30 fps, 3.5 s, H.264 + AAC; synthetic, see
mmer.synth.render) and prints the median per-clip time of

    (a) decoding alone with PyAV (video + audio, one process),
    (b) full extraction with R3D-18 (decode, snippets, log-mels, backbones, cache write),
    (c) the same with the 3D ResNet-101,

and the ratios b/a and c/a. Backbones use random weights (same cost as pretrained).
For (b) and (c) a clip's time is the wall time of its loader batch shared by the clips
in it, model building excluded; the median over clips skips the warm-up. CPU seconds
per clip (decode workers included) are printed too: on a shared machine they say
more than wall time, which other jobs inflate; the load average is printed with them.
"""
from __future__ import annotations

import argparse
import logging
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch

from mmer.config import Config, config_from_dict
from mmer.datasets import collect_records
from mmer.device import resolve_device
from mmer.extraction.job import extract
from mmer.media.decode import decode_clip
from mmer.synth.ravdess import make_ravdess_set

log = logging.getLogger("bench.extract")


def make_clips(folder: Path, n_clips: int) -> None:
    """`n_clips` RAVDESS-named 1280x720 30 fps 3.5 s H.264 + AAC clips under folder/Actors."""
    per_actor = 4  # emotions 1..4 at normal intensity, one statement and repetition
    make_ravdess_set(folder, actors=range(1, 1 + -(-n_clips // per_actor)),
                     emotions=range(1, 1 + per_actor), statements=(1,), repetitions=(1,),
                     intensities=(1,), size=(1280, 720), fps=30.0, seconds=3.5,
                     sample_rate=48000)


def bench_config(data: Path, cache: Path, video: str, args: argparse.Namespace) -> Config:
    return config_from_dict({
        "ravdess": {"root": str(data / "Actors")},
        "backbone": {"video": video, "pretrained": "none"},
        "features": {"cache_dir": str(cache), "num_workers": args.workers,
                     "batch_size": args.batch_size, "device": args.device},
        "video": {"face_detector": "haar" if args.face_crop else "none"},
    })


def time_decode(paths: list[Path], sample_rate: int) -> tuple[list[float], float]:
    """Wall seconds per clip, and mean CPU seconds per clip, of decoding alone."""
    times, cpu = [], time.process_time()
    for path in paths:
        start = time.perf_counter()
        decode_clip(path, video=True, audio=True, sample_rate=sample_rate)
        times.append(time.perf_counter() - start)
    return times, (time.process_time() - cpu) / len(paths)


def time_extract(cfg: Config, n_clips: int) -> tuple[list[float], float]:
    """Wall seconds per clip, and mean CPU seconds per clip (workers included), of extraction."""
    summary = extract(cfg, limit=n_clips, progress=False)
    if summary.done != n_clips:
        raise SystemExit(f"bench: {cfg.backbone.video} extracted {summary.done} of {n_clips} "
                         f"clips (skip list: {cfg.features.cache_dir})")
    return summary.clip_seconds, summary.cpu_seconds / n_clips


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.extract", description=__doc__.split("\n")[0])
    parser.add_argument("--clips", type=int, default=8, help="number of clips (default 8)")
    parser.add_argument("--device", choices=("cpu", "cuda", "auto"), default="auto")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader decode workers")
    parser.add_argument("--batch-size", type=int, default=24, help="snippets per forward pass")
    parser.add_argument("--face-crop", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--data", type=Path, default=None,
                        help="folder for the clips (kept; reused when it already has them)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="mmer-bench-") as tmp:
        data = args.data or Path(tmp) / "data"
        if len(list((data / "Actors").glob("*/*.mp4"))) < args.clips:
            make_clips(data, args.clips)
        configs = {video: bench_config(data, Path(tmp) / f"cache-{video}", video, args)
                   for video in ("r3d_18", "r3d_101")}
        paths = [r.path for r in collect_records(configs["r3d_18"])[0][:args.clips]]
        device = resolve_device(args.device)
        load_before = os.getloadavg()[0]
        rows = [("(a) decode only (PyAV)", time_decode(paths, 16000)),
                ("(b) extract, R3D-18", time_extract(configs["r3d_18"], len(paths))),
                ("(c) extract, R3D-101", time_extract(configs["r3d_101"], len(paths)))]
    base, base_cpu = statistics.median(rows[0][1][0]), rows[0][1][1]
    print(f"\n{len(paths)} clips 1280x720 30 fps 3.5 s | device {device} | workers {args.workers} "
          f"| batch {args.batch_size} snippets | face crop {args.face_crop} | torch threads "
          f"{torch.get_num_threads()} | load avg {load_before:.1f} -> {os.getloadavg()[0]:.1f}")
    print(f"{'stage':<24}{'median s/clip':>14}{'x decode':>9}{'CPU s/clip':>12}{'x decode':>9}")
    for label, (times, cpu) in rows:
        med = statistics.median(times)
        print(f"{label:<24}{med:>14.3f}{med / base:>9.2f}{cpu:>12.3f}{cpu / base_cpu:>9.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
