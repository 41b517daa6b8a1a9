"""predict on odd media of a trained audio-only run: the clip's flags are carried, a folder is one line."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mmer.cli.predict import main as predict_main
from mmer.media.write import write_audio, write_clip
from tests.helpers.bad_inputs import _tone
from tests.helpers.odd_media import FPS, _frames


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
    from tests.helpers.bad_inputs import _overclaiming_wav
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
