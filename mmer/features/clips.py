"""One clip decoded into backbone inputs: :func:`prepare_clip`, and :class:`ClipDataset`
over a list of records (what extraction's DataLoader workers run, and predict's).

A clip that cannot be used (:func:`mmer.errors.is_bad_input`) becomes an item with its
reason under ``"error"``; any other error propagates with the clip named. With
:class:`~mmer.features.claims.Claims` each clip is claimed where its decoding starts, so
processes sharing a cache share the work.
"""
from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import Any

import numpy as np
from torch.utils.data import Dataset

from mmer.config import Config
from mmer.config.schema import WHISPER_AUDIO
from mmer.datasets import get_adapter
from mmer.datasets.records import ClipRecord
from mmer.errors import is_bad_input
from mmer.features.audio import Egemaps, audio_segments
from mmer.features.cache import FeatureCache
from mmer.features.claims import Claims
from mmer.features.mtcnn import make_detector
from mmer.features.video import FaceDetector, snippet_plan, views_at
from mmer.features.whisper import speed_views, whisper_window
from mmer.media.decode import decode_clip


def wanted_streams(cfg: Config) -> tuple[bool, bool]:
    """(video, audio): which streams the clips of this config have and are used."""
    video, audio = get_adapter(cfg).streams(cfg)
    return video and cfg.backbone.video != "none", audio


def build_cropper(cfg: Config) -> FaceDetector | None:
    """The face detector of ``video.face_detector`` (None for "none")."""
    name = cfg.video.face_detector
    return None if name == "none" else make_detector(name, weights_dir=cfg.backbone.weights_dir)


def view_seed(record: ClipRecord) -> int:
    """The seed of a clip's training views: a stable function of its clip id alone."""
    return zlib.crc32(record.clip_id.encode("utf-8"))


def prepare_clip(record: ClipRecord, cfg: Config, *, video: bool, audio: bool,
                 cropper: FaceDetector | None = None,
                 functionals: Egemaps | None = None) -> dict[str, Any]:
    """Decode one clip into backbone inputs.

    Returns ``snippets`` (S, 3, L, H, W) float32 when `video` (and ``views``, a list of
    ``features.train_views`` more of that shape, when it is above 0), ``logmel``
    (S, 1, M, Ts) float32 when `audio` (and ``egemaps`` (88,) by `functionals` when given;
    ``whisper_mel`` (80, T) and ``whisper_valid`` for the ``whisper_tiny`` backbone, and
    ``whisper_views``, ``backbone.audio_views`` (mel, valid) pairs of speed-changed copies),
    ``face_misses`` and ``truncated``.
    Raises ``ValueError`` subclasses (e.g. ``DecodeError``) for a bad clip.
    """
    adapter = get_adapter(cfg)
    max_seconds = adapter.max_seconds(cfg)
    plan: list = []

    def pick(pts, end):  # the snippets' frames, chosen by time before any is decoded
        plan[:] = snippet_plan(pts, end, cfg.video, n_views=cfg.features.train_views,
                               seed=view_seed(record))
        return np.concatenate([p.ravel() for p in plan])

    clip = decode_clip(record.path, video=video, audio=audio, sample_rate=cfg.audio.sample_rate,
                       max_seconds=max_seconds, pick=pick)
    out: dict[str, Any] = {"face_misses": 0, "truncated": clip.truncated, "flags": list(clip.notes)}
    if clip.truncated:
        out["flags"].append(f"longer than {adapter.name}.max_seconds = {max_seconds:g} s: "
                            "only that much is used")
    if video:
        out["snippets"], views, out["face_misses"] = views_at(
            clip.frames, clip.frame_index, plan, cfg.video, cropper)
        if views:
            out["views"] = views
        if clip.n_frames < cfg.video.snippet_len:
            out["flags"].append(f"only {clip.n_frames} video frames, repeated to fill "
                                f"{cfg.video.snippet_len}-frame snippets")
    if audio:
        out["logmel"] = audio_segments(clip.audio, clip.sample_rate, cfg.audio)
        if cfg.backbone.audio in WHISPER_AUDIO:
            bb = cfg.backbone
            out["whisper_mel"], out["whisper_valid"] = whisper_window(
                clip.audio, clip.sample_rate, cfg.audio, bb.whisper_frames)
            if bb.audio_views:
                out["whisper_views"] = [whisper_window(w, clip.sample_rate, cfg.audio, bb.whisper_frames)
                                        for w in speed_views(clip.audio, clip.sample_rate, bb.audio_views,
                                                             bb.audio_view_speed, view_seed(record))]
        if functionals is not None:
            out["egemaps"] = functionals(clip.audio, clip.sample_rate)
    return out


class ClipDataset(Dataset):
    """Item i: ``prepare_clip`` of records[i] plus ``index``, or ``{"index", "error"}``."""

    def __init__(self, records: Sequence[ClipRecord], cfg: Config, *, claims: Claims | None = None,
                 cache: FeatureCache | None = None) -> None:
        self.records = list(records)
        self.cfg = cfg
        self.claims, self.cache = claims, cache
        self.video, self.audio = wanted_streams(cfg)
        self._cropper: FaceDetector | None = None  # built lazily: one per worker process
        self._functionals: Egemaps | None = None

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict[str, Any]:
        record = self.records[index]
        if self.claims is not None:  # claimed here, where the decoding starts, so work is shared
            if not self.claims.acquire(str(record.path)):
                return {"index": index, "busy": True}
            if self.cache is not None and self.cache.has(record):
                self.claims.release(str(record.path))
                return {"index": index, "cached": True}
        try:
            if self._cropper is None and self.video:
                self._cropper = build_cropper(self.cfg)
            if self._functionals is None and self.audio and self.cfg.audio.functionals == "egemaps":
                self._functionals = Egemaps()
            inputs = prepare_clip(record, self.cfg, video=self.video, audio=self.audio,
                                  cropper=self._cropper, functionals=self._functionals)
            return {"index": index, **inputs}
        except Exception as err:
            if not is_bad_input(err):  # a bug: stop the job with its traceback, naming the clip
                err.add_note(f"while preparing clip {record.path}")
                raise
            reason = str(err) if str(record.path) in str(err) else f"{record.path}: {err}"
            return {"index": index, "error": f"{type(err).__name__}: {reason}"}
