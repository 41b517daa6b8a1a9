"""Peak resident memory of preparing one clip for the backbones, long clip against short.

    PYTHONPATH=. python bench/decode_memory.py [--minutes 10] [--fps 5] [--size 1280x720]

Writes (once, into /tmp) a clip of `--minutes` at `--fps` and one of 4 s at 30 fps, both
H.264 (libx264 ultrafast, simple frames: a gradient and a moving square) with a 16 kHz
AAC tone. Each measurement runs in a fresh child process (``--child``), which decodes and
builds the snippets and log-mel segments exactly as extraction does
(:func:`mmer.features.clips.prepare_clip`, default RAVDESS settings, Haar face crop) and
prints its ``ru_maxrss``. Rows: the imports alone (the floor),  the corpus's cap (``ravdess.max_seconds``, 30 s), the cap
lifted (streaming alone bounds memory), and, for the short clip only, every frame decoded
(``decode_clip`` without a frame picker, which keeps them all).
"""
from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np


def write_clip(path: Path, seconds: float, fps: int, width: int, height: int) -> Path:
    """An H.264 (ultrafast) + AAC mp4 of simple frames, written frame by frame."""
    if path.is_file():
        return path
    tmp = path.with_suffix(".tmp.mp4")
    ramp = np.linspace(0, 255, width, dtype=np.uint8)[None, :, None].repeat(height, 0).repeat(3, 2)
    with av.open(str(tmp), "w") as out:
        video = out.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.options = {"preset": "ultrafast", "crf": "28"}
        audio = out.add_stream("aac", rate=16000)
        audio.layout = "mono"
        n_frames, per_frame = int(seconds * fps), 16000 // fps
        for i in range(n_frames):
            image = ramp.copy()
            x = (7 * i) % (width - 100)
            image[height // 3:height // 3 + 100, x:x + 100] = 255
            out.mux(video.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
            t = (np.arange(per_frame) + i * per_frame) / 16000
            wave = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)[None]
            frame = av.AudioFrame.from_ndarray(wave, format="fltp", layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = 16000, i * per_frame, Fraction(1, 16000)
            for packet in audio.encode(frame):
                out.mux(packet)
        out.mux(video.encode(None))
        out.mux(audio.encode(None))
    tmp.rename(path)
    return path


def child(path: Path, mode: str) -> None:
    from mmer.config import config_from_dict
    from mmer.datasets.records import ClipRecord
    from mmer.features.clips import prepare_clip
    from mmer.media.decode import decode_clip
    start = time.perf_counter()
    if mode == "imports":  # the floor: torch, OpenCV, PyAV and the package loaded, nothing decoded
        shape = ()
    elif mode == "every-frame":
        clip = decode_clip(path, audio=True)
        shape = clip.frames.shape
    else:
        cap = {"ravdess": {"max_seconds": 1e9}} if mode == "no-cap" else {}
        cfg = config_from_dict({"backbone": {"pretrained": "none"}, **cap})
        out = prepare_clip(ClipRecord(path.stem, path, 0, "1", path.stem, {}), cfg, video=True, audio=True)
        shape = (tuple(out["snippets"].shape), tuple(out["logmel"].shape), out["flags"])
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{path.name:<24} {mode:<12} peak RSS {peak_mb:8.0f} MB  {time.perf_counter() - start:6.1f} s  {shape}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--fps", type=int, default=5)
    parser.add_argument("--size", default="1280x720")
    parser.add_argument("--out", type=Path, default=Path("/tmp"))
    parser.add_argument("--child", nargs=2, metavar=("CLIP", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(Path(args.child[0]), args.child[1])
        return
    width, height = (int(v) for v in args.size.split("x"))
    clips = []
    for seconds, fps in ((4.0, 30), (60 * args.minutes, args.fps)):  # RAVDESS clips: 30 fps
        name = f"bench_{width}x{height}_{seconds:g}s_{fps}fps.mp4"
        start = time.perf_counter()
        clips.append(write_clip(args.out / name, seconds, fps, width, height))
        print(f"clip {name}: {clips[-1].stat().st_size / 1e6:.1f} MB ({time.perf_counter() - start:.0f} s to make "
              "or already there)", flush=True)
    runs = [(clips[0], "imports"), (clips[0], "every-frame"), (clips[0], "cap"), (clips[1], "cap"), (clips[1], "no-cap")]
    for clip, mode in runs:
        subprocess.run([sys.executable, __file__, "--child", str(clip), mode], check=True)


if __name__ == "__main__":
    main()
