"""Extraction throughput (clips/s) with every knob exposed, and its ratio to decoding alone.

    python -m bench.extract_gpu [--clips 32] [--device auto] [--workers 8] [--batch-size 48]
                                [--pin-memory/--no-pin-memory] [--bf16/--no-bf16]
                                [--video r3d_101] [--audio resnet18] [--face-crop/--no-face-crop]

RAVDESS-format clips (1280x720, 30 fps, 3.5 s, H.264 + AAC, written by bench.extract) go
through the extractor's own clip dataset (PyAV decode, face crop, snippets, log-mels) in
`--workers` DataLoader processes, and

    (a) decode only: the loader alone (decode + snippets + log-mels), clips/s;
    (b) backbones: the same loader feeding R3D-101 (video) and the audio ResNet-18,
        `--batch-size` snippets per forward pass, pinned host memory, bf16 autocast and
        channels-last on CUDA, clips/s (no cache writes);
    (c) python -m mmer.extract's own loop (mmer.extraction.job.extract, cache writes
        included; it pins memory and uses bf16 on CUDA), clips/s.

Prints clips/s and time per clip relative to (a). The first loader batch is warm-up
(cuDNN autotuning, worker start) and is left out of (a) and (b). Backbones have random
weights (same cost as pretrained ones).
"""
from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from bench.extract import make_clips
from mmer.config import Config, config_from_dict
from mmer.datasets import collect_records
from mmer.device import resolve_device
from mmer.extraction.job import extract
from mmer.features.backbones import Backbones
from mmer.features.clips import ClipDataset


def bench_config(data: Path, cache: Path, args: argparse.Namespace) -> Config:
    return config_from_dict({
        "ravdess": {"root": str(data / "Actors")},
        "backbone": {"video": args.video, "audio": args.audio, "pretrained": "none"},
        "features": {"cache_dir": str(cache), "num_workers": args.workers,
                     "batch_size": args.batch_size, "device": args.device},
        "video": {"face_detector": "haar" if args.face_crop else "none"},
    })


def _loader(cfg: Config, records, args: argparse.Namespace) -> DataLoader:
    n_snip = max(cfg.video.n_snippets, cfg.audio.n_segments, 1)
    return DataLoader(ClipDataset(records, cfg), batch_size=max(1, args.batch_size // n_snip),
                      num_workers=args.workers, collate_fn=list, pin_memory=args.pin_memory,
                      persistent_workers=False)


def _forward(module, x: torch.Tensor, device: torch.device, bf16: bool) -> torch.Tensor:
    x = x.to(device, non_blocking=True)  # from pinned memory when the loader pins (--pin-memory)
    amp = torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    if device.type == "cuda":
        x = x.contiguous(memory_format=torch.channels_last_3d if x.ndim == 5 else torch.channels_last)
    with amp:
        return module(x).to("cpu", torch.float16)


def timed_loop(loader: DataLoader, step) -> tuple[int, float]:
    """(clips after the first batch, seconds they took)."""
    n, start = 0, None
    for i, items in enumerate(loader):
        step(items)
        if i == 0:
            start = time.perf_counter()
            continue
        n += len(items)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return n, (time.perf_counter() - start) if start is not None else 0.0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.extract_gpu", description=__doc__.split("\n")[0])
    p.add_argument("--clips", type=int, default=32)
    p.add_argument("--device", choices=("cpu", "cuda", "auto"), default="auto")
    p.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1), help="decode workers")
    p.add_argument("--batch-size", type=int, default=48, help="snippets per forward pass")
    p.add_argument("--pin-memory", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--video", default="r3d_101")
    p.add_argument("--audio", default="resnet18")
    p.add_argument("--face-crop", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--skip-pipeline", action="store_true", help="leave out (c)")
    p.add_argument("--data", type=Path, default=None, help="folder for the clips (kept, reused)")
    args = p.parse_args(argv)
    device = resolve_device(args.device)
    with tempfile.TemporaryDirectory(prefix="mmer-bench-") as tmp:
        data = args.data or Path(tmp) / "data"
        if len(list((data / "Actors").glob("*/*.mp4"))) < args.clips:
            make_clips(data, args.clips)
        cfg = bench_config(data, Path(tmp) / "cache", args)
        records = [r for r in collect_records(cfg)[0] if r.path is not None][:args.clips]
        load = os.getloadavg()[0]
        decode = timed_loop(_loader(cfg, records, args), lambda items: None)
        nets = Backbones(cfg, device)

        def backbones(items) -> None:
            for key, module in (("snippets", nets.video), ("logmel", nets.audio)):
                if module is None:
                    continue
                x = torch.cat([it[key] for it in items if key in it])
                with torch.inference_mode():
                    for part in x.split(args.batch_size):
                        _forward(module, part, device, args.bf16)

        full = timed_loop(_loader(cfg, records, args), backbones)
        rows = [("(a) decode only", decode), (f"(b) {args.video} + audio {args.audio}", full)]
        if not args.skip_pipeline:
            s = extract(cfg, limit=len(records), progress=False)
            rows.append(("(c) mmer.extract loop", (s.done, s.seconds)))
    print(f"\n{len(records)} clips 1280x720 30 fps 3.5 s | device {device} "
          f"({torch.cuda.get_device_name() if device.type == 'cuda' else os.cpu_count()} "
          f"{'' if device.type == 'cuda' else 'CPU cores'}) | workers {args.workers} | batch "
          f"{args.batch_size} snippets | pin {args.pin_memory} | bf16 {args.bf16} | face crop "
          f"{args.face_crop} | torch threads {torch.get_num_threads()} | load {load:.1f} -> "
          f"{os.getloadavg()[0]:.1f}")
    base = decode[1] / max(decode[0], 1)
    print(f"{'stage':<32}{'clips':>6}{'clips/s':>10}{'s/clip':>9}{'x decode':>10}")
    for label, (n, secs) in rows:
        per = secs / max(n, 1)
        print(f"{label:<32}{n:>6}{n / secs if secs else 0:>10.2f}{per:>9.3f}{per / base if base else 0:>10.2f}")
    print("(c) includes model building, the first batch and cache writes; (a), (b) leave out the first batch")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
