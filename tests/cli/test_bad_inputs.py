"""A corpus of bad inputs and faults, run through extract, train, evaluate and predict.

The corpus is made here, in the real formats (H.264 + AAC mp4, Matroska, 16-bit and
float wav, CSV, YAML): more than 30 kinds of broken, odd or misnamed files beside a few
good clips, under a data root whose path holds a byte that is not UTF-8. Every kind
must end as an asserted exit code, a one-line message naming the file, a row of the
skip list (or a flag of an accepted clip), and no temporary file left behind. The real
files of ``../shared/data/real-media`` join the corpus when present.

Fault tests kill a subprocess (SIGKILL, SIGINT) during extraction and training, then
resume and compare with an uninterrupted run.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import shutil
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest
import torch

import evaluate as evaluate_cli
import train as train_cli
from mmer.cli import load_args_config
from mmer.cli.extract import main as extract_main
from mmer.cli.predict import main as predict_main
from mmer.cli.survey import main as survey_main
from mmer.config import config_from_dict, load_config
from mmer.extraction.job import extract
from mmer.features.cache import FeatureCache
from mmer.io import SkipList
from mmer.media.write import write_audio, write_clip
from mmer.synth.ravdess import make_ravdess_set
from tests.helpers.bad_inputs import _overclaiming_wav, _settings, _tone, _write_config
from tests.helpers.media import make_corrupt_file, make_truncated_copy, make_zero_frame_clip

PROJECT = Path(__file__).resolve().parents[2]


REAL_MEDIA = PROJECT.parent / "shared" / "data" / "real-media"


ODD = os.fsdecode(b"data-\xff")  # a folder name that is not UTF-8


FPS = 15.0


def _frames(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 48, 64, 3), dtype=np.uint8)


def _clip(path: Path, n_frames: int = 18, seconds: float | None = None, *, audio: bool = True,
          faststart: bool = False, amp: float = 0.3) -> Path:
    wave = _tone(seconds or n_frames / FPS, amp=amp) if audio else None
    return write_clip(path, _frames(n_frames), FPS, wave, 16000, faststart=faststart)


def _float_wav(path: Path, wave: np.ndarray, sr: int = 16000) -> Path:
    """A 32-bit IEEE float wav (format tag 3): the one wav that can hold NaN and inf."""
    data = wave.astype("<f4").tobytes()
    fmt = struct.pack("<HHIIHH", 3, 1, sr, sr * 4, 4, 32)
    path.write_bytes(b"RIFF" + struct.pack("<I", 4 + 8 + len(fmt) + 8 + len(data)) + b"WAVE"
                     + b"fmt " + struct.pack("<I", len(fmt)) + fmt
                     + b"data" + struct.pack("<I", len(data)) + data)
    return path


def _noisy(path: Path, scratch: Path) -> Path:
    whole = _clip(scratch / "noisy_src.mp4", 30, faststart=True)
    data = bytearray(whole.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 2000] = np.random.default_rng(5).integers(0, 256, 2000, np.uint8).tobytes()
    path.write_bytes(bytes(data))
    return path


def _audio_only_mp4(path: Path) -> Path:
    return write_clip(path, None, FPS, _tone(1.0), 16000)


class Kind(NamedTuple):
    name: str       # file name in Actor_01 (or the reader's item)
    outcome: str    # "skip": listed by extraction; "reader": listed by the folder scan; "flag": accepted
    reason: str     # what the skip-list reason or the flag must say


def _av(i: int, actor: int = 1, ext: str = ".mp4") -> str:
    """A unique valid full-AV RAVDESS name (emotions 02..08, statements, repetitions vary),
    of strong intensity (02), so never the name of a good clip (all normal intensity)."""
    return f"01-01-{2 + i % 7:02d}-02-{1 + (i // 7) % 2:02d}-{1 + (i // 14) % 2:02d}-{actor:02d}{ext}"


def _make_av_corpus(folder: Path, scratch: Path, good: Path) -> list[Kind]:
    """The bad and odd full-AV files of Actor_01; returns what each must become."""
    kinds: list[Kind] = []

    def put(i: int, outcome: str, reason: str, maker) -> None:
        path = folder / _av(i)
        maker(path)
        kinds.append(Kind(path.name, outcome, reason))

    long_fast = _clip(scratch / "fast.mp4", 30, faststart=True)
    long_slow = _clip(scratch / "slow.mp4", 30, faststart=False)
    put(0, "skip", "not a readable media container", lambda p: p.write_bytes(b""))
    put(1, "skip", "not a readable media container",
        lambda p: p.write_bytes(np.random.default_rng(1).integers(0, 256, 5000, np.uint8).tobytes()))
    put(2, "skip", "not a readable media container", make_corrupt_file)
    put(3, "skip", "truncated", lambda p: make_truncated_copy(long_fast, p, 0.5))   # index first
    put(4, "skip", "truncated", lambda p: make_truncated_copy(long_fast, p, 0.95))
    put(5, "skip", "not a readable media container",
        lambda p: make_truncated_copy(long_slow, p, 0.5))                             # index last
    put(6, "skip", "not a readable media container", lambda p: make_truncated_copy(long_slow, p, 0.95))
    put(7, "skip", "no audio stream", lambda p: _clip(p, audio=False))
    put(8, "skip", "no video stream", _audio_only_mp4)
    put(9, "skip", "zero decoded video frames",
        lambda p: shutil.copy(make_zero_frame_clip(scratch / "zero.mkv"), p))          # Matroska inside
    put(10, "skip", "no video stream", lambda p: write_audio(scratch / "w.wav", _tone(1.0), 16000)
        and shutil.copy(scratch / "w.wav", p))                                           # a wav named .mp4
    put(11, "skip", "not a readable media container", lambda p: p.write_text("hello, not a video\n"))
    put(12, "skip", "truncated or corrupt stream", lambda p: _noisy(p, scratch))
    put(13, "flag", "silent audio track", lambda p: _clip(p, 15, amp=0.0))
    put(14, "flag", "only 3 video frames", lambda p: _clip(p, 3))                      # 0.2 s
    put(15, "flag", "", lambda p: _clip(p, 45))                                          # 3 s, long
    # What the folder scan refuses before any decoding.
    (folder / _av(16)).mkdir()
    kinds.append(Kind(_av(16), "reader", "unexpected folder"))
    (folder / _av(17)).symlink_to(folder / "gone.mp4")
    kinds.append(Kind(_av(17), "reader", "broken symbolic link"))
    for name, reason in (("01-01-03-01.mp4", "expected 7 dash-separated parts"),
                         ("01-01-xx-01-01-01-01.mp4", "is not two digits"),
                         ("01-01-09-01-01-01-01.mp4", "out of range"),
                         ("01-01-03-01-01-01-01.wav", "01-01-03-01-01-01-01.wav"),  # AV name, wav extension
                         ("01-01-03-01-01-01-05.mp4", "disagrees with folder"),
                         ("notes.txt", "expected 7 dash-separated parts"),
                         (os.fsdecode(b"01-01-0\xff-01-01-01-01.mp4"), "is not two digits")):
        shutil.copy(good, folder / name)
        kinds.append(Kind(name, "reader", reason))
    shutil.copy(good, folder / good.name.replace(".mp4", ".MP4"))  # sorts first: the .mp4 is the duplicate
    kinds.append(Kind(good.name, "reader", "duplicate clip id"))
    return kinds


def _make_wav_corpus(folder: Path, scratch: Path) -> list[Kind]:
    """Audio-only (03-...) wavs of Actor_01: good, odd and bad."""
    def name(i: int) -> str:
        return f"03-01-{2 + i % 7:02d}-01-{1 + (i // 7) % 2:02d}-01-01.wav"
    kinds = []
    specs = [
        ("skip", "non-finite audio samples", lambda p: _float_wav(p, np.r_[_tone(0.5), [np.nan] * 10])),
        ("skip", "non-finite audio samples", lambda p: _float_wav(p, np.r_[_tone(0.5), [np.inf] * 10])),
        ("flag", "wav header claims", _overclaiming_wav),
        ("flag", "silent audio track", lambda p: write_audio(p, np.zeros(16000, np.float32), 16000)),
        ("skip", "not a readable media container", lambda p: p.write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt ")),
        ("skip", "zero decoded audio samples", lambda p: write_audio(p, np.zeros(0, np.float32), 16000)),
        ("skip", "not a readable media container", lambda p: p.write_bytes(b"")),
    ]
    for i, (outcome, reason, maker) in enumerate(specs):
        path = folder / name(i)
        maker(path)
        kinds.append(Kind(path.name, outcome, reason))
    return kinds


def _no_tmp(*folders: Path) -> None:
    left = [p for f in folders for p in f.rglob(".*.tmp")]
    assert not left, left


def _one_error(caplog, *needles: str) -> str:
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1, errors
    assert "\n" not in errors[0] and "Traceback" not in errors[0], errors[0]
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]


class Corpus(NamedTuple):
    base: Path
    root: Path            # the Actors folder (its path holds a non-UTF-8 byte)
    config: Path
    kinds: list[Kind]
    bad_train_clip: Path  # an unreadable clip of a training actor
    summary: object       # the first extraction's ExtractSummary


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, one_thread) -> Corpus:
    base = tmp_path_factory.mktemp("corpus")
    root = base / ODD / "Actors"
    make_ravdess_set(root.parent, actors=range(1, 7), emotions=(1, 3), statements=(1,), repetitions=(1,),
                     intensities=(1,), size=(64, 48), fps=FPS, seconds=1.2, sample_rate=16000)
    scratch = base / "scratch"
    scratch.mkdir()
    good = sorted((root / "Actor_01").glob("*.mp4"))[0]
    kinds = _make_av_corpus(root / "Actor_01", scratch, good)
    if REAL_MEDIA.is_dir():  # real containers and codecs under RAVDESS names (content sniffed)
        for i, real in enumerate(sorted(p for p in REAL_MEDIA.iterdir() if p.suffix != ".md")):
            shutil.copy(real, root / "Actor_02" / _av(14 + i, actor=2))  # beside the good clips' names
            kinds.append(Kind(_av(14 + i, actor=2), "real", real.name))
    bad_train = root / "Actor_05" / _av(0, actor=5)
    bad_train.write_bytes(b"\x00" * 100)
    (root / "misc").mkdir()
    kinds.append(Kind("misc", "reader", "not an Actor_XX folder"))
    config = _write_config(base / "corpus.yaml", _settings(root, base))
    summary = extract(load_config(config), progress=False)
    return Corpus(base, root, config, kinds, bad_train, summary)


def _skips(cfg, root) -> dict[str, str]:
    path = FeatureCache.for_config(cfg).skip_file(root)
    return {Path(s.item).name: s.reason for s in SkipList.read(path)}


def test_extraction_lists_every_bad_file_and_flags_the_odd_ones(corpus):
    cfg = load_config(corpus.config)
    skips = _skips(cfg, corpus.root)
    cache = FeatureCache.for_config(cfg)
    entries = {e["clip_id"]: e for e in (torch.load(p, weights_only=True) for p in cache.dir.glob("*.pt"))}
    assert len([k for k in corpus.kinds if k.outcome != "real"]) >= 30 - 7  # + the wav kinds below
    for kind in corpus.kinds:
        stem = kind.name.split(".")[0]
        if kind.outcome in ("skip", "reader"):
            assert kind.name in skips, (kind, sorted(skips))
            assert kind.reason in skips[kind.name], (kind, skips[kind.name])
            if kind.outcome == "skip":
                assert kind.name in skips[kind.name]  # the reason names the file
        elif kind.outcome == "flag":
            assert stem in entries, kind
            assert all(kind.reason in " ".join(entries[stem]["meta"]["flags"]) for _ in [0]), entries[stem]["meta"]
        else:  # real media: either features or a named reason, never a crash
            assert stem in entries or kind.name in skips, kind
    assert corpus.bad_train_clip.name in skips
    flagged = FeatureCache.for_config(cfg).skip_file(corpus.root)
    flagged = flagged.with_name("flagged" + flagged.name[7:])
    assert "silent audio track" in flagged.read_text(encoding="utf-8", errors="surrogateescape")
    _no_tmp(cache.dir)


def test_wav_corpus(tmp_path, one_thread):
    root = tmp_path / "Actors"
    make_ravdess_set(tmp_path, actors=(1,), emotions=(1,), statements=(1,), repetitions=(1,), intensities=(1,),
                     size=(64, 48), fps=FPS, seconds=1.0, sample_rate=16000, audio_twins=True)
    kinds = _make_wav_corpus(root / "Actor_01", tmp_path)
    raw = _settings(root, tmp_path, ravdess={"modality": "audio_only"}, backbone={"video": "none"})
    cfg = config_from_dict(raw)
    summary = extract(cfg, progress=False)
    skips = _skips(cfg, root)
    entries = {e["clip_id"]: e for e in (torch.load(p, weights_only=True)
                                         for p in FeatureCache.for_config(cfg).dir.glob("*.pt"))}
    for kind in kinds:
        if kind.outcome == "skip":
            assert kind.reason in skips.get(kind.name, ""), (kind, skips)
        else:
            flags = entries[kind.name.split(".")[0]]["meta"]["flags"]
            assert any(kind.reason in f for f in flags), (kind, flags)
    assert summary.done == 1 + sum(k.outcome == "flag" for k in kinds)


def test_cache_entries_hold_only_their_own_clip(corpus, tmp_path):
    """Several clips share one backbone batch: each entry must store its rows only."""
    cfg = config_from_dict(_settings(corpus.root, tmp_path, features={"batch_size": 24},
                                     ravdess={"actors": [3, 4]}))
    extract(cfg, progress=False)
    paths = sorted(FeatureCache.for_config(cfg).dir.glob("*.pt"))
    assert len(paths) == 4
    for path in paths:
        entry = torch.load(path, weights_only=True)
        tensors = [v for v in entry.values() if isinstance(v, torch.Tensor)]
        own = sum(t.numel() * t.element_size() for t in tensors)
        for t in tensors:
            assert t.untyped_storage().nbytes() == t.numel() * t.element_size()
        assert path.stat().st_size < own + 16_000, (path.stat().st_size, own)


def test_cut_and_damaged_entries_are_redone(corpus, tmp_path):
    cfg = config_from_dict(_settings(corpus.root, tmp_path, ravdess={"actors": [3]}))
    extract(cfg, progress=False)
    cache = FeatureCache.for_config(cfg)
    first, second = sorted(cache.dir.glob("*.pt"))
    whole = torch.load(first, weights_only=True)
    data = first.read_bytes()
    first.write_bytes(data[: len(data) // 2])                    # cut: found by the cheap check
    whole_second = torch.load(second, weights_only=True)
    data = bytearray(second.read_bytes())
    data[200:400] = b"\x00" * 200                                 # damaged inside: found by --verify
    second.write_bytes(bytes(data))
    with pytest.raises(Exception):  # noqa: B017 - a damaged file fails in many ways
        torch.load(second, weights_only=True)
    summary = extract(cfg, progress=False)
    assert summary.done == 1 and torch.equal(torch.load(first, weights_only=True)["video"], whole["video"])
    cfg_file = _write_config(tmp_path / "c.yaml", _settings(corpus.root, tmp_path, ravdess={"actors": [3]}))
    assert extract_main(["--config", str(cfg_file), "--verify"]) == 0
    redone = torch.load(second, weights_only=True)                 # readable, as a fresh extraction
    assert redone["clip_id"] == whole_second["clip_id"]
    for key, value in whole_second.items():
        if isinstance(value, torch.Tensor):
            assert torch.equal(redone[key], value), key
    _no_tmp(cache.dir)


def test_skip_lists_of_two_roots_and_a_limit_run_do_not_clobber(corpus, tmp_path):
    cfg = load_config(corpus.config)
    before = _skips(cfg, corpus.root)
    other = tmp_path / "Actors"
    make_ravdess_set(tmp_path, actors=(7,), emotions=(1,), statements=(1,), repetitions=(1,), intensities=(1,),
                     size=(64, 48), fps=FPS, seconds=1.0, sample_rate=16000)
    (other / "Actor_07" / _av(0, actor=7)).write_bytes(b"junk")
    raw = _settings(other, corpus.base)  # same feature settings, same cache folder
    extract(config_from_dict(raw), progress=False)
    assert _skips(cfg, corpus.root) == before
    assert list(_skips(config_from_dict(raw), other)) == [_av(0, actor=7)]
    extract(cfg, limit=3, progress=False)                         # part of the root only
    assert _skips(cfg, corpus.root) == before


def test_rerun_on_a_complete_cache_exits_0(corpus, caplog):
    caplog.set_level(logging.INFO, logger="mmer")
    assert extract_main(["--config", str(corpus.config)]) == 0
    assert any("done 0" in r.getMessage() for r in caplog.records)


def _train_argv(config: Path, *sets: str) -> list[str]:
    return ["--config", str(config), *[a for s in sets for a in ("--set", s)]]


@pytest.fixture(scope="module")
def trained(corpus) -> Path:
    assert train_cli.main(_train_argv(corpus.config, "model.modalities=[audio, video]")) == 0
    return corpus.base / "runs" / "corpus"


def test_training_skips_what_extraction_skipped_and_odd_shapes(trained, corpus):
    fold = trained / "fold_0"
    skipped = {Path(s.item).name: s.reason for s in SkipList.read(fold / "skipped.tsv")}
    bad = corpus.bad_train_clip.stem
    assert bad in skipped and "skipped by feature extraction" in skipped[bad]
    long_clip = _av(15).split(".")[0]       # 3 s without audio.clip_seconds: other log-mel shape
    assert "clip_seconds" in skipped[long_clip]
    assert (fold / "reference.pt").is_file()
    _no_tmp(trained)


def test_evaluate_own_fold_leaves_out_what_training_left_out(trained):
    assert evaluate_cli.main(["--run", str(trained), "--no-plots"]) == 0
    report = json.loads((trained / "fold_0" / "report.json").read_text(encoding="utf-8"))
    assert report["n_clips"]["test"] >= 2


def test_evaluate_other_root_skips_unreadable_clips(trained, corpus, tmp_path, caplog):
    other = tmp_path / "other" / "Actors"
    for actor in (1, 2):
        (other / f"Actor_{actor:02d}").mkdir(parents=True)
        for clip in sorted((corpus.root / f"Actor_{actor:02d}").glob("01-01-0[13]-*.mp4"))[:2]:
            shutil.copy(clip, other / f"Actor_{actor:02d}" / clip.name)
    (other / "Actor_02" / _av(3, actor=2)).write_bytes(b"\x00" * 64)   # unreadable
    _clip(other / "Actor_01" / _av(4), 45)                               # 3 s: other log-mel shape
    assert evaluate_cli.main(["--run", str(trained), "--data-root", str(other), "--extract", "--no-plots"]) == 0
    out = next(trained.glob("fold_0/eval_*"))
    text = (out / "report.md").read_text(encoding="utf-8")
    assert "- test actors: 1, 2 (" in text, text
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    skipped = {Path(s["item"]).name: s["reason"] for s in report["skipped"]}
    assert "skipped by feature extraction" in skipped[_av(3, actor=2)]
    assert "clip_seconds" in skipped[_av(4).split(".")[0]]
    assert f"skipped files of the evaluation data: {len(skipped)} (first: " in text, text[:1500]
    assert report["n_clips"]["test"] == 4, skipped
    _no_tmp(trained, tmp_path)


def test_predict_on_bad_clips_one_line_each(trained, corpus, capsys):
    for kind in [k for k in corpus.kinds if k.outcome == "skip"][:6]:
        clip = corpus.root / "Actor_01" / kind.name
        assert predict_main([str(clip), "--run", str(trained)]) == 1, kind
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and kind.name in err[0] and "Traceback" not in err[0], err


@contextlib.contextmanager
def _moved_away(paths: list[Path]):
    """Rename each of `paths` that exists aside for the block, then back."""
    away = [(p, p.with_name(p.name + "-moved-away")) for p in paths if p.exists()]
    for here, there in away:
        here.rename(there)
    try:
        yield
    finally:
        for here, there in away:
            there.rename(here)


def test_predict_from_a_copied_run_folder(trained, corpus, tmp_path, capsys):
    copy = tmp_path / "copied"
    shutil.copytree(trained, copy)
    clip = tmp_path / "clip.mp4"
    shutil.copy(sorted((corpus.root / "Actor_03").glob("*.mp4"))[0], clip)
    # The training data, the feature cache, the weights folder and the original run are gone.
    gone = [corpus.root.parent, corpus.base / "cache", corpus.base / "weights", trained]
    assert all(p.is_dir() for p in (corpus.root.parent, corpus.base / "cache", trained))
    with _moved_away(gone):
        assert predict_main([str(clip), "--run", str(copy), "--json"]) == 0
    captured = capsys.readouterr()
    assert '"prediction"' in captured.out
    (copy / "fold_0" / "reference.pt").unlink()
    with _moved_away(gone):
        assert predict_main([str(clip), "--run", str(copy)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "reference.pt" in err[0] and "evaluate.py" in err[0], err


def test_random_bytes_checkpoint_is_one_line(tmp_path, caplog, capsys):
    ckpt = tmp_path / "best.pt"
    ckpt.write_bytes(np.random.default_rng(0).integers(0, 256, 3000, np.uint8).tobytes())
    assert evaluate_cli.main(["--checkpoint", str(ckpt)]) == 2
    message = _one_error(caplog, str(ckpt))
    assert "weights_only" not in message
    assert predict_main([str(ckpt), "--checkpoint", str(ckpt)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "weights_only" not in err[0], err


@pytest.mark.parametrize("sets, needle", [
    (["train.lrr=0.1"], "did you mean 'train.lr'"),                 # typo
    (["train.lr=-1"], "train.lr"),
    (["model.fusion=concatenate"], "model.fusion"),
    (["train.lr=[1, 2"], "not valid YAML"),                         # bad --set YAML
    (["video.size=big"], "video.size"),
    (["train.epochs=0"], "train.epochs must be 1 or more"),
    (["train.epochs=-3"], "train.epochs must be 1 or more"),
    (["train.batch_size=0"], "train.batch_size must be 1 or more"),
    (["features.batch_size=0"], "features.batch_size must be 1 or more"),
    (["train.m_per_class=0"], "train.m_per_class must be 1 or more"),
])
def test_config_mistakes_are_one_line(corpus, caplog, sets, needle):
    assert train_cli.main(_train_argv(corpus.config, *sets)) == 2
    _one_error(caplog, needle)


def test_meld_refuses_speaker_norm_and_warns_of_ignored_settings(caplog, capsys):
    meld = str(PROJECT / "configs" / "meld.yaml")
    assert survey_main(["--config", meld, "--set", "model.speaker_norm=true", "--text-only"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "model.speaker_norm" in err[0], err
    caplog.clear()
    caplog.set_level(logging.WARNING, logger="mmer")
    cfg = load_args_config(argparse.Namespace(config=meld, overrides=[
        "split.n_folds=3", "text.finetune=false", "text.layer_decay=0.8", "text.freeze_epochs=0"]))
    warned = " ".join(r.getMessage() for r in caplog.records)
    assert "split.n_folds" in warned and "text.layer_decay" in warned, warned
    assert "text.freeze_epochs" not in warned and "text.finetune_lr" not in warned  # defaults
    assert cfg.split.n_folds == 3


def test_non_utf8_config_is_one_line(tmp_path, caplog, capsys):
    bad = tmp_path / "latin1.yaml"
    bad.write_bytes("name: caf\xe9\n".encode("latin-1"))
    assert train_cli.main(["--config", str(bad)]) == 2
    _one_error(caplog, str(bad), "not UTF-8")
    assert survey_main(["--config", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not UTF-8" in err[0], err


def test_survey_root_with_non_utf8_byte(corpus, capsys):
    assert survey_main(["--config", str(corpus.config)]) == 0
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err and "broken symbolic link" in captured.out


@pytest.mark.parametrize("csv, needle", [
    ("header_only", "no usable MELD train rows"),
    ("missing_column", "train_sent_emo.csv"),
    ("not_utf8", "train_sent_emo.csv"),
])
def test_bad_meld_csvs(tmp_path, capsys, csv, needle):
    header = "Sr No.,Utterance,Speaker,Emotion,Sentiment,Dialogue_ID,Utterance_ID,Season,Episode,StartTime,EndTime"
    row = '1,Hi!,Joey,joy,positive,0,0,1,1,"00:00:01,000","00:00:02,000"'
    train_csv = {"header_only": f"{header}\n".encode(),
                 "missing_column": f"{header.replace(',Emotion', '')}\n{row}\n".encode(),
                 "not_utf8": f"{header}\n{row.replace('Hi!', 'Caf')}\n".encode() + b"\xe9\xff,\n"}[csv]
    (tmp_path / "train_sent_emo.csv").write_bytes(train_csv)
    (tmp_path / "dev_sent_emo.csv").write_text(f"{header}\n{row}\n", encoding="utf-8")
    code = survey_main(["--config", str(PROJECT / "configs" / "meld.yaml"), "--set",
                         f"meld.root={tmp_path}", "--text-only"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "Traceback" not in err[0], err
    assert needle in err[0] or "train_sent_emo.csv" in err[0], err


def _env() -> dict[str, str]:
    return dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(PROJECT))


def _default_sigint() -> None:
    # A suite started in the background (`cmd &` in a script) inherits SIGINT ignored, and
    # Python then never raises KeyboardInterrupt: give the child the default disposition,
    # as a terminal's Ctrl-C finds it.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _spawn(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, *args], cwd=PROJECT, env=_env(), preexec_fn=_default_sigint,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, errors="replace")


def _wait_for(condition, proc: subprocess.Popen, timeout: float = 90.0) -> None:
    end = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"the process ended (rc {proc.returncode}) before the point to interrupt: {err[-2000:]}")
        if time.monotonic() > end:
            proc.kill()
            pytest.fail("timed out waiting for the point to interrupt")
        time.sleep(0.05)


@pytest.fixture(scope="module")
def clean_set(tmp_path_factory) -> Path:
    """Good clips only (actors 1-6, 2 emotions: 12 clips): for the fault tests."""
    base = tmp_path_factory.mktemp("faults")
    make_ravdess_set(base, actors=range(1, 7), emotions=(1, 3), statements=(1,), repetitions=(1,),
                     intensities=(1,), size=(64, 48), fps=FPS, seconds=1.2, sample_rate=16000)
    return base / "Actors"


def _entries(cfg) -> dict[str, dict]:
    entries = (torch.load(p, weights_only=True) for p in FeatureCache.for_config(cfg).dir.glob("*.pt"))
    return {e["clip_id"]: e for e in entries}


@pytest.fixture(scope="module")
def fault_cache(clean_set, tmp_path_factory) -> Path:
    """The clean set extracted in one go: the reference of the interrupted runs."""
    base = tmp_path_factory.mktemp("fault_cache")
    extract(config_from_dict(_settings(clean_set, base)), progress=False)
    return base


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_interrupted_extraction_resumes_to_the_same_entries(clean_set, fault_cache, tmp_path, one_thread, sig):
    raw = _settings(clean_set, tmp_path)
    config = _write_config(tmp_path / "c.yaml", raw)
    cache_dir = FeatureCache.for_config(config_from_dict(raw)).dir
    proc = _spawn("-m", "mmer.extract", "--config", str(config))
    _wait_for(lambda: len(list(cache_dir.glob("*.pt"))) >= 2, proc)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    if sig == signal.SIGINT:
        assert proc.returncode == 130, err[-2000:]
        lines = [ln for ln in err.splitlines() if ln.startswith("python -m mmer.extract: interrupted")]
        assert len(lines) == 1 and "rerun the same command to resume" in lines[0], err[-2000:]
        assert "Traceback" not in err
    else:
        assert proc.returncode == -signal.SIGKILL
    kept = len(list(cache_dir.glob("*.pt")))
    summary = extract(config_from_dict(raw), progress=False)     # resume
    assert summary.cached >= kept >= 2 and summary.done == 12 - summary.cached
    resumed, whole = _entries(config_from_dict(raw)), _entries(config_from_dict(_settings(clean_set, fault_cache)))
    assert sorted(resumed) == sorted(whole) and len(whole) == 12
    for name, entry in whole.items():
        for key in ("video", "audio", "logmel"):
            assert torch.allclose(resumed[name][key].float(), entry[key].float(), atol=2e-3, rtol=1e-2), name
    _no_tmp(tmp_path)


@pytest.fixture(scope="module")
def uninterrupted(clean_set, fault_cache, tmp_path_factory) -> dict:
    """last.pt of a 12-epoch run trained in one go on the clean set."""
    base = tmp_path_factory.mktemp("uninterrupted")
    raw = _settings(clean_set, fault_cache, train={"epochs": 12, "runs_dir": str(base)})
    assert train_cli.main(["--config", str(_write_config(base / "c.yaml", raw))]) == 0
    return torch.load(base / "corpus" / "fold_0" / "last.pt", weights_only=True)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_interrupted_training_resumes_to_the_same_weights(clean_set, fault_cache, uninterrupted, tmp_path,
                                                         one_thread, sig):
    raw = _settings(clean_set, fault_cache, train={"epochs": 12, "runs_dir": str(tmp_path / "runs")})
    config = _write_config(tmp_path / "c.yaml", raw)
    metrics = tmp_path / "runs" / "corpus" / "fold_0" / "metrics.jsonl"
    proc = _spawn("train.py", "--config", str(config))
    _wait_for(lambda: metrics.is_file() and len(metrics.read_text().splitlines()) >= 1, proc, 180)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    if sig == signal.SIGINT:
        assert proc.returncode == 130, err[-2000:]
        lines = [ln for ln in err.splitlines() if ln.startswith("python train.py: interrupted")]
        assert len(lines) == 1 and "resume" in lines[0] and "Traceback" not in err, err[-2000:]
    else:
        assert proc.returncode == -signal.SIGKILL
    assert train_cli.main(["--config", str(config)]) == 0                         # resume
    resumed = torch.load(tmp_path / "runs" / "corpus" / "fold_0" / "last.pt", weights_only=True)
    whole = uninterrupted
    assert resumed["epoch"] == whole["epoch"] == 12
    for key, value in whole["model"].items():
        assert torch.allclose(resumed["model"][key].float(), value.float(), atol=1e-5), key
    _no_tmp(tmp_path)


def test_deterministic_training_ignores_the_thread_count(clean_set, fault_cache, tmp_path, monkeypatch):
    weights = []
    for threads in (1, 2):
        raw = _settings(clean_set, fault_cache, train={"epochs": 1, "runs_dir": str(tmp_path / f"t{threads}")})
        monkeypatch.setenv("MMER_THREADS", str(threads))   # what train.py sets torch to at start
        before = torch.get_num_threads()
        try:
            assert train_cli.main(["--config", str(_write_config(tmp_path / f"t{threads}.yaml", raw))]) == 0
        finally:
            torch.set_num_threads(before)
        weights.append(torch.load(tmp_path / f"t{threads}" / "corpus" / "fold_0" / "last.pt",
                                  weights_only=True)["model"])
    for key, value in weights[0].items():
        assert torch.equal(value, weights[1][key]), key
