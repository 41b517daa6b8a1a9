"""The synthetic data generator: files, streams, determinism, emotion-dependent content."""
from __future__ import annotations

import csv
from pathlib import Path

import av
import numpy as np
import pytest

from mmer.cli.synth import main
from mmer.media.decode import decode_clip
from mmer.synth.meld import COLUMNS, EMOTIONS, PHRASES, meld_rows, row_seconds
from mmer.synth.ravdess import ravdess_trials
from mmer.synth.render import STYLES, Look, render_frames, render_tone


def _streams(path: Path) -> dict[str, str]:
    with av.open(str(path)) as container:
        return {s.type: s.codec_context.name for s in container.streams}


@pytest.fixture(scope="module")
def cli_out(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cli")
    assert main(["--out", str(out), "--actors", "1-2", "--emotions", "1,angry",
                 "--statements", "1", "--repetitions", "2", "--size", "64x48", "--fps", "10",
                 "--seconds", "1.0", "--sample-rate", "16000", "--audio-twins", "--video-twins",
                 "--meld", "7"]) == 0
    return out


def test_cli_writes_the_expected_ravdess_files(cli_out):
    found = sorted(p.relative_to(cli_out).as_posix() for p in (cli_out / "Actors").rglob("*.*"))
    # Neutral (01) has normal intensity only; angry (05) both: 3 trials per actor, 3 files each.
    # Names: modality-01-emotion-intensity-statement 01-repetition 02-actor.
    expected = sorted(f"Actors/Actor_{a:02d}/{m:02d}-01-{ei}-01-02-{a:02d}.{'wav' if m == 3 else 'mp4'}"
                      for a in (1, 2) for m in (1, 2, 3) for ei in ("01-01", "05-01", "05-02"))
    assert found == expected


def test_cli_clips_have_the_right_streams(cli_out):
    actor = cli_out / "Actors" / "Actor_02"
    assert _streams(actor / "01-01-05-02-01-02-02.mp4") == {"video": "h264", "audio": "aac"}
    assert _streams(actor / "02-01-05-02-01-02-02.mp4") == {"video": "h264"}
    assert _streams(actor / "03-01-05-02-01-02-02.wav") == {"audio": "pcm_s16le"}
    clip = decode_clip(actor / "01-01-05-02-01-02-02.mp4")
    assert clip.frames.shape == (10, 48, 64, 3) and clip.fps == pytest.approx(10.0)
    with av.open(str(actor / "01-01-05-02-01-02-02.mp4")) as container:
        pix_fmt = container.streams.video[0].codec_context.pix_fmt
    assert pix_fmt == "yuv420p"


def test_cli_writes_a_meld_tree_matching_its_csvs(cli_out):
    root = cli_out / "MELD"
    folders = {"train": "train_splits", "dev": "dev_splits_complete",
               "test": "output_repeated_splits_test"}
    for split, folder in folders.items():
        with open(root / f"{split}_sent_emo.csv", newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            assert reader.fieldnames == COLUMNS
            rows = list(reader)
        assert len(rows) == 7 and {r["Emotion"] for r in rows} == set(EMOTIONS)
        clips = sorted(p.name for p in (root / folder).iterdir())
        assert clips == sorted(f"dia{r['Dialogue_ID']}_utt{r['Utterance_ID']}.mp4" for r in rows)
        row = rows[0]
        path = root / folder / f"dia{row['Dialogue_ID']}_utt{row['Utterance_ID']}.mp4"
        assert _streams(path) == {"video": "h264", "audio": "aac"}
        n_frames = decode_clip(path, audio=False).frames.shape[0]
        assert abs(n_frames - row_seconds(row) * 10) <= 1


def test_meld_rows_are_consistent():
    rows = meld_rows(40, seed=3)
    assert [r["Sr No."] for r in rows] == [str(i) for i in range(1, 41)]
    assert len({(r["Dialogue_ID"], r["Utterance_ID"]) for r in rows}) == 40
    fixed = {"anger": "negative", "disgust": "negative", "fear": "negative", "sadness": "negative",
             "joy": "positive", "neutral": "neutral"}
    for r in rows:
        assert r["Sentiment"] == fixed.get(r["Emotion"], r["Sentiment"])
        assert r["Sentiment"] in ("negative", "neutral", "positive")
        assert any(phrase in r["Utterance"] or phrase[1:] in r["Utterance"]
                   for phrase in PHRASES[r["Emotion"]])
        assert row_seconds(r) > 0
    assert rows == meld_rows(40, seed=3) and rows != meld_rows(40, seed=4)


def test_trials_follow_ravdess_rules():
    trials = ravdess_trials([2, 1], range(1, 9), (1, 2), (1, 2), (1, 2))
    assert len(trials) == 2 * 60  # 60 speech trials per actor, as in RAVDESS
    assert not [t for t in trials if t.emotion == 1 and t.intensity == 2]
    assert trials[0].name(1, ".mp4") == "01-01-01-01-01-01-01.mp4"


def test_rendering_is_deterministic():
    kw = dict(size=(64, 48), fps=10, seconds=0.5, seed=5)
    a = np.stack(list(render_frames("happy", Look.of(3), **kw)))
    b = np.stack(list(render_frames("happy", Look.of(3), **kw)))
    c = np.stack(list(render_frames("happy", Look.of(3), **{**kw, "seed": 6})))
    assert a.shape == (5, 48, 64, 3) and np.array_equal(a, b) and not np.array_equal(a, c)
    tone = dict(sample_rate=8000, seconds=0.5, seed=5)
    np.testing.assert_array_equal(render_tone("sad", Look.of(3), **tone),
                                  render_tone("sad", Look.of(3), **tone))


def _dominant_hz(wave: np.ndarray, sr: int) -> float:
    spectrum = np.abs(np.fft.rfft(wave * np.hanning(wave.size)))
    return float(np.fft.rfftfreq(wave.size, 1 / sr)[np.argmax(spectrum)])


@pytest.mark.parametrize("emotion", ["sad", "happy", "fearful"])
def test_tone_pitch_follows_emotion_and_actor(emotion):
    for actor in (1, 2):
        look = Look.of(actor)
        wave = render_tone(emotion, look, sample_rate=16000, seconds=2.0, seed=0)[0]
        expected = STYLES[emotion].f0 * look.pitch
        assert _dominant_hz(wave, 16000) == pytest.approx(expected, rel=0.03)


def test_face_colour_follows_emotion():
    def centre_colour(emotion: str) -> np.ndarray:
        frame = next(iter(render_frames(emotion, Look.of(1), size=(128, 96), fps=10, seconds=0.1)))
        return frame[40:44, 60:68].reshape(-1, 3).mean(axis=0)     # a cheek patch

    colours = {e: centre_colour(e) for e in ("angry", "sad", "happy")}
    assert np.argmax(colours["angry"]) == 0 and np.argmax(colours["sad"]) == 2
    assert np.linalg.norm(colours["happy"] - colours["sad"]) > 100
