"""Audio-only RAVDESS: silence trimming, the 4-fold actor protocol, configs/ravdess_audio.yaml,
and a tiny end-to-end run on synthetic speech files (extract -> train -> evaluate, also on a
separate root of held-out actors).

Loading FLAC and 48 kHz stereo WAV to the same 16 kHz mono wave is tested in test_decode.py;
augmentation shapes and evaluation mode in test_dataset.py.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import evaluate
import train
from mmer.cli.extract import main as extract_main
from mmer.config import AudioConfig, SplitConfig, load_config
from mmer.datasets.ravdess import scan_ravdess
from mmer.datasets.splits import fold_split, record_actors, split_records
from mmer.features.audio import audio_segments, log_mel, trim_silence
from mmer.media.write import write_audio
from mmer.synth.render import EMOTION_CODES, Look, render_tone

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "ravdess_audio.yaml"
SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def _padded_tone(sr: int, lead: float, body: float, tail: float) -> np.ndarray:
    t = np.arange(int(body * sr)) / sr
    tone = 0.5 * np.sin(2 * np.pi * 440 * t)
    return np.concatenate([np.zeros(int(lead * sr)), tone, np.zeros(int(tail * sr))]).astype(np.float32)


def test_trim_cuts_silence_but_keeps_the_margin():
    sr = 16000
    wave = _padded_tone(sr, lead=0.8, body=1.0, tail=0.5)
    trimmed = trim_silence(wave, sr, top_db=30, margin_ms=50)
    # 1 s of tone plus 50 ms each side, give or take a frame (32 ms window, 10 ms hop)
    assert abs(trimmed.size / sr - 1.1) < 0.05
    assert np.abs(trimmed[: int(0.03 * sr)]).max() == 0.0  # the margin is the silence kept
    untouched = trim_silence(np.zeros(sr, np.float32), sr, top_db=30)
    assert untouched.size == sr  # all silence: nothing to anchor a trim on, kept whole


def test_trimmed_segments_cover_only_the_speech():
    sr = 16000
    wave = _padded_tone(sr, lead=1.0, body=1.0, tail=1.0)
    plain = audio_segments(wave, sr, AudioConfig(n_segments=4))
    trimmed = audio_segments(wave, sr, AudioConfig(n_segments=4, trim_db=30))
    assert plain.shape[:3] == trimmed.shape[:3] == (4, 1, 64)
    assert trimmed.shape[-1] < plain.shape[-1] / 2  # 3 s -> about 1.1 s
    fixed = audio_segments(wave, sr, AudioConfig(n_segments=4, trim_db=30, clip_seconds=2.0))
    assert fixed.shape == (4, 1, 64, 51)  # 201 frames in 4 segments of ceil(201 / 4)


def test_fixed_normalisation_keeps_loudness_clip_normalisation_removes_it():
    sr = 16000
    loud = _padded_tone(sr, lead=0.0, body=1.0, tail=0.0)
    quiet = 0.1 * loud  # 20 dB down
    clip, fixed = AudioConfig(), AudioConfig(normalise="fixed")
    np.testing.assert_allclose(log_mel(loud, sr, clip), log_mel(quiet, sr, clip), atol=1e-4)
    diff = log_mel(loud, sr, fixed) - log_mel(quiet, sr, fixed)
    # 20 dB is one unit of the fixed map wherever neither clip sits at its 80 dB floor
    above_floor = log_mel(quiet, sr, fixed) > log_mel(quiet, sr, fixed).min() + 0.1
    np.testing.assert_allclose(diff[above_floor], 1.0, atol=1e-3)


# ---------------------------------------------------------------- the 4-fold protocol


def _check_protocol(actors: list[int]) -> None:
    cfg = load_config(CONFIG).split
    tested = []
    for fold in range(cfg.n_folds):
        split = fold_split(actors, cfg, fold)
        sides = [set(split.train), set(split.val), set(split.test)]
        assert not (sides[0] & sides[1] or sides[0] & sides[2] or sides[1] & sides[2])
        assert sorted(split.train + split.val + split.test) == sorted(actors)
        assert len(split.test) == len(split.val) == 4 and len(split.train) == len(actors) - 8
        tested += split.test
    assert sorted(tested) == sorted(actors)  # every actor is tested exactly once


def test_four_folds_over_actors_1_to_16_never_share_an_actor():
    _check_protocol(list(range(1, 17)))
    cfg = load_config(CONFIG).split
    folds = [fold_split(range(1, 17), cfg, k) for k in range(4)]
    assert [s.test for s in folds] == [[1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 12], [13, 14, 15, 16]]
    assert [s.val for s in folds] == [[5, 6, 7, 8], [9, 10, 11, 12], [13, 14, 15, 16], [1, 2, 3, 4]]


def test_one_fold_trains_on_every_actor_without_a_test_part():
    split = fold_split(range(1, 17), SplitConfig(n_folds=1, val_rule="next_fold", n_val_actors=4))
    assert (split.test, split.val, split.train) == ([], [1, 2, 3, 4], list(range(5, 17)))
    last = fold_split(range(1, 17), SplitConfig(n_folds=1, val_rule="last", n_val_actors=4))
    assert last.val == [13, 14, 15, 16]
    with pytest.raises(ValueError, match="n_folds=1 has only fold 0"):
        fold_split(range(1, 17), SplitConfig(n_folds=1), 1)


@pytest.mark.shared
def test_protocol_on_the_real_audio_set(shared_data):
    root = shared_data / "ravdess-speech-audio"
    cfg = load_config(CONFIG, [f"ravdess.root={root}"])
    records, skips = scan_ravdess(cfg.ravdess)
    assert len(records) == 960 and len(skips) == 0
    actors = record_actors(records)
    assert actors == list(range(1, 17))
    _check_protocol(actors)
    for fold in range(4):
        parts = split_records(records, fold_split(actors, cfg.split, fold))
        assert [len(parts[p]) for p in ("train", "val", "test")] == [480, 240, 240]
        speakers = [{r.speaker for r in parts[p]} for p in ("train", "val", "test")]
        assert not (speakers[0] & speakers[1] or speakers[0] & speakers[2] or speakers[1] & speakers[2])


# ---------------------------------------------------------------- end to end on synthetic speech

EMOTIONS = (1, 3, 5, 6)  # neutral, happy, angry, fearful


def write_speech_set(root: Path, actors, *, flac: bool) -> None:
    """RAVDESS audio-only files (03-01-EE-01-SS-01-AA) with silence around the voice:
    16 kHz mono FLAC, or 48 kHz stereo WAV like the RAVDESS originals."""
    names = {code: name for name, code in EMOTION_CODES.items()}
    sr, channels, suffix = (16000, 1, ".flac") if flac else (48000, 2, ".wav")
    for actor in actors:
        for emotion in EMOTIONS:
            for statement in (1, 2):
                tone = render_tone(names[emotion], Look.of(actor), sample_rate=sr, seconds=0.8,
                                   syllable_hz=3.0 + statement, seed=actor * 100 + statement,
                                   channels=channels)
                pad = np.zeros((channels, int(0.3 * sr)), np.float32)
                name = f"03-01-{emotion:02d}-01-{statement:02d}-01-{actor:02d}{suffix}"
                write_audio(root / f"Actor_{actor:02d}" / name, np.concatenate([pad, tone, pad], 1), sr)


@pytest.fixture(scope="module")
def speech(tmp_path_factory):
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    base = tmp_path_factory.mktemp("speech")
    write_speech_set(base / "train_root", range(1, 9), flac=True)
    write_speech_set(base / "heldout_root", (17, 18), flac=False)
    overrides = [
        f"ravdess.root={base / 'train_root'}", "audio.n_mels=32", "audio.n_segments=3",
        # Per-clip standardisation: the synthetic voices differ by pitch and tremolo, not
        # loudness, and in 12 epochs the clip-normalised model learns them reliably.
        "audio.clip_seconds=1.0", "audio.normalise=clip", f"features.cache_dir={base / 'cache'}",
        "model.audio_width=8", "model.d_model=32", "model.n_heads=2", "model.embed_dim=16",
        "train.epochs=12", "train.batch_size=16", "train.m_per_class=4", "train.lr=0.003",
        "train.warmup_epochs=1", f"train.runs_dir={base / 'runs'}", "split.n_val_actors=2",
        "eval.k=[1,3]",
    ]
    sets = [arg for o in overrides for arg in ("--set", o)]
    yield base, sets
    torch.set_num_threads(before)


@pytest.mark.slow
def test_audio_only_folds_extract_train_and_evaluate(speech, capsys):
    base, sets = speech
    assert extract_main(["--config", str(CONFIG), *sets]) == 0
    cached = [torch.load(p, weights_only=False) for p in sorted((base / "cache").rglob("*.pt"))]
    assert len(cached) == 64
    assert all(set(e) >= {"logmel"} and "video" not in e and "audio" not in e for e in cached)
    assert {tuple(e["logmel"].shape) for e in cached} == {(3, 1, 32, 34)}
    assert train.main(["--config", str(CONFIG), *sets, "--set", "split.n_folds=2", "--folds", "all",
                       "--run-name", "folds"]) == 0
    run = base / "runs" / "folds"
    assert evaluate.main(["--run", str(run), "--no-plots"]) == 0
    assert "fold 1 (32 test clips)" in capsys.readouterr().out
    for fold in (0, 1):
        report = json.loads((run / f"fold_{fold}" / "report.json").read_text())
        test = report["results"]["test"]
        assert {"softmax", "knn"} <= set(test) and set(test["knn"]) == {"1", "3"}
    summary = json.loads((run / "summary.json").read_text())
    # 4 emotions (chance 0.25), unseen actors with other voice pitches: measured 0.66 (seed 0)
    assert summary["test_accuracy"]["mean"] >= 0.45, summary


@pytest.mark.slow
def test_one_model_on_all_actors_scores_a_held_out_root(speech, capsys):
    base, sets = speech
    assert train.main(["--config", str(CONFIG), *sets, "--set", "split.n_folds=1",
                       "--extract", "--run-name", "all"]) == 0
    split = json.loads((base / "runs" / "all" / "fold_0" / "split.json").read_text())
    assert split["actors"] == {"train": [3, 4, 5, 6, 7, 8], "val": [1, 2], "test": []}
    heldout = base / "heldout_root"
    assert evaluate.main(["--run", str(base / "runs" / "all"), "--data-root", str(heldout),
                          "--extract", "--no-plots"]) == 0
    assert "fold 0 (16 test clips)" in capsys.readouterr().out
    reports = list((base / "runs" / "all" / "fold_0").glob("eval_*/report.json"))
    assert len(reports) == 1
    report = json.loads(reports[0].read_text())
    assert report["n_clips"] == {"train": 48, "test": 16}
    assert {c[-2:] for c in report["clips"]["test"]} == {"17", "18"}
    assert report["results"]["test"]["softmax"]["accuracy"] >= 0.5
