"""Several extraction processes on one cache: shards by rank, claims, merged skip lists and
summary.json (tiny synthetic RAVDESS clips of tests/extraction/conftest.py, CPU, random weights)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from mmer.errors import BadInput
from mmer.extraction.job import extract
from mmer.features.cache import FeatureCache
from mmer.features.claims import Claims, merge_skip_file, parse_shard, shard_items
from mmer.io import SkipList
from tests.helpers.extract import BAD, _cfg, _raw

ROOT = Path(__file__).resolve().parents[2]
N_CLIPS = 5  # 4 good clips and BAD, a corrupt mp4 with a valid name


def _config_file(root: Path, tmp_path, cache: str) -> Path:
    raw = _raw(root, tmp_path)
    raw["features"]["cache_dir"] = str(tmp_path / cache)
    path = tmp_path / f"{cache}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _start(*args: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, *args], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def _wait(*procs: subprocess.Popen) -> None:
    for proc in procs:
        log, _ = proc.communicate(timeout=240)
        assert proc.returncode == 0, log[-3000:]


def _entries(cache_dir: Path) -> dict[str, dict]:
    return {p.name: torch.load(p, weights_only=True) for p in sorted(cache_dir.glob("*.pt"))}


def _assert_same_entries(a: dict[str, dict], b: dict[str, dict]) -> None:
    assert sorted(a) == sorted(b) and len(a) == N_CLIPS - 1
    for name in a:
        for key in ("video", "audio"):
            assert torch.equal(a[name][key], b[name][key]), (name, key)


@pytest.mark.slow
def test_torchrun_shards_equal_a_single_process_extraction(dataset, tmp_path):
    single = _cfg(dataset, tmp_path, f"features.cache_dir={tmp_path / 'single'}")
    extract(single, progress=False)
    config = _config_file(dataset, tmp_path, "sharded")
    _wait(_start("-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                 "-m", "mmer.extract", "--config", str(config)))
    sharded_dir = FeatureCache.for_config(_cfg(dataset, tmp_path, f"features.cache_dir={tmp_path / 'sharded'}")).dir
    _assert_same_entries(_entries(FeatureCache.for_config(single).dir), _entries(sharded_dir))
    summary = json.loads((sharded_dir / "summary.json").read_text())
    procs = summary["processes"]
    assert sorted(procs) == ["rank0of2", "rank1of2"]
    assert [procs[w]["shard"] for w in sorted(procs)] == ["0/2", "1/2"]
    done = [c for r in procs.values() for k in ("extracted", "cached", "skipped") for c in r[k]]
    assert len(done) == len(set(done)) == N_CLIPS  # every clip once, in one rank's lists
    assert summary["total"] == {"clips": 5, "extracted": 4, "cached": 0, "skipped": 1, "claimed_elsewhere": 0}
    skip_file = FeatureCache(tmp_path / "sharded", sharded_dir.name).skip_file(dataset / "Actors")
    assert [s.item for s in SkipList.read(skip_file)] == [
        str(dataset / "Actors" / "Actor_01" / BAD)]


@pytest.mark.slow
def test_concurrent_independent_extractions_share_the_clips(dataset, tmp_path):
    config = _config_file(dataset, tmp_path, "shared")
    cache_dir = FeatureCache.for_config(_cfg(dataset, tmp_path, f"features.cache_dir={tmp_path / 'shared'}")).dir
    earlier = SkipList()
    earlier.add("/elsewhere/other-root.mp4", "skipped by another process")
    skip_file = FeatureCache(tmp_path / "shared", cache_dir.name).skip_file(dataset / "Actors")
    earlier.write(skip_file)  # this root's list, holding another process's row
    a, b = (_start("-m", "mmer.extract", "--config", str(config)) for _ in range(2))
    _wait(a, b)
    summary = json.loads((cache_dir / "summary.json").read_text())
    procs = summary["processes"].values()
    assert len(procs) == 2
    extracted = [c for r in procs for c in r["extracted"]]
    assert len(extracted) == len(set(extracted)) == N_CLIPS - 1  # each clip extracted exactly once
    assert summary["total"]["extracted"] == N_CLIPS - 1
    for r in procs:  # each process accounts for every clip it saw
        assert r["n_extracted"] + r["n_cached"] + r["n_skipped"] + r["n_claimed_elsewhere"] == N_CLIPS
    items = [s.item for s in SkipList.read(skip_file)]
    assert items == ["/elsewhere/other-root.mp4", str(dataset / "Actors" / "Actor_01" / BAD)]
    assert not list((cache_dir / ".claims").glob("*.claim"))
    assert len(list(cache_dir.glob("*.pt"))) == N_CLIPS - 1


def test_claims_are_exclusive_and_stale_ones_are_taken_over(tmp_path):
    parent = os.getppid()  # a live process that is not this one
    theirs, mine = Claims(tmp_path, owner=parent), Claims(tmp_path)
    assert theirs.acquire("clip-a") and not mine.acquire("clip-a")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    assert Claims(tmp_path, owner=dead.pid).acquire("clip-b")
    assert mine.acquire("clip-b")  # its owner is dead
    old = Claims(tmp_path, owner=parent, timeout_s=0.5)
    assert old.acquire("clip-c") and not mine.acquire("clip-c")
    time.sleep(0.6)
    assert Claims(tmp_path, timeout_s=0.5).acquire("clip-c")  # older than the timeout
    mine.release("clip-b")
    assert mine.acquire("clip-b") and not theirs.acquire("clip-b")
    assert json.loads(mine.path("clip-b").read_text())["pid"] == os.getpid()


def test_a_claim_is_written_whole_before_it_appears(tmp_path, monkeypatch):
    """A claim file appears by a hard link of a complete draft, so an empty or unreadable
    claim (an older writer killed mid-way) is stale at once, and no draft is left behind.
    Without hard links the claim is created exclusively and written in place."""
    mine = Claims(tmp_path)
    mine.path("clip-a").write_text("")  # what a writer killed between create and write leaves
    assert mine.acquire("clip-a")
    assert json.loads(mine.path("clip-a").read_text())["key"] == "clip-a"
    assert sorted(p.name for p in tmp_path.iterdir()) == [mine.path("clip-a").name]

    def no_links(src, dst):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    theirs = Claims(tmp_path, owner=os.getppid())
    assert theirs.acquire("clip-b") and not mine.acquire("clip-b")
    assert json.loads(theirs.path("clip-b").read_text())["pid"] == os.getppid()
    assert len(list(tmp_path.iterdir())) == 2


def test_skip_lists_merge_by_item_and_drop_what_is_done(tmp_path):
    path = tmp_path / "skipped.tsv"
    first, second = SkipList(), SkipList()
    first.add("a.mp4", "unreadable")
    first.add("b.mp4", "no audio")
    second.add("b.mp4", "no audio stream")
    second.add("c.mp4", "too short")
    merge_skip_file(path, first)
    merged = merge_skip_file(path, second, done={"a.mp4"})
    assert [(s.item, s.reason) for s in merged] == [("b.mp4", "no audio stream"), ("c.mp4", "too short")]
    assert [s.item for s in SkipList.read(path)] == ["b.mp4", "c.mp4"]


def test_shards_partition_the_clips():
    items = list(range(11))
    parts = [shard_items(items, i, 3) for i in range(3)]
    assert sorted(sum(parts, [])) == items and parts[1] == [1, 4, 7, 10]
    assert parse_shard("1/3") == (1, 3)
    for bad in ("3/3", "a/b", "1"):
        with pytest.raises(BadInput):
            parse_shard(bad)
