"""Decode a media file into RGB frames and mono float audio with one PyAV pass.

The container is demuxed once, sequentially, with both streams interleaved as
they are stored (no seeking). Video frames are converted to RGB; audio frames
are converted to float, averaged over channels and resampled with soxr once
at the end (one call over the whole signal gives the same result as a
streaming resampler without its frame-boundary bookkeeping).

Broken input raises :class:`DecodeError` naming the file and the problem:

- missing, unreadable or a folder: "cannot open (...)"
- not a media container, empty or corrupt header: "not a readable media container"
- a video stream needed but absent: "no video stream"; audio likewise: "no audio stream"
- a video stream with nothing in it: "zero decoded video frames" (audio likewise)
- a truncated file. An mp4 cut short usually loses its ``moov`` index (written
  at the end by default), so it cannot be opened at all: "not a readable media
  container". One with the index in front (``+faststart``) opens, yields the
  frames before the cut, and the decoder then fails on the partial last
  packet. We refuse such files too ("truncated or corrupt stream after N video
  frames") rather than keep the partial frames: snippets are spread over the
  whole clip, and a clip missing its end would silently shift every snippet.
  A cut that lands exactly on a packet boundary raises nothing in FFmpeg, so
  the number of decoded frames is checked against the count the container
  declares ("truncated: decoded N of M video frames").
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np
import soxr

from mmer.errors import BadInput
from mmer.media.notes import audio_notes
from mmer.media.timeline import video_timeline

log = logging.getLogger(__name__)

# A file whose decode yields fewer than this fraction of its declared video frames
# is refused as truncated. Edit lists and decoder delay legitimately drop a frame or
# two, never a tenth of a clip.
MIN_DECLARED_FRACTION = 0.9
# Frames smaller than this on a side hold no face: the file is refused.
MIN_FRAME_SIDE = 16
# A frame picker: (pts int64 (T,) sorted, end of the last frame, in the stream's time base)
# -> the timeline indices of the frames to keep.
FramePicker = Callable[[np.ndarray, int], np.ndarray]


class DecodeError(BadInput):
    """A media file that cannot be decoded as asked; the message names the file and why."""

    def __init__(self, path: str | Path, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = str(path)
        self.problem = problem


@dataclass
class DecodedClip:
    """The decoded content of one media file.

    frames: uint8 (U, H, W, 3) RGB, displayed upright (the stream's rotation applied), or
    None when video was not asked for: every frame (U = T), or with a `pick` only the
    frames it chose, in timeline order.
    frame_index: int64 (U,) the position of each kept frame in the clip's timeline of T
    frames (sorted presentation times); `n_frames` = T.
    fps: average frame rate of the video stream (0.0 when video was not asked for).
    audio: float32 (N,) mono in [-1, 1] at `sample_rate`, or None when not asked for.
    truncated: True when `max_seconds` cut something off.
    notes: what was odd but usable (e.g. a wav header claiming more data than the file
    holds, a silent audio track); extraction records them in the entry's ``meta["flags"]``.
    """

    frames: np.ndarray | None
    fps: float
    audio: np.ndarray | None
    sample_rate: int
    truncated: bool
    notes: list[str] = field(default_factory=list)
    frame_index: np.ndarray | None = None
    n_frames: int = 0


def _open(path: Path) -> av.container.InputContainer:
    try:
        return av.open(str(path), mode="r")
    except (FileNotFoundError, IsADirectoryError, PermissionError) as err:
        raise DecodeError(path, f"cannot open ({err.strerror or type(err).__name__})") from None
    except (av.FFmpegError, UnicodeDecodeError) as err:
        raise DecodeError(path, f"not a readable media container ({_reason(err)})") from None


def _reason(err: Exception) -> str:
    return getattr(err, "strerror", None) or str(err) or type(err).__name__


class _Collector:
    """Accumulates decoded frames and audio, stopping each stream at `max_seconds`."""

    def __init__(self, max_seconds: float | None, timeline: np.ndarray | None = None,
                 wanted: np.ndarray | None = None) -> None:
        self.max_seconds = max_seconds
        self.frames: list[np.ndarray] = []
        self.index: list[int] = []
        self.n_decoded = 0
        # With a timeline, frame j covers timeline positions [j, next decoded frame's): the
        # last decoded frame is held (not converted) until the next one shows which it covers.
        self.timeline, self.wanted = timeline, wanted
        self._held: tuple[int, av.VideoFrame] | None = None
        self._filled = 0  # timeline positions before this one have been decided
        self.chunks: list[np.ndarray] = []
        self.native_rate = 0
        self.truncated = False
        self.video_done = False
        self.audio_done = False
        # Converts any sample format to float planar, keeping rate and channel layout.
        self._to_float = av.AudioResampler(format="fltp")

    def _past_limit(self, frame: av.frame.Frame) -> bool:
        if self.max_seconds is None or frame.time is None:
            return False
        if frame.time >= self.max_seconds:
            self.truncated = True
            return True
        return False

    def add_video(self, frame: av.VideoFrame) -> None:
        if self.video_done or self._past_limit(frame):
            self.video_done = True
            return
        self.n_decoded += 1
        if self.timeline is None:
            self._keep(len(self.index), frame)
            return
        at = int(np.searchsorted(self.timeline, frame.pts, side="right")) - 1 \
            if frame.pts is not None else self.n_decoded - 1
        self.flush(max(at, 0))
        self._held = (max(at, 0), frame)

    def flush(self, upto: int | None = None) -> None:
        """Keep the held frame for the wanted positions it covers, up to `upto` (None: the end)."""
        if self._held is None:
            return
        start, frame = self._held
        start = max(start, self._filled)
        stop = len(self.timeline) if upto is None else max(upto, start)
        self._filled = max(self._filled, stop)
        lo, hi = np.searchsorted(self.wanted, [start, stop])
        if hi > lo:
            image = _upright(frame)
            for position in self.wanted[lo:hi]:
                self.frames.append(image)
                self.index.append(int(position))
        self._held = None

    def _keep(self, position: int, frame: av.VideoFrame) -> None:
        self.frames.append(_upright(frame))
        self.index.append(position)

    def add_audio(self, frame: av.AudioFrame) -> None:
        if self.audio_done or self._past_limit(frame):
            self.audio_done = True
            return
        self.native_rate = frame.sample_rate
        for out in self._to_float.resample(frame):
            self.chunks.append(out.to_ndarray().mean(axis=0, dtype=np.float32))

    def mono(self) -> np.ndarray:
        """float32 (N,) at the native rate, cut to `max_seconds`."""
        wave = np.concatenate(self.chunks) if self.chunks else np.zeros(0, np.float32)
        if self.max_seconds is not None:
            limit = int(round(self.max_seconds * self.native_rate))
            if wave.shape[0] > limit:
                self.truncated = True
                wave = wave[:limit]
        return wave


def _upright(frame: av.VideoFrame) -> np.ndarray:
    """uint8 (H, W, 3) RGB of `frame`, turned by its display matrix (counter-clockwise
    degrees, :attr:`av.VideoFrame.rotation`) as a player shows it."""
    image = frame.to_ndarray(format="rgb24")
    turns = int(round((frame.rotation or 0) / 90.0)) % 4
    return np.ascontiguousarray(np.rot90(image, turns)) if turns else image


def _resample(wave: np.ndarray, native_rate: int, sample_rate: int) -> np.ndarray:
    if native_rate == sample_rate or wave.size == 0:
        return wave.astype(np.float32, copy=False)
    return soxr.resample(wave, native_rate, sample_rate, quality="HQ").astype(np.float32)


def _demux(path: Path, container: av.container.InputContainer,
           streams: list[av.stream.Stream], got: _Collector) -> None:
    """Decode `streams` in file order into `got`; stop once every stream is past the limit."""
    want_video = any(s.type == "video" for s in streams)
    want_audio = any(s.type == "audio" for s in streams)
    try:
        for packet in container.demux(*streams):
            for frame in packet.decode():
                if isinstance(frame, av.VideoFrame):
                    got.add_video(frame)
                else:
                    got.add_audio(frame)
            if (got.video_done or not want_video) and (got.audio_done or not want_audio):
                break
    except av.FFmpegError as err:
        raise DecodeError(path, f"truncated or corrupt stream after {got.n_decoded} video "
                                f"frames ({_reason(err)})") from None


def _check_frames(path: Path, stream: av.video.VideoStream, got: _Collector) -> np.ndarray:
    got.flush()
    if not got.n_decoded:
        raise DecodeError(path, "zero decoded video frames")
    declared = stream.frames or 0
    if not got.video_done and got.n_decoded < MIN_DECLARED_FRACTION * declared:
        raise DecodeError(path, f"truncated: decoded {got.n_decoded} of {declared} "
                                "video frames the container declares")
    if not got.video_done and got.n_decoded < declared:
        log.warning("%s: decoded %d of %d declared video frames", path, got.n_decoded, declared)
    height, width = got.frames[0].shape[:2]
    if min(height, width) < MIN_FRAME_SIDE:
        raise DecodeError(path, f"video frames are {width}x{height} px, too small to hold a face "
                                f"(under {MIN_FRAME_SIDE} px a side)")
    return np.stack(got.frames)


def decode_clip(path: str | Path, *, video: bool = True, audio: bool = True,
                sample_rate: int = 16000, max_seconds: float | None = None,
                pick: FramePicker | None = None) -> DecodedClip:
    """Decode `path` in one sequential pass (two with `pick`: the packets' timeline first).

    Returns frames uint8 (U, H, W, 3) RGB and audio float32 (N,) mono at
    `sample_rate` (each None when not asked for). With `max_seconds`, frames
    and samples from that time on are dropped and `truncated` is set (the scan stops
    there: the rest is never read). `pick(pts, end)` chooses which timeline positions
    to keep before any frame is decoded; only those are converted and held, so memory
    does not grow with the clip's length. Without it every frame is kept.
    Raises :class:`DecodeError` (see the module docstring for the cases).
    """
    path = Path(path)
    if not (video or audio):
        raise BadInput(f"{path}: decode_clip needs video=True or audio=True")
    if max_seconds is not None and max_seconds <= 0:
        raise BadInput(f"{path}: max_seconds must be positive, got {max_seconds}")
    with _open(path) as container:
        streams = []
        if video:
            if not container.streams.video:
                raise DecodeError(path, "no video stream")
            vstream = container.streams.video[0]
            vstream.thread_type = "AUTO"
            streams.append(vstream)
        if audio:
            if not container.streams.audio:
                raise DecodeError(path, "no audio stream")
            streams.append(container.streams.audio[0])
        timeline = wanted = None
        if video and pick is not None:
            timeline, end = read_timeline(path, max_seconds)
            wanted = np.unique(np.asarray(pick(timeline, end), dtype=np.int64)) if timeline.size else None
            timeline = timeline if timeline.size else None
        got = _Collector(max_seconds, timeline, wanted)
        _demux(path, container, streams, got)
        frames = _check_frames(path, vstream, got) if video else None
        fps = float(vstream.average_rate or vstream.guessed_rate or 0.0) if video else 0.0
    wave = None
    if audio:
        if not got.chunks:
            raise DecodeError(path, "zero decoded audio samples")
        native = got.mono()
        bad = int(native.size - np.isfinite(native).sum())
        if bad:  # a float wav can hold them; every feature downstream would be NaN
            raise DecodeError(path, f"{bad} non-finite audio samples (NaN or inf)")
        wave = _resample(native, got.native_rate, sample_rate)
    notes = audio_notes(path, wave, native, got.native_rate) if audio else []
    index = np.asarray(got.index, dtype=np.int64) if video else None
    n_frames = (len(timeline) if timeline is not None else got.n_decoded) if video else 0
    if video and pick is not None and timeline is None:  # no packet had a pts: frames by count
        index = np.unique(np.asarray(pick(np.arange(n_frames, dtype=np.int64), n_frames), np.int64))
        frames = frames[index]
    return DecodedClip(frames, fps, wave, sample_rate, got.truncated, notes, index, n_frames)


def read_timeline(path: Path, max_seconds: float | None = None) -> tuple[np.ndarray, int]:
    """The sorted video pts int64 (T,) and end of the first video stream of `path`
    (:func:`mmer.media.timeline.video_timeline`); raises :class:`DecodeError`."""
    with _open(path) as container:
        try:
            return video_timeline(container, container.streams.video[0], max_seconds)
        except av.FFmpegError as err:
            raise DecodeError(path, f"truncated or corrupt stream ({_reason(err)})") from None


def load_audio(path: str | Path, sample_rate: int = 16000) -> np.ndarray:
    """Mono float32 (N,) audio of a wav/flac/mp4 file at any rate, resampled to `sample_rate`.

    Stereo (or more) is averaged over channels. Raises :class:`DecodeError`.
    """
    return decode_clip(path, video=False, audio=True, sample_rate=sample_rate).audio
