"""How long does extracting the 24 real MEAD clips take, against decoding them alone?

    OMP_NUM_THREADS=1 python -m bench.mead_extract [--config configs/mead.yaml]
        [--encoders mobilenet_v2 efficientnet_lite0 mini_xception] [--views 0] [--set k=v ...]

For each encoder, a full ``extract`` of every clip of the config (decode, face detection,
snippets, frozen encoder, cache write) into a fresh temporary cache with
``features.train_views = --views``, against (a) decoding alone (PyAV, video only) and
(b) decoding + face detection + snippets (no encoder). Prints wall and CPU seconds for
the whole set and the ratio to decoding alone. Model building is excluded from (c)'s clip
loop time but included in its total. The machine is shared: CPU seconds say more.
"""
from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time

from mmer.config import load_config
from mmer.datasets import collect_records
from mmer.extraction.job import extract
from mmer.features.clips import build_cropper, prepare_clip
from mmer.media.decode import decode_clip

log = logging.getLogger("bench.mead_extract")


def _timed(fn) -> tuple[float, float]:
    t0, c0 = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - t0, time.process_time() - c0


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/mead.yaml")
    parser.add_argument("--encoders", nargs="+", default=["mobilenet_v2"])
    parser.add_argument("--views", type=int, default=0)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    log.setLevel(logging.INFO)
    cfg = load_config(args.config, [*args.overrides, f"features.train_views={args.views}"])
    records = collect_records(cfg)[0]
    decode = _timed(lambda: [decode_clip(r.path, audio=False) for r in records])
    cropper = build_cropper(cfg)
    prep = _timed(lambda: [prepare_clip(r, cfg, video=True, audio=False, cropper=cropper)
                           for r in records])
    lines = [f"{len(records)} clips, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}, "
             f"views {args.views}, detector {cfg.video.face_detector}",
             "| step | wall s | CPU s | wall / decode |", "|---|---|---|---|",
             f"| decode only | {decode[0]:.1f} | {decode[1]:.1f} | 1.0 |",
             f"| + face detection + snippets | {prep[0]:.1f} | {prep[1]:.1f} | {prep[0] / decode[0]:.1f} |"]
    for name in args.encoders:
        with tempfile.TemporaryDirectory() as tmp:
            feature = [] if name == "mini_xception" else ["backbone.video_feature=map"]
            run = load_config(args.config, [*args.overrides, f"features.train_views={args.views}",
                                            f"backbone.video={name}", f"features.cache_dir={tmp}",
                                            *feature])
            total = _timed(lambda run=run: extract(run, progress=False))
        lines.append(f"| full extraction, {name} | {total[0]:.1f} | {total[1]:.1f} | "
                     f"{total[0] / decode[0]:.1f} |")
    table = "\n".join(lines)
    log.info("%s", table)
    return table


if __name__ == "__main__":
    main()
