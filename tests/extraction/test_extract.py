"""End-to-end feature extraction on tiny synthetic RAVDESS clips (CPU, random weights)."""
from __future__ import annotations

import pytest
import torch
import yaml

from mmer.cli.extract import main
from mmer.config import config_from_dict
from mmer.datasets import collect_records
from mmer.extraction.job import extract
from mmer.features import cache as cache_module
from mmer.features.cache import FeatureCache
from mmer.io import SkipList
from mmer.synth.meld import make_meld_set
from tests.helpers.extract import BAD, _cfg, _raw


def _entries(cfg) -> list:
    cache = FeatureCache.for_config(cfg)
    return sorted(cache.dir.glob("*.pt")) if cache.dir.exists() else []


def test_bad_clip_is_skipped_and_the_others_are_cached(dataset, tmp_path):
    cfg = _cfg(dataset, tmp_path, "features.num_workers=2")  # the failure comes from a worker
    summary = extract(cfg, progress=False)
    assert (summary.total, summary.done, summary.skipped, summary.cached) == (5, 4, 1, 0)
    skips = SkipList.read(FeatureCache.for_config(cfg).skip_file(cfg.ravdess.root))
    assert [s.item for s in skips] == [str(dataset / "Actors" / "Actor_01" / BAD)]
    assert "DecodeError" in skips.items[0].reason and BAD in skips.items[0].reason
    assert len(_entries(cfg)) == 4


def test_entry_content(dataset, tmp_path):
    cfg = _cfg(dataset, tmp_path, "backbone.audio_feature=map")
    extract(cfg, progress=False)
    records, _ = collect_records(cfg)
    good = [r for r in records if r.path.name != BAD]
    entry = FeatureCache.for_config(cfg).get(good[0])
    assert entry["clip_id"] == good[0].clip_id and entry["label"] == good[0].label
    assert entry["video"].dtype == entry["audio"].dtype == entry["logmel"].dtype == torch.float16
    assert entry["video"].shape == (2, 512, 2, 2)  # (S, C, h, w) of R3D-18 at 32x32
    assert entry["audio"].shape[:2] == (2, 512) and entry["audio"].ndim == 4  # map per segment
    assert entry["logmel"].shape[:3] == (2, 1, 16)
    meta = entry["meta"]
    assert meta["face_misses"] == 0 and meta["truncated"] is False
    assert meta["pretrained"]["video"]["name"] == "r3d_18"
    assert meta["pretrained"]["video"]["status"] == meta["pretrained"]["audio"]["status"] == "random"


def test_killed_run_leaves_no_partial_entry_and_rerun_does_the_rest(dataset, tmp_path, monkeypatch):
    cfg = _cfg(dataset, tmp_path)
    real_save, calls = torch.save, []

    def dying_save(obj, f, *args, **kwargs):
        calls.append(f)
        if len(calls) == 3:  # the third entry: write part of it, then "die"
            f.write(b"PK\x03\x04 partial")
            raise KeyboardInterrupt("killed mid-write")
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", dying_save)
    with pytest.raises(KeyboardInterrupt):
        extract(cfg, progress=False)
    monkeypatch.setattr(torch, "save", real_save)
    cache_dir = FeatureCache.for_config(cfg).dir
    assert len(_entries(cfg)) == 2
    leftover = sorted(p.name for p in cache_dir.iterdir() if p.suffix != ".pt")
    skip_name = FeatureCache.for_config(cfg).skip_file(cfg.ravdess.root).name
    assert leftover == sorted([".claims", skip_name, "summary.json"])  # claims and locks in .claims

    processed = []
    monkeypatch.setattr(FeatureCache, "put", _spy(FeatureCache.put, processed))
    summary = extract(cfg, progress=False)
    assert (summary.done, summary.cached, summary.skipped) == (2, 2, 1)
    assert len(processed) == 2 and len(_entries(cfg)) == 4
    processed.clear()
    assert extract(cfg, progress=False).done == 0 and processed == []


def _spy(method, seen: list):
    def wrapper(self, record, entry):
        seen.append(record.clip_id)
        return method(self, record, entry)
    return wrapper


def test_changed_feature_config_invalidates_the_cache(dataset, tmp_path):
    assert extract(_cfg(dataset, tmp_path), progress=False).done == 4
    assert extract(_cfg(dataset, tmp_path, "features.batch_size=5"), progress=False).cached == 4
    changed = extract(_cfg(dataset, tmp_path, "video.size=24"), progress=False)
    assert (changed.done, changed.cached) == (4, 0)


def test_main_with_limit_and_overrides(dataset, tmp_path):
    config = tmp_path / "extract.yaml"
    config.write_text(yaml.safe_dump(_raw(dataset, tmp_path)))
    assert main(["--config", str(config), "--limit", "2", "--device", "cpu",
                 "--set", "backbone.audio=none"]) == 0
    cfg = _cfg(dataset, tmp_path, "backbone.audio=none")
    entries = [torch.load(p, weights_only=True) for p in _entries(cfg)]
    assert len(entries) == 2 and all("audio" not in e and "logmel" in e for e in entries)
    assert main(["--config", str(config), "--set", "backbone.pretrained=required"]) == 2
    assert main(["--config", str(config), "--set", "video.sise=3"]) == 2


def test_meld_splits_of_varying_length_and_truncation(tmp_path):
    make_meld_set(tmp_path, 2, n_eval=1, size=(64, 48), seconds=1.0)
    raw = _raw(tmp_path, tmp_path)
    raw.update(dataset="meld", meld={"root": str(tmp_path / "MELD"), "max_seconds": 0.6})
    cfg = config_from_dict(raw)
    summary = extract(cfg, progress=False)
    assert (summary.done, summary.skipped) == (4, 0)
    records, _ = collect_records(cfg)
    assert sorted({r.clip_id.split("/")[0] for r in records}) == ["dev", "test", "train"]
    entries, missing = FeatureCache.for_config(cfg).load_all(records)
    assert missing == [] and [e["clip_id"] for e in entries] == [r.clip_id for r in records]
    long_clips = [e for r, e in zip(records, entries, strict=True)
                  if r.extra["end"] - r.extra["start"] > 0.7]
    assert long_clips and all(e["meta"]["truncated"] for e in long_clips)
    assert summary.truncated == sum(e["meta"]["truncated"] for e in entries) >= len(long_clips)


def test_entries_of_an_older_format_are_extracted_again(dataset, tmp_path, monkeypatch, caplog):
    """A cache written under entry format 1 is not read as current: one notice, every clip
    extracted again, and the new entries carry the current format."""
    cfg = _cfg(dataset, tmp_path)
    monkeypatch.setattr(cache_module, "ENTRY_FORMAT", 1)
    assert extract(cfg, progress=False).done == 4
    old = _entries(cfg)
    assert len(old) == 4 and all(p.name.endswith(".f1.pt") for p in old)
    monkeypatch.undo()
    with caplog.at_level("WARNING"):
        summary = extract(cfg, progress=False)
    assert (summary.done, summary.cached) == (4, 0)
    notices = [r.getMessage() for r in caplog.records if "another entry format" in r.getMessage()]
    assert len(notices) == 1 and "4 cache entries" in notices[0]
    new = _entries(cfg)
    assert len(new) == 4 and not any(p.exists() for p in old)
    assert all(torch.load(p, weights_only=True)["meta"]["format"] == cache_module.ENTRY_FORMAT for p in new)
