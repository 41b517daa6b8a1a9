"""Audio-only RAVDESS end to end on synthetic speech files, configs/ravdess_audio.yaml
(extract -> train -> evaluate, also on a separate root of held-out actors)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

import evaluate
import train
from mmer.cli.extract import main as extract_main
from mmer.media.write import write_audio
from mmer.synth.render import EMOTION_CODES, Look, render_tone

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "ravdess_audio.yaml"


SHARED = Path(__file__).resolve().parents[2].parent / "shared"


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


@pytest.fixture(scope="module")
def all_actors_run(speech) -> Path:
    """One model on actors 1-8 (train.py --extract), 1-2 validating."""
    base, sets = speech
    assert train.main(["--config", str(CONFIG), *sets, "--set", "split.n_folds=1",
                       "--extract", "--run-name", "all"]) == 0
    return base / "runs" / "all"


@pytest.mark.slow
def test_one_model_on_all_actors_scores_a_held_out_root(speech, all_actors_run, capsys):
    base, _ = speech
    split = json.loads((all_actors_run / "fold_0" / "split.json").read_text())
    assert split["actors"] == {"train": [3, 4, 5, 6, 7, 8], "val": [1, 2], "test": []}
    heldout = base / "heldout_root"
    assert evaluate.main(["--run", str(all_actors_run), "--data-root", str(heldout),
                          "--extract", "--no-plots"]) == 0
    assert "fold 0 (16 test clips)" in capsys.readouterr().out
    reports = list((all_actors_run / "fold_0").glob("eval_*/report.json"))
    assert len(reports) == 1
    report = json.loads(reports[0].read_text())
    assert report["n_clips"] == {"train": 48, "test": 16}
    assert {c[-2:] for c in report["clips"]["test"]} == {"17", "18"}
    assert report["results"]["test"]["softmax"]["accuracy"] >= 0.5


@pytest.mark.slow
def test_data_root_extract_also_fills_the_runs_own_stale_clips(speech, all_actors_run):
    """The training clips copied again (new mtimes: their cache entries no longer match):
    scoring another root needs them, so --extract redoes them and the scores are unchanged."""
    base, _ = speech
    argv = ["--run", str(all_actors_run), "--data-root", str(base / "heldout_root"), "--no-plots"]
    assert evaluate.main(argv + ["--extract"]) == 0
    report_path = next((all_actors_run / "fold_0").glob("eval_*/report.json"))
    before = json.loads(report_path.read_text())["results"]["test"]
    for clip in (base / "train_root").rglob("*.flac"):
        stat = clip.stat()
        os.utime(clip, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert evaluate.main(argv) == 2           # the training clips have no matching entry
    assert evaluate.main(argv + ["--extract"]) == 0
    after = json.loads(report_path.read_text())["results"]["test"]
    assert after["softmax"] == before["softmax"] and after["knn"] == before["knn"]


@pytest.mark.slow
def test_one_model_run_without_test_actors_evaluates_its_validation_actors(all_actors_run, capsys):
    assert evaluate.main(["--run", str(all_actors_run), "--no-plots"]) == 0
    out = capsys.readouterr().out
    assert "fold 0 (16 val clips): softmax head / accuracy " in out, out
    report = json.loads((all_actors_run / "fold_0" / "report.json").read_text())
    assert set(report["results"]) == {"val"} and report["n_clips"] == {"train": 48, "val": 16}
    assert "val scores in %, over 1 fold(s)" in (all_actors_run / "report.md").read_text()
