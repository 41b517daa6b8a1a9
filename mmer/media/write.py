"""Write real media containers with PyAV (the synthetic sets; tests make broken ones).

Every writer goes through :func:`mmer.io.atomic_path`, so an interrupted job
never leaves half a file under the final name. Video is H.264 (``libx264``,
yuv420p) by default, or lossless RGB H.264 (``libx264rgb``, qp 0) whose decoded
frames equal the written ones bit for bit. Audio is AAC in mp4/mkv/mov and
16-bit PCM or FLAC in wav/flac files.
"""
from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import soundfile as sf

from mmer.errors import BadInput
from mmer.io import atomic_path

CONTAINERS = {".mp4": "mp4", ".mkv": "matroska", ".mov": "mov", ".flv": "flv"}
AUDIO_FILES = {".wav": ("WAV", "PCM_16"), ".flac": ("FLAC", "PCM_16")}
AAC_FRAME = 1024  # samples per AAC frame


def _as_channels(audio: np.ndarray, path: Path) -> np.ndarray:
    """float32 (C, N) from (N,) or (C, N) audio, clipped to [-1, 1]."""
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim == 1:
        audio = audio[None]
    if audio.ndim != 2 or audio.shape[0] not in (1, 2):
        raise BadInput(f"{path}: audio must be (N,) or (C, N) with C in 1..2, "
                         f"got shape {audio.shape}")
    return np.clip(audio, -1.0, 1.0)


def write_audio(path: str | Path, audio: np.ndarray, sample_rate: int) -> Path:
    """Write (N,) or (C, N) float audio as a 16-bit .wav or .flac file."""
    path = Path(path)
    if path.suffix.lower() not in AUDIO_FILES:
        raise BadInput(f"{path}: audio files must end in {', '.join(AUDIO_FILES)}")
    fmt, subtype = AUDIO_FILES[path.suffix.lower()]
    data = _as_channels(audio, path).T
    with atomic_path(path) as tmp:
        # bytes: libsndfile takes a str path as UTF-8 only, and a folder name may not be.
        sf.write(os.fsencode(tmp), data, sample_rate, format=fmt, subtype=subtype)
    return path


def _add_video(out: av.container.OutputContainer, first: np.ndarray, fps: float,
               lossless: bool, crf: int, path: Path) -> av.video.stream.VideoStream:
    height, width = first.shape[:2]
    if first.ndim != 3 or first.shape[2] != 3 or first.dtype != np.uint8:
        raise BadInput(f"{path}: frames must be uint8 (H, W, 3), got {first.dtype} {first.shape}")
    if not lossless and (height % 2 or width % 2):
        raise BadInput(f"{path}: yuv420p needs even frame sides, got {width}x{height}")
    rate = Fraction(fps).limit_denominator(1001)
    stream = out.add_stream("libx264rgb" if lossless else "libx264", rate=rate)
    stream.width, stream.height = width, height
    stream.pix_fmt = "rgb24" if lossless else "yuv420p"
    stream.options = {"qp": "0"} if lossless else {"crf": str(crf), "preset": "veryfast"}
    return stream


def audio_frames(audio: np.ndarray, sample_rate: int) -> Iterator[av.AudioFrame]:
    layout = "mono" if audio.shape[0] == 1 else "stereo"
    for start in range(0, audio.shape[1], AAC_FRAME):
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(audio[:, start:start + AAC_FRAME]), format="fltp", layout=layout)
        frame.sample_rate = sample_rate
        frame.pts = start
        frame.time_base = Fraction(1, sample_rate)
        yield frame


def write_clip(path: str | Path, frames: Iterable[np.ndarray] | np.ndarray | None, fps: float,
               audio: np.ndarray | None = None, sample_rate: int = 48000, *,
               lossless: bool = False, crf: int = 23, faststart: bool = False) -> Path:
    """Write an .mp4/.mkv/.mov with H.264 video and AAC audio, interleaved in time.

    frames: uint8 (T, H, W, 3) RGB, or any iterable of (H, W, 3) frames (so long
    clips never sit in memory whole), or None for an audio-only container.
    audio: float (N,) mono or (C, N), C <= 2, in [-1, 1], or None for no audio stream.
    lossless: RGB H.264 at qp 0, decoded frames then equal `frames` exactly.
    faststart: put the mp4 index in front of the data (as streaming files do).
    """
    path = Path(path)
    fmt = CONTAINERS.get(path.suffix.lower())
    if fmt is None:
        raise BadInput(f"{path}: clips must end in {', '.join(CONTAINERS)}")
    if frames is None and audio is None:
        raise BadInput(f"{path}: nothing to write (no frames and no audio)")
    frame_iter = iter(frames) if frames is not None else iter(())
    first = next(frame_iter, None)
    if frames is not None and first is None:
        raise BadInput(f"{path}: zero frames; use make_zero_frame_clip for that on purpose")
    options = {"movflags": "+faststart"} if faststart else {}
    with atomic_path(path) as tmp, av.open(str(tmp), "w", format=fmt, options=options) as out:
        vstream = _add_video(out, first, fps, lossless, crf, path) if first is not None else None
        astream = pending = None
        if audio is not None:
            chans = _as_channels(audio, path)
            astream = out.add_stream("aac", rate=sample_rate)
            astream.layout = "mono" if chans.shape[0] == 1 else "stereo"
            pending = audio_frames(chans, sample_rate)
        out.start_encoding()
        a_next = next(pending, None) if pending is not None else None
        if vstream is not None:
            for i, image in enumerate(_chain(first, frame_iter)):
                # Audio up to the end of this video frame goes first: packets interleave in time.
                while a_next is not None and a_next.pts < (i + 1) * sample_rate / fps:
                    out.mux(astream.encode(a_next))
                    a_next = next(pending, None)
                out.mux(vstream.encode(_video_frame(image, i, vstream, path)))
            out.mux(vstream.encode(None))
        while a_next is not None:
            out.mux(astream.encode(a_next))
            a_next = next(pending, None)
        if astream is not None:
            out.mux(astream.encode(None))
    return path


def _chain(first: np.ndarray, rest: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
    yield first
    yield from rest


def _video_frame(image: np.ndarray, index: int, stream: av.video.stream.VideoStream,
                 path: Path) -> av.VideoFrame:
    if image.shape != (stream.height, stream.width, 3) or image.dtype != np.uint8:
        raise BadInput(f"{path}: frame {index} is {image.dtype} {image.shape}, expected "
                         f"uint8 {(stream.height, stream.width, 3)}")
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
    frame.pts = index
    frame.time_base = Fraction(1) / stream.codec_context.framerate
    return frame


def write_lossless_clip(path: str | Path, frames: np.ndarray, fps: float,
                        audio: np.ndarray | None = None, sample_rate: int = 16000) -> Path:
    """An mp4 whose decoded RGB frames equal `frames` (uint8 (T, H, W, 3)) exactly."""
    return write_clip(path, frames, fps, audio, sample_rate, lossless=True)
