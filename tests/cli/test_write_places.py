"""Extraction and training into a misplaced, full or read-only folder: one line naming the
folder (exit 2), no half entry; a read-only complete cache is still read."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

import train as train_cli
from mmer.cli.extract import main as extract_main
from mmer.extraction import job as pipeline
from mmer.synth.ravdess import make_ravdess_set
from tests.helpers.bad_inputs import _settings, _write_config

ODD = os.fsdecode(b"data-\xff")


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    base = tmp_path_factory.mktemp("places") / ODD
    make_ravdess_set(base, actors=(1, 2, 3), emotions=(1, 2), statements=(1,), repetitions=(1,),
                     intensities=(1,), size=(64, 48), fps=15.0, seconds=1.0, sample_rate=16000)
    return base / "Actors"


def _config(tmp_path: Path, root: Path, **settings) -> Path:
    raw = _settings(root, tmp_path, split={"n_folds": 3, "n_val_actors": 1}, **settings)
    return _write_config(tmp_path / "c.yaml", raw)


def _no_backbones(monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("backbones loaded before the folder was checked")
    monkeypatch.setattr(pipeline, "Backbones", refuse)


def test_a_file_where_the_cache_or_runs_folder_should_be(tmp_path, root, caplog, monkeypatch):
    (tmp_path / "cache").write_text("a file")
    config = _config(tmp_path, root)
    _no_backbones(monkeypatch)
    assert extract_main(["--config", str(config)]) == 2
    assert train_cli.main(["--config", str(config), "--extract"]) == 2
    (tmp_path / "cache").unlink()
    shutil.rmtree(tmp_path / "runs", ignore_errors=True)
    (tmp_path / "runs").write_text("a file")
    assert train_cli.main(["--config", str(config)]) == 2
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 3 and all("\n" not in e for e in errors), errors
    assert str(tmp_path / "cache") in errors[0] and str(tmp_path / "runs") in errors[2], errors


def _mount(folder: Path, *options: str) -> bool:
    folder.mkdir(parents=True, exist_ok=True)
    cmd = ["mount", "-t", "tmpfs", "-o", ",".join(options), "tmpfs", str(folder)]
    return subprocess.run(cmd, capture_output=True).returncode == 0


@pytest.fixture
def tmpfs(tmp_path):
    mounted = []

    def make(name: str, size: str) -> Path:
        folder = tmp_path / name
        if not _mount(folder, f"size={size}"):
            pytest.skip("cannot mount a tmpfs here (needs root with mount rights)")
        mounted.append(folder)
        return folder
    yield make
    for folder in reversed(mounted):
        subprocess.run(["umount", "-l", str(folder)], check=False)


def test_a_real_full_disk_is_one_line_and_leaves_no_half_entry(tmp_path, root, tmpfs, caplog):
    small = tmpfs("small", "64k")
    config = _config(tmp_path, root, features={"cache_dir": str(small / ODD)})
    assert extract_main(["--config", str(config)]) == 2
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and "No space left on device" in errors[0] and str(small) in errors[0], errors
    for entry in (small / ODD).rglob("*.pt"):
        torch.load(entry, weights_only=True)                       # every entry left is whole
    assert not list(small.rglob(".*.tmp"))


def test_a_read_only_complete_cache_is_read_by_extraction_and_training(tmp_path, root, tmpfs, caplog,
                                                                       monkeypatch):
    cache = tmpfs("ro", "8m")
    config = _config(tmp_path, root, features={"cache_dir": str(cache / ODD)}, train={"epochs": 1})
    assert extract_main(["--config", str(config)]) == 0
    files = {p: p.read_bytes() for p in cache.rglob("*") if p.is_file()}
    subprocess.run(["mount", "-o", "remount,ro", str(cache)], check=True)
    _no_backbones(monkeypatch)
    assert extract_main(["--config", str(config)]) == 0
    assert train_cli.main(["--config", str(config), "--extract"]) == 0
    assert (tmp_path / "runs" / "corpus" / "fold_0" / "best.pt").is_file()
    assert {p: p.read_bytes() for p in cache.rglob("*") if p.is_file()} == files
    # one clip more to extract: one line naming the folder, before the backbones load
    (root / "Actor_01" / "01-01-03-02-01-01-01.mp4").write_bytes(
        (root / "Actor_01" / "01-01-01-01-01-01-01.mp4").read_bytes())
    caplog.clear()
    assert extract_main(["--config", str(config)]) == 2
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and "not writable" in errors[0] and str(cache) in errors[0], errors
    (root / "Actor_01" / "01-01-03-02-01-01-01.mp4").unlink()


def test_verify_of_a_read_only_cache_names_an_unreadable_entry_and_changes_nothing(tmp_path, root, tmpfs,
                                                                                    caplog, monkeypatch):
    cache = tmpfs("ro", "8m")
    config = _config(tmp_path, root, features={"cache_dir": str(cache / ODD)})
    assert extract_main(["--config", str(config)]) == 0
    subprocess.run(["mount", "-o", "remount,ro", str(cache)], check=True)
    _no_backbones(monkeypatch)
    assert extract_main(["--config", str(config), "--verify"]) == 0          # every entry reads: fine
    subprocess.run(["mount", "-o", "remount,rw", str(cache)], check=True)
    entry = sorted(cache.rglob("*.pt"))[0]
    data = bytearray(entry.read_bytes())
    data[200:400] = b"\x00" * 200                                 # damaged inside, whole in size
    entry.write_bytes(bytes(data))
    subprocess.run(["mount", "-o", "remount,ro", str(cache)], check=True)
    files = {p: p.read_bytes() for p in cache.rglob("*") if p.is_file()}
    caplog.clear()
    assert extract_main(["--config", str(config), "--verify"]) == 2
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and "cannot be read" in errors[0] and entry.name in errors[0], errors
    assert str(cache) in errors[0] and "\n" not in errors[0]
    named = [r.getMessage() for r in caplog.records if r.levelname == "WARNING" and entry.name in r.getMessage()]
    assert len(named) == 1 and "\n" not in named[0] and "unreadable cache entry" in named[0], named
    assert {p: p.read_bytes() for p in cache.rglob("*") if p.is_file()} == files
