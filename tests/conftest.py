"""Shared test fixtures: tiny real media files made on the spot, never downloaded.

Every fixture here is session-scoped and lazy: a file is written the first
time a test asks for it (in a pytest temporary folder) and reused after.
All clips are small (64x48 px, about a second) so the whole suite stays fast
on two shared cores. Fixtures that return several facts return a NamedTuple.

Media fixtures:
    synthetic_ravdess  RAVDESS ``Actors`` folder: 6 actors x 3 emotions x 2 statements
    synthetic_meld     MELD root folder with train/dev/test CSVs and clips
    lossless_clip      mp4 whose decoded frames equal known frames exactly (+ 440 Hz AAC)
    sine_wav           16 kHz mono wav holding a known 1 kHz sine
    no_audio_mp4       H.264 mp4 without an audio stream
    silent_mp4         H.264 + AAC mp4 whose audio is all zeros
    corrupt_mp4        random bytes behind an mp4 ``ftyp`` header
    truncated_mp4      a faststart mp4 cut mid-stream (opens, then fails mid-decode)
    moovless_mp4       an mp4 cut before its trailing ``moov`` index (cannot be opened)
    zero_frame_mkv     Matroska file with an empty video stream and silent audio
Runs and corpora:
    tiny_run           a 3-fold run trained on synthetic_ravdess (for evaluate, predict, results)
    odd_dir            a folder whose name is not UTF-8 (module-scoped)
    audio_corpus       an extracted audio-only RAVDESS beside odd wavs (module-scoped)
Other:
    one_thread         torch limited to one intra-op thread for the module's tests
    shared_data        ``../shared/data`` beside the project root; skips the test when absent
"""
from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest
import torch
import yaml

from mmer.config import config_from_dict
from mmer.extraction.job import extract
from mmer.media.write import write_audio, write_clip, write_lossless_clip
from mmer.synth.meld import make_meld_set
from mmer.synth.ravdess import make_ravdess_set
from tests.helpers.bad_inputs import _settings, _write_config
from tests.helpers.bad_inputs import _tone as _tone_330
from tests.helpers.media import make_corrupt_file, make_truncated_copy, make_zero_frame_clip
from tests.helpers.odd_media import ODD, _clipped_wav, _rate_192k_wav, _wav_name

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
SMALL = (64, 48)  # (width, height) of every fixture clip
FPS = 15.0


class LosslessClip(NamedTuple):
    path: Path
    frames: np.ndarray   # uint8 (T, H, W, 3), exactly what decoding must return
    fps: float
    tone_hz: float       # frequency of the AAC sine track
    sample_rate: int


class SineWav(NamedTuple):
    path: Path
    wave: np.ndarray     # float32 (N,) as written (before 16-bit quantisation)
    freq: float
    sample_rate: int


def _tone(freq: float, seconds: float, sample_rate: int, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(round(seconds * sample_rate))) / sample_rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _moving_frames(n: int, seed: int = 0) -> np.ndarray:
    """uint8 (n, 48, 64, 3): random texture plus a bright square that moves each frame."""
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 256, (n, SMALL[1], SMALL[0], 3), dtype=np.uint8)
    for i in range(n):
        frames[i, 10:20, 2 + 3 * i:12 + 3 * i] = 255
    return frames


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A session-wide folder for the single-file media fixtures."""
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` (real RAVDESS audio, MELD CSVs); the test is skipped when absent."""
    path = SHARED / "data"
    if not path.is_dir():
        pytest.skip(f"shared data not found at {path}")
    return path


@pytest.fixture(scope="session")
def synthetic_ravdess(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ``Actors`` folder of a tiny synthetic RAVDESS (use it as ``cfg.ravdess.root``).

    Actors 1-6; emotions 01 neutral, 03 happy, 05 angry; intensity 01; statements
    01 and 02; repetition 01: 36 trials. Each trial has a full-AV
    ``01-01-EE-01-SS-01-AA.mp4`` (H.264 64x48 at 15 fps, stereo AAC 48 kHz, 1.5 s),
    a video-only ``02-...mp4`` twin and an audio-only ``03-...wav`` twin (mono 48 kHz).
    """
    root = tmp_path_factory.mktemp("ravdess")
    make_ravdess_set(root, actors=range(1, 7), emotions=(1, 3, 5), statements=(1, 2),
                     repetitions=(1,), intensities=(1,), size=SMALL, fps=FPS, seconds=1.5,
                     audio_twins=True, video_twins=True)
    return root / "Actors"


@pytest.fixture(scope="session")
def synthetic_meld(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny synthetic MELD root (use it as ``cfg.meld.root``; default folder and CSV names).

    14 train utterances, 7 dev and 7 test, each emotion present in every split;
    clips are 64x48 H.264 at 15 fps with mono 16 kHz AAC, 0.6 to 1.4 s long.
    """
    root = tmp_path_factory.mktemp("meld_out")
    make_meld_set(root, 14, n_eval=7, size=SMALL, fps=FPS, seconds=1.0)
    return root / "MELD"


@pytest.fixture(scope="session")
def lossless_clip(media_dir: Path) -> LosslessClip:
    """12 known frames (64x48, 15 fps, lossless RGB H.264 in mp4) plus a 440 Hz AAC tone at 16 kHz."""
    frames = _moving_frames(12)
    tone = _tone(440.0, 12 / FPS, 16000)
    path = write_lossless_clip(media_dir / "lossless.mp4", frames, FPS, tone, 16000)
    return LosslessClip(path, frames, FPS, 440.0, 16000)


@pytest.fixture(scope="session")
def sine_wav(media_dir: Path) -> SineWav:
    """1 s of a 1 kHz sine, amplitude 0.5, as a 16 kHz mono 16-bit wav."""
    wave = _tone(1000.0, 1.0, 16000)
    return SineWav(write_audio(media_dir / "sine_1k.wav", wave, 16000), wave, 1000.0, 16000)


@pytest.fixture(scope="session")
def no_audio_mp4(media_dir: Path) -> Path:
    """H.264 mp4 (10 frames) with no audio stream at all."""
    return write_clip(media_dir / "no_audio.mp4", _moving_frames(10), FPS)


@pytest.fixture(scope="session")
def silent_mp4(media_dir: Path) -> Path:
    """H.264 + AAC mp4 (15 frames, 1 s); the audio track is present but all zeros."""
    return write_clip(media_dir / "silent.mp4", _moving_frames(15), FPS,
                      np.zeros(16000, np.float32), 16000)


@pytest.fixture(scope="session")
def corrupt_mp4(media_dir: Path) -> Path:
    """4 kB of random bytes behind an mp4 ``ftyp`` box: not a media container."""
    return make_corrupt_file(media_dir / "corrupt.mp4")


def _long_clip(media_dir: Path, name: str, faststart: bool) -> Path:
    return write_clip(media_dir / name, _moving_frames(20, seed=1), FPS,
                      _tone(300.0, 20 / FPS, 16000), 16000, faststart=faststart)


@pytest.fixture(scope="session")
def truncated_mp4(media_dir: Path) -> Path:
    """The first 60% of a faststart mp4 (index in front): opens, then the decode hits the cut."""
    src = _long_clip(media_dir, "whole_faststart.mp4", faststart=True)
    return make_truncated_copy(src, media_dir / "truncated.mp4", 0.6)


@pytest.fixture(scope="session")
def moovless_mp4(media_dir: Path) -> Path:
    """The first 60% of an ordinary mp4, whose ``moov`` index comes last: cannot be opened."""
    src = _long_clip(media_dir, "whole.mp4", faststart=False)
    return make_truncated_copy(src, media_dir / "moovless.mp4", 0.6)


@pytest.fixture(scope="session")
def zero_frame_mkv(media_dir: Path) -> Path:
    """Matroska with an H.264 video stream holding zero frames, plus 1 s of silent AAC."""
    return make_zero_frame_clip(media_dir / "zero_frames.mkv")


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op thread: on two shared cores, tiny ops wait on each other's threads."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


class TinyRun(NamedTuple):
    run_dir: Path
    config: Path
    actors_root: Path
    tmp: Path


_BUILT: list[TinyRun] = []  # the run is built once per session


@pytest.fixture(scope="session")
def tiny_run(synthetic_ravdess, tmp_path_factory) -> TinyRun:
    """3 folds of the conftest synthetic RAVDESS (6 actors, 3 emotions), trained 2 epochs
    on features from the real extractor with small random backbones."""
    import train

    if _BUILT:
        return _BUILT[0]
    tmp = tmp_path_factory.mktemp("eval_run")
    raw = {"name": "tiny", "ravdess": {"root": str(synthetic_ravdess)},
           "split": {"n_folds": 3, "n_val_actors": 1},
           "video": {"n_snippets": 2, "snippet_len": 4, "size": 32, "face_detector": "none"},
           "audio": {"n_mels": 16, "n_segments": 2},
           "backbone": {"video": "r3d_18", "pretrained": "none", "weights_dir": str(tmp)},
           "features": {"cache_dir": str(tmp / "cache"), "batch_size": 4, "num_workers": 0,
                        "device": "cpu"},
           "model": {"d_model": 16, "n_heads": 2, "embed_dim": 8},
           "train": {"epochs": 2, "batch_size": 6, "m_per_class": 2, "runs_dir": str(tmp / "runs"),
                     "device": "cpu"},
           "eval": {"k": [1, 3]}}
    config = tmp / "tiny.yaml"
    config.write_text(yaml.safe_dump(raw))
    assert train.main(["--config", str(config), "--folds", "all", "--extract"]) == 0
    _BUILT.append(TinyRun(tmp / "runs" / "tiny", config, synthetic_ravdess, tmp))
    return _BUILT[0]


@pytest.fixture(scope="module")
def odd_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("bad_media") / ODD
    folder.mkdir()
    return folder


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
            ("longer than ravdess.max_seconds = 30 s", lambda p: write_audio(p, _tone_330(60.0), 16000))]):
        maker(actor / _wav_name(i))
        expected[_wav_name(i)] = flag
    raw = _settings(root, base, ravdess={"modality": "audio_only"}, backbone={"video": "none"},
                    model={"modalities": ["audio"]})
    extract(config_from_dict(raw), progress=False)
    return base, _write_config(base / "audio.yaml", raw), expected
