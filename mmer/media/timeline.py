"""The presentation timeline of a video stream, read from its packets without decoding.

:func:`video_timeline` demuxes the video packets once (no decoding, so it costs a read of
the file) and returns their presentation timestamps sorted, plus the end of the last frame,
in the stream's time base. Frames are then chosen by time (:mod:`mmer.features.sampling`)
before any is decoded, and the decoder keeps only those (:func:`mmer.media.decode.decode_clip`).
"""
from __future__ import annotations

import av
import numpy as np


def video_timeline(container: av.container.InputContainer, stream: av.video.stream.VideoStream,
                   max_seconds: float | None = None) -> tuple[np.ndarray, int]:
    """(pts int64 (T,) sorted, end): the frames of `stream` starting before `max_seconds`.

    `end` is the latest ``pts + duration`` of those packets (a packet without a duration
    lasts the median gap between frames, or one frame at the stream's rate). Packets come in
    decoding order, so the scan stops at the first one *decoded* at or after the limit: every
    frame shown before it has been seen by then. Raises ``av.FFmpegError`` for a broken stream.
    """
    base = stream.time_base
    limit = None if max_seconds is None else int(max_seconds / base)
    pts, ends = [], []
    for packet in container.demux(stream):
        if packet.pts is None or packet.size == 0:
            continue
        stamp = packet.dts if packet.dts is not None else packet.pts
        if limit is not None and stamp >= limit:
            break
        if limit is not None and packet.pts >= limit:
            continue
        pts.append(packet.pts)
        ends.append(packet.pts + (packet.duration or 0))
    times = np.sort(np.asarray(pts, dtype=np.int64))
    if times.size == 0:
        return times, 0
    gap = int(np.median(np.diff(times))) if times.size > 1 else _one_frame(stream)
    return times, max(max(ends), int(times[-1]) + (gap if max(ends) <= times[-1] else 0))


def _one_frame(stream: av.video.stream.VideoStream) -> int:
    rate = stream.average_rate or stream.guessed_rate or 25
    return max(1, int(round(1 / (rate * stream.time_base))))
