"""Feature cache: keys, invalidation and atomic writes."""
from __future__ import annotations

import os

import pytest
import torch

from mmer.config import config_from_dict
from mmer.datasets.records import ClipRecord
from mmer.features import cache as cache_module
from mmer.features.cache import CacheEntryError, FeatureCache, feature_config_hash


def _record(tmp_path, name: str = "01-01-06-01-02-01-12") -> ClipRecord:
    clip = tmp_path / "clips" / f"{name}.mp4"
    clip.parent.mkdir(parents=True, exist_ok=True)
    clip.write_bytes(b"fake media " + name.encode())
    return ClipRecord(clip_id=name, path=clip, label=5, speaker="12", group=name[3:])


def _entry(record: ClipRecord) -> dict:
    return {"clip_id": record.clip_id, "label": record.label, "speaker": record.speaker,
            "group": record.group, "extra": {}, "video": torch.ones(6, 8, 2, 2).half(),
            "meta": {"face_misses": 0, "pretrained": {}, "truncated": False}}


def _cfg(tmp_path, *overrides: str):
    return config_from_dict({"features": {"cache_dir": str(tmp_path / "cache")},
                             "backbone": {"weights_dir": str(tmp_path / "resnet")}}, overrides)


def test_put_get_round_trip(tmp_path):
    record = _record(tmp_path)
    cache = FeatureCache.for_config(_cfg(tmp_path))
    assert not cache.has(record)
    path = cache.put(record, _entry(record))
    assert cache.has(record) and path.parent == cache.dir
    assert path.name.startswith(record.clip_id + ".")
    entry = cache.get(record)
    assert entry["label"] == 5 and entry["video"].dtype == torch.float16
    assert torch.equal(entry["video"], torch.ones(6, 8, 2, 2).half())


@pytest.mark.parametrize("override", ["video.size=64", "audio.n_mels=32", "backbone.video=r3d_18",
                                      "backbone.audio_feature=map", "backbone.pretrained=none",
                                      "audio.functionals=egemaps"])
def test_changed_feature_config_misses(tmp_path, override):
    record = _record(tmp_path)
    FeatureCache.for_config(_cfg(tmp_path)).put(record, _entry(record))
    assert FeatureCache.for_config(_cfg(tmp_path)).has(record)
    assert not FeatureCache.for_config(_cfg(tmp_path, override)).has(record)


def test_unrelated_settings_keep_the_hash(tmp_path):
    base = feature_config_hash(_cfg(tmp_path))
    for override in ("features.batch_size=3", "features.num_workers=0", "train.lr=0.1",
                     "model.d_model=32", "name=other", "model.speaker_norm=true",
                     "audio.functionals=none"):
        assert feature_config_hash(_cfg(tmp_path, override)) == base, override


def test_weight_file_appearing_changes_the_hash(tmp_path):
    before = feature_config_hash(_cfg(tmp_path))  # pretrained: optional, no files: random
    (tmp_path / "resnet").mkdir()
    (tmp_path / "resnet" / "resnet18-f37072fd.pth").write_bytes(b"weights")
    assert feature_config_hash(_cfg(tmp_path)) != before


def test_modified_clip_misses(tmp_path):
    record = _record(tmp_path)
    cache = FeatureCache.for_config(_cfg(tmp_path))
    cache.put(record, _entry(record))
    stat = record.path.stat()
    os.utime(record.path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert not cache.has(record)


def test_failed_write_leaves_no_entry(tmp_path, monkeypatch):
    record = _record(tmp_path)
    cache = FeatureCache.for_config(_cfg(tmp_path))
    real_save = torch.save

    def half_save(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04 half an entry")
        raise OSError("killed mid-write")

    monkeypatch.setattr(torch, "save", half_save)
    with pytest.raises(OSError, match="killed"):
        cache.put(record, _entry(record))
    assert not cache.has(record)
    assert list(cache.dir.iterdir()) == []  # nor a temporary file
    monkeypatch.setattr(torch, "save", real_save)
    cache.put(record, _entry(record))
    assert cache.get(record)["clip_id"] == record.clip_id


def test_load_all_returns_entries_in_order_and_the_missing(tmp_path):
    records = [_record(tmp_path, f"01-01-0{i}-01-01-01-01") for i in range(1, 4)]
    cache = FeatureCache.for_config(_cfg(tmp_path))
    for record in (records[2], records[0]):
        cache.put(record, _entry(record))
    entries, missing = cache.load_all(records)
    assert [e["clip_id"] for e in entries] == [records[0].clip_id, records[2].clip_id]
    assert missing == [records[1]]


def test_bad_entries_and_records_raise_naming_the_file(tmp_path):
    record = _record(tmp_path)
    cache = FeatureCache.for_config(_cfg(tmp_path))
    with pytest.raises(CacheEntryError, match="no cache entry"):
        cache.get(record)
    path = cache.path_for(record)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"garbage")
    with pytest.raises(CacheEntryError, match=str(path)):
        cache.get(record)
    text_only = ClipRecord("train/dia0_utt0", None, 0, "Ross", "train/dia0")
    assert not cache.has(text_only)
    with pytest.raises(CacheEntryError, match="no media file"):
        cache.put(text_only, _entry(text_only))


def test_an_entry_of_another_format_is_never_read(tmp_path, monkeypatch, caplog):
    """An entry written under entry format 1 is not at the current path (has() is False),
    is refused by get() even when put there, and is removed with one notice."""
    record = _record(tmp_path)
    cache = FeatureCache.for_config(_cfg(tmp_path))
    monkeypatch.setattr(cache_module, "ENTRY_FORMAT", 1)
    old = cache.put(record, _entry(record))
    assert torch.load(old, weights_only=True)["meta"]["format"] == 1
    monkeypatch.undo()
    assert old.name.endswith(".f1.pt") and not cache.has(record)
    current = cache.path_for(record)
    os.link(old, current)   # the old entry where a current one would be
    with pytest.raises(CacheEntryError, match="cache entry of format 1, this mmer reads format 2"):
        cache.get(record)
    current.unlink()
    with caplog.at_level("WARNING"):
        assert cache.remove_other_formats() == 1
    assert not old.exists()
    notices = [r.getMessage() for r in caplog.records if "another entry format" in r.getMessage()]
    assert len(notices) == 1 and "\n" not in notices[0] and str(cache.dir) in notices[0]
    assert cache.remove_other_formats() == 0
