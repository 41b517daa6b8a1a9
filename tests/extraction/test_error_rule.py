"""The one rule of batch jobs: bad input is skipped and listed, anything else stops the job.

Failures are injected into ``prepare_clip`` (in the process itself, and inside a decode
worker process) under a data root whose path is not UTF-8.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from mmer.config import config_from_dict
from mmer.errors import BadInput
from mmer.extraction import job as pipeline
from mmer.features import clips
from mmer.features.cache import FeatureCache
from mmer.io import SkipList
from mmer.synth.ravdess import make_ravdess_set

ODD = os.fsdecode(b"data-\xff")


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("rule") / ODD
    make_ravdess_set(base, actors=(1, 2), emotions=(1, 2), statements=(1,), repetitions=(1,),
                     intensities=(1,), size=(64, 48), fps=15.0, seconds=1.0, sample_rate=16000)
    return base / "Actors"


def _cfg(root: Path, base: Path, workers: int = 0):
    return config_from_dict({
        "name": "rule", "dataset": "ravdess", "ravdess": {"root": str(root)},
        "video": {"n_snippets": 1, "snippet_len": 4, "size": 32, "face_detector": "none"},
        "audio": {"n_mels": 16, "n_segments": 1},
        "backbone": {"video": "r3d_18", "pretrained": "none", "weights_dir": str(base / "weights")},
        "features": {"cache_dir": str(base / "cache"), "batch_size": 1, "num_workers": workers,
                     "device": "cpu"}})


def _failing(kind: type[Exception], real=clips.prepare_clip):
    """prepare_clip, raising `kind` for the clips of actor 1."""
    def prepare(record, *args, **kwargs):
        if "Actor_01" in str(record.path):
            raise kind(f"{record.path}: injected") if kind is BadInput else kind("injected")
        return real(record, *args, **kwargs)
    return prepare


class _PatchingDataset(pipeline.ClipDataset):
    """Patches prepare_clip inside the worker process that unpickles it."""

    kind: type[Exception] = TypeError

    def __getitem__(self, index: int):
        clips.prepare_clip = _failing(self.kind)
        return super().__getitem__(index)


class _BadInputDataset(_PatchingDataset):
    kind = BadInput


def test_bad_input_is_skipped_and_listed(root, tmp_path, monkeypatch):
    monkeypatch.setattr(clips, "prepare_clip", _failing(BadInput))
    cfg = _cfg(root, tmp_path)
    summary = pipeline.extract(cfg, progress=False)
    assert summary.done == 2 and summary.skipped == 2
    skips = SkipList.read(FeatureCache.for_config(cfg).skip_file(root))
    assert all("injected" in s.reason and "Actor_01" in s.item for s in skips)


@pytest.mark.parametrize("kind", [TypeError, KeyError, RuntimeError])
def test_a_bug_stops_extraction_naming_the_clip(root, tmp_path, monkeypatch, kind):
    monkeypatch.setattr(clips, "prepare_clip", _failing(kind))
    cfg = _cfg(root, tmp_path)
    with pytest.raises(kind) as err:
        pipeline.extract(cfg, progress=False)
    assert any("Actor_01" in n for n in getattr(err.value, "__notes__", [])), err.value


def test_a_bug_in_a_decode_worker_stops_extraction(root, tmp_path, monkeypatch):
    monkeypatch.setattr(pipeline, "ClipDataset", _PatchingDataset)
    cfg = _cfg(root, tmp_path, workers=1)
    with pytest.raises(TypeError, match="Actor_01"):
        pipeline.extract(cfg, progress=False)


def test_bad_input_in_a_decode_worker_is_skipped(root, tmp_path, monkeypatch):
    monkeypatch.setattr(pipeline, "ClipDataset", _BadInputDataset)
    cfg = _cfg(root, tmp_path, workers=1)
    assert pipeline.extract(cfg, progress=False).skipped == 2


def test_brief_keeps_the_type_and_the_first_line_of_a_long_message():
    from mmer.errors import brief
    assert brief(RuntimeError("Weights only load failed.\n\nPages of advice\n")) == \
        "RuntimeError: Weights only load failed."
    assert brief(KeyError()) == "KeyError"
    long = brief(ValueError("x" * 500), limit=40)
    assert len(long) == 40 and long.startswith("ValueError: xxx") and long.endswith("...")
