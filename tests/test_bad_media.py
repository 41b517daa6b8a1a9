"""Odd media through decoding, extraction and predict, under a non-UTF-8 data path.

Long clips (cut at the corpus's ``max_seconds`` and flagged, never decoded whole),
variable frame rates (frames chosen by time), a phone's rotation tag, a 1x1 px video,
clipped and mislabelled-rate wavs, and the flags predict must carry with its answer.
"""
from __future__ import annotations

import dataclasses
import json
import os
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from mmer.cli.predict import main as predict_main
from mmer.config import config_from_dict
from mmer.datasets.records import ClipRecord
from mmer.extraction.job import extract
from mmer.features.cache import FeatureCache
from mmer.features.clips import prepare_clip, view_seed
from mmer.features.sampling import snippet_indices
from mmer.features.video import centre_box, crop_snippets, jittered_indices
from mmer.io import SkipList
from mmer.media.decode import decode_clip, read_timeline
from mmer.media.write import write_audio, write_clip
from mmer.synth.ravdess import make_ravdess_set
from tests.media import make_timed_clip
from tests.test_bad_inputs import _settings, _tone, _write_config

ODD = os.fsdecode(b"media-\xfe")  # a folder name that is not UTF-8
FPS = 15.0


def _frames(n: int, size: tuple[int, int] = (48, 64)) -> np.ndarray:
    """uint8 (n, H, W, 3): frame i is flat grey 4 i, a white corner square marks the top left."""
    frames = np.repeat((4 * np.arange(n, dtype=np.uint8))[:, None, None, None], 3, axis=3)
    frames = np.broadcast_to(frames, (n, *size, 3)).copy()
    frames[:, :6, :6] = 255
    return frames


def _cfg(root: Path, base: Path, **extra) -> object:
    return config_from_dict(_settings(root, base, **extra))


def _record(path: Path) -> ClipRecord:
    return ClipRecord(path.stem, path, 0, "1", path.stem, {})


@pytest.fixture(scope="module")
def odd_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("bad_media") / ODD
    folder.mkdir()
    return folder


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


def test_a_long_clip_is_cut_at_the_cap_flagged_and_never_held_whole(odd_dir, one_thread):
    path = write_clip(odd_dir / "long.mp4", (f for f in _frames(900)), FPS, _tone(60.0), 16000)  # 60 s
    kept = []
    clip = decode_clip(path, max_seconds=30.0, pick=lambda pts, end: kept.append(len(pts)) or [0, len(pts) - 1])
    assert clip.truncated and kept == [450] and clip.frames.shape[0] == 2
    assert clip.audio.shape[0] == 30 * 16000


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


def test_rotation_tag_is_applied(odd_dir):
    frames = _frames(4)
    path = make_timed_clip(odd_dir / "phone.mp4", frames, [0, 100, 200, 300], 400, rotation=-90)
    clip = decode_clip(path, audio=False)
    assert clip.frames.shape == (4, 64, 48, 3)                 # turned a quarter clockwise
    np.testing.assert_array_equal(clip.frames, np.rot90(frames, -1, axes=(1, 2)))


def _clipped_wav(path: Path) -> Path:
    return write_audio(path, np.clip(4 * _tone(1.0), -1, 1), 16000)


def _rate_192k_wav(path: Path) -> Path:
    """1.5 s of 16 kHz samples behind a header that says 192 kHz (0.125 s)."""
    write_audio(path, _tone(1.5), 16000)
    data = bytearray(path.read_bytes())
    data[24:32] = struct.pack("<II", 192000, 192000 * 2)
    path.write_bytes(bytes(data))
    return path


def _wav_name(i: int) -> str:
    return f"03-01-{2 + i:02d}-01-01-01-01.wav"


def _av_name(i: int) -> str:
    return f"01-01-{2 + i:02d}-02-01-01-01.mp4"


@pytest.fixture(scope="module")
def audio_corpus(tmp_path_factory) -> tuple[Path, Path, dict[str, str]]:
    """An audio-only RAVDESS (6 actors) beside odd wavs and mp4s of Actor_01, extracted."""
    base = tmp_path_factory.mktemp("audio_corpus")
    make_ravdess_set(base / ODD, actors=range(1, 7), emotions=(1, 3), statements=(1,), repetitions=(1,),
                     intensities=(1,), size=(64, 48), fps=FPS, seconds=1.2, sample_rate=16000, audio_twins=True)
    root, actor = base / ODD / "Actors", base / ODD / "Actors" / "Actor_01"
    expected = {}
    for i, (flag, maker) in enumerate([
            ("clipped", _clipped_wav),
            ("192000 Hz", _rate_192k_wav),
            ("longer than ravdess.max_seconds = 30 s", lambda p: write_audio(p, _tone(60.0), 16000))]):
        maker(actor / _wav_name(i))
        expected[_wav_name(i)] = flag
    raw = _settings(root, base, ravdess={"modality": "audio_only"}, backbone={"video": "none"},
                    model={"modalities": ["audio"]})
    extract(config_from_dict(raw), progress=False)
    return base, _write_config(base / "audio.yaml", raw), expected


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


@pytest.fixture(scope="module")
def audio_run(audio_corpus) -> Path:
    import train as train_cli
    base, config, _ = audio_corpus
    assert train_cli.main(["--config", str(config)]) == 0
    return base / "runs" / "corpus"


@pytest.mark.parametrize("kind, flag", [
    ("silent.mp4", "silent audio track"),
    ("short.mp4", "s of audio (under 0.5 s)"),
    ("silent.wav", "silent audio track"),
    ("overclaiming.wav", "wav header claims"),
])
def test_predict_carries_the_flags(audio_run, odd_dir, capsys, kind, flag):
    from tests.test_bad_inputs import _overclaiming_wav
    path = odd_dir / kind
    {"silent.mp4": lambda p: write_clip(p, _frames(15), FPS, np.zeros(16000, np.float32), 16000),
     "short.mp4": lambda p: write_clip(p, _frames(3), FPS, _tone(0.2), 16000),
     "silent.wav": lambda p: write_audio(p, np.zeros(16000, np.float32), 16000),
     "overclaiming.wav": _overclaiming_wav}[kind](path)
    assert predict_main([str(path), "--run", str(audio_run)]) == 0
    out = capsys.readouterr().out
    assert any(line.startswith("WARNING: ") and flag in line for line in out.splitlines()), out
    assert predict_main([str(path), "--run", str(audio_run), "--json"]) == 0
    flags = json.loads(capsys.readouterr().out)["flags"]
    assert any(flag in f for f in flags), flags


def test_predict_on_a_folder_is_one_line(audio_run, odd_dir, capsys):
    assert predict_main([str(odd_dir), "--run", str(audio_run)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is a folder" in err[0] and "no such file" not in err[0], err


def test_the_cap_is_a_setting_and_part_of_the_cache_hash(tmp_path):
    cfg = _cfg(tmp_path, tmp_path)
    assert cfg.ravdess.max_seconds == 30.0
    other = dataclasses.replace(cfg, ravdess=dataclasses.replace(cfg.ravdess, max_seconds=10.0))
    assert FeatureCache.for_config(cfg).dir != FeatureCache.for_config(other).dir


def test_a_stream_without_timestamps_is_picked_by_count(odd_dir):
    """A raw H.264 stream has no pts: the picks fall back to frame counts."""
    import av
    path = odd_dir / "raw.h264"
    with av.open(str(path), "w", format="h264") as out:
        stream = out.add_stream("libx264", rate=15)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i, image in enumerate(_frames(20)):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    clip = decode_clip(path, audio=False, pick=lambda pts, end: np.array([0, 5, 19]))
    assert clip.n_frames == 20 and clip.frame_index.tolist() == [0, 5, 19]
    np.testing.assert_allclose(clip.frames[:, 30, 30, 0], [0, 20, 76], atol=3)
