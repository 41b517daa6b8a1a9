"""Broken media made on purpose, for the bad-input tests (not part of the library)."""
from __future__ import annotations

from pathlib import Path

import av
import numpy as np

from mmer.io import atomic_path, atomic_write_bytes
from mmer.media.write import audio_frames


def make_zero_frame_clip(path: str | Path, sample_rate: int = 16000, seconds: float = 1.0) -> Path:
    """A Matroska file with an H.264 video stream holding no frames, plus silent AAC audio.

    Matroska, because the mp4 muxer drops a track without samples, which would
    give "no video stream" instead. Use a ``.mkv`` name.
    """
    path = Path(path)
    if path.suffix.lower() != ".mkv":
        raise ValueError(f"{path}: a zero-frame clip must be .mkv (mp4 drops empty tracks)")
    with atomic_path(path) as tmp, av.open(str(tmp), "w", format="matroska") as out:
        video = out.add_stream("libx264", rate=15)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        astream = out.add_stream("aac", rate=sample_rate)
        astream.layout = "mono"
        out.start_encoding()
        for frame in audio_frames(np.zeros((1, int(seconds * sample_rate)), np.float32),
                                   sample_rate):
            out.mux(astream.encode(frame))
        out.mux(astream.encode(None))
    return path


def make_corrupt_file(path: str | Path, n_bytes: int = 4096, seed: int = 0) -> Path:
    """Random bytes behind a plausible mp4 ``ftyp`` box: named and typed like an mp4, not one."""
    rng = np.random.default_rng(seed)
    head = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2"
    atomic_write_bytes(path, head + rng.integers(0, 256, n_bytes, dtype=np.uint8).tobytes())
    return Path(path)


def make_truncated_copy(src: str | Path, dst: str | Path, fraction: float = 0.6) -> Path:
    """Copy the first `fraction` of `src`'s bytes to `dst`, like an interrupted download."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"{dst}: fraction must be in (0, 1), got {fraction}")
    data = Path(src).read_bytes()
    atomic_write_bytes(dst, data[: int(len(data) * fraction)])
    return Path(dst)


def make_timed_clip(path: str | Path, frames: np.ndarray, times_ms: list[int] | np.ndarray,
                    end_ms: int, *, rotation: int = 0) -> Path:
    """Lossless RGB H.264 mp4 whose frame i is shown from ``times_ms[i]`` (a variable frame
    rate when the gaps differ) until the next, the last until `end_ms`; with `rotation`
    (counter-clockwise degrees) in the display matrix, as a phone writes it."""
    from fractions import Fraction
    path = Path(path)
    with atomic_path(path) as tmp, av.open(str(tmp), "w", format="mp4") as out:
        stream = out.add_stream("libx264rgb", rate=30)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt, stream.options = "rgb24", {"qp": "0"}
        stream.codec_context.time_base = Fraction(1, 1000)
        if rotation:
            stream.set_display_rotation(rotation)
        stops = list(times_ms[1:]) + [end_ms]
        for image, at, stop in zip(frames, times_ms, stops, strict=True):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts, frame.time_base = int(at), Fraction(1, 1000)
            frame.duration = int(stop - at)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path
