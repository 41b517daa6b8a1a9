"""Odd media through extraction under a non-UTF-8 data path: streamed snippets equal the full
decode, variable frame rates, odd wavs and a one-pixel video flagged or refused, the length cap."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from mmer.config import config_from_dict
from mmer.datasets.records import ClipRecord
from mmer.extraction.job import extract
from mmer.features.cache import FeatureCache
from mmer.features.clips import prepare_clip, view_seed
from mmer.features.sampling import snippet_indices
from mmer.features.video import centre_box, crop_snippets, jittered_indices
from mmer.io import SkipList
from mmer.media.decode import decode_clip, read_timeline
from mmer.media.write import write_clip
from mmer.synth.ravdess import make_ravdess_set
from tests.helpers.bad_inputs import _settings, _tone
from tests.helpers.media import make_timed_clip
from tests.helpers.odd_media import FPS, ODD, _frames, _wav_name


def _cfg(root: Path, base: Path, **extra) -> object:
    return config_from_dict(_settings(root, base, **extra))


def _record(path: Path) -> ClipRecord:
    return ClipRecord(path.stem, path, 0, "1", path.stem, {})


@pytest.mark.parametrize("name, fps", [("cfr.mp4", FPS), ("ntsc.mkv", 30000 / 1001), ("ntsc.flv", 30000 / 1001)])
def test_streamed_frames_equal_the_full_decode_at_a_constant_rate(odd_dir, tmp_path, one_thread, name, fps):
    """The frames kept while streaming are those today's indexing took from every frame,
    also where the container rounds the times to milliseconds (Matroska, FLV)."""
    path = write_clip(odd_dir / name, np.random.default_rng(0).integers(0, 256, (10, 48, 64, 3), np.uint8),
                      fps, _tone(10 / fps), 16000)
    cfg = _cfg(odd_dir, tmp_path, features={"train_views": 2}, video={"n_snippets": 3, "snippet_len": 5})
    record = _record(path)
    streamed = prepare_clip(record, cfg, video=True, audio=False)
    every = decode_clip(path, audio=False).frames
    shape = (cfg.video.n_snippets, cfg.video.snippet_len)
    boxes = [centre_box(48, 64)] * shape[0]
    assert torch.equal(streamed["snippets"], crop_snippets(every, snippet_indices(len(every), *shape), boxes, cfg.video))
    for v, view in enumerate(streamed["views"], 1):
        old = jittered_indices(len(every), *shape, np.random.default_rng([view_seed(record), v]))
        assert torch.equal(view, crop_snippets(every, old, boxes, cfg.video, flip=v % 2 == 1)), v
    picked = decode_clip(path, audio=False, pick=lambda pts, end: snippet_indices(len(pts), 2, 4).ravel())
    assert picked.n_frames == 10 and picked.frames.shape[0] == 8             # only the picks are held
    np.testing.assert_array_equal(picked.frames, every[picked.frame_index])


def test_variable_frame_rate_snippets_follow_time(odd_dir, tmp_path, one_thread):
    """30 of 35 frames in the first 0.5 s: the later snippets must hold the later frames."""
    times = [round(500 * i / 30) for i in range(30)] + [500 + 100 * i for i in range(5)]
    path = make_timed_clip(odd_dir / "vfr.mp4", _frames(35), times, 1000)
    cfg = _cfg(odd_dir, tmp_path, video={"n_snippets": 2, "snippet_len": 4, "size": 32, "face_detector": "none"})
    snippets = prepare_clip(_record(path), cfg, video=True, audio=False)["snippets"]
    grey = snippets[:, 0, :, 16, 16] * cfg.video.std[0] * 255 + cfg.video.mean[0] * 255  # (S, L)
    pts, end = read_timeline(path, None)                       # the times the container holds
    np.testing.assert_allclose(pts * 1000 / 16000, times, atol=1)
    shown = np.searchsorted(pts, pts[0] + (np.arange(8) + 0.5) * (end - pts[0]) / 8, side="right") - 1
    assert not np.array_equal(shown, snippet_indices(35, 2, 4).flatten())   # by index: other frames
    np.testing.assert_allclose(grey.flatten().numpy(), 4 * shown, atol=1.5)


def _av_name(i: int) -> str:
    return f"01-01-{2 + i:02d}-02-01-01-01.mp4"


def test_odd_wavs_are_flagged(audio_corpus):
    base, config, expected = audio_corpus
    cfg = config_from_dict(_settings(base / ODD / "Actors", base, ravdess={"modality": "audio_only"},
                                     backbone={"video": "none"}, model={"modalities": ["audio"]}))
    entries = {e["clip_id"]: e for e in (torch.load(p, weights_only=True)
                                         for p in FeatureCache.for_config(cfg).dir.glob("*.pt"))}
    for name, flag in expected.items():
        flags = entries[name.split(".")[0]]["meta"]["flags"]
        assert any(flag in f for f in flags), (name, flags)
    short = entries[_wav_name(1).split(".")[0]]["meta"]["flags"]
    assert any("only 0.125 s of audio" in f for f in short), short
    assert all(not e["meta"]["flags"] for k, e in entries.items() if f"{k}.wav" not in expected)


def test_a_one_pixel_video_is_refused_in_one_line(odd_dir, tmp_path, one_thread):
    root = tmp_path / ODD / "Actors"
    make_ravdess_set(tmp_path / ODD, actors=(1,), emotions=(1,), statements=(1,), repetitions=(1,),
                     intensities=(1,), size=(64, 48), fps=FPS, seconds=1.0, sample_rate=16000)
    write_clip(root / "Actor_01" / _av_name(0), _frames(8, (1, 1)), FPS, _tone(8 / FPS), 16000, lossless=True)
    cfg = _cfg(root, tmp_path, ravdess={"actors": [1]}, model={"modalities": ["video"]})
    summary = extract(cfg, progress=False)
    skips = {Path(s.item).name: s.reason for s in SkipList.read(FeatureCache.for_config(cfg).skip_file(root))}
    assert summary.done == 1
    assert "1x1 px, too small to hold a face" in skips[_av_name(0)], skips
    assert "\n" not in skips[_av_name(0)] and _av_name(0) in skips[_av_name(0)]


def test_the_cap_is_a_setting_and_part_of_the_cache_hash(tmp_path):
    cfg = _cfg(tmp_path, tmp_path)
    assert cfg.ravdess.max_seconds == 30.0
    other = dataclasses.replace(cfg, ravdess=dataclasses.replace(cfg.ravdess, max_seconds=10.0))
    assert FeatureCache.for_config(cfg).dir != FeatureCache.for_config(other).dir
