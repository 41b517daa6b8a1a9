"""Turn every clip of a dataset into cached backbone features (``python -m mmer.extract``).

Clips already in the cache are skipped, so a killed run resumes where it stopped.
Decoding and snippet/segment building (:class:`mmer.features.clips.ClipDataset`) run in DataLoader workers
(``features.num_workers``) so they overlap the backbone passes; the backbones see
``features.batch_size`` snippets (or segments) per forward pass, gathered from
several clips. A clip that cannot be used (:func:`mmer.errors.is_bad_input`) is listed
with its reason in ``skipped.tsv`` in the cache folder and the job carries on; any other
error stops the job with its traceback, naming the clip.

Several processes can share the work (:mod:`mmer.features.claims`): ``shard=(i, n)``
takes every n-th clip; independent processes on one cache claim each clip before decoding
it; the skip list is merged, and each process adds what it did to the cache's
``summary.json``.
"""
from __future__ import annotations

import logging
import os
import resource
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from mmer.config import Config
from mmer.datasets import collect_records, get_adapter
from mmer.datasets.records import ClipRecord
from mmer.device import resolve_device
from mmer.features.backbones import Backbones
from mmer.features.cache import CacheEntryError, FeatureCache, make_entry
from mmer.features.claims import LOCKS, Claims, merge_skip_file, record_summary, shard_items, worker_id
from mmer.features.clips import ClipDataset
from mmer.io import SkipList, WriteError, clean_orphans, writable_folder

log = logging.getLogger(__name__)


@dataclass
class ExtractSummary:
    """What one extraction run did. `clip_seconds`: wall time per extracted clip
    (each forward group's time shared evenly among its clips)."""

    total: int = 0
    done: int = 0
    skipped: int = 0
    cached: int = 0
    seconds: float = 0.0
    # Clips cut at the corpus's max_seconds by this run (also flagged).
    truncated: int = 0
    clip_seconds: list[float] = field(default_factory=list)
    # CPU time of the clip loop (this process and its decode workers; model building excluded).
    cpu_seconds: float = 0.0
    # Clips accepted with something odd (silent track, very few frames, short wav data):
    # also in their entries' meta["flags"] and in the cache's flagged-<root hash>.tsv.
    flagged: SkipList = field(default_factory=lambda: SkipList(log_each=False))
    # Clip ids by outcome, for summary.json; "elsewhere": claimed by another live process.
    ids: dict[str, list[str]] = field(default_factory=lambda: {
        "extracted": [], "cached": [], "skipped": [], "claimed_elsewhere": []})

    @property
    def clips_per_s(self) -> float:
        return self.done / self.seconds if self.seconds > 0 else 0.0


def extract(cfg: Config, *, limit: int | None = None, device: str | None = None,
            progress: bool = True, shard: tuple[int, int] | None = None,
            claims: bool = True, verify: bool = False) -> ExtractSummary:
    """Extract and cache the features of every clip of `cfg` not cached yet.

    `shard` ``(i, n)``: only clips i, i + n, ... (after `limit`). `claims`: claim each clip
    first (:class:`mmer.features.claims.Claims`) so concurrent processes share the work.
    An entry that is not whole (a cut file) counts as missing and is redone; with `verify`
    every entry is also loaded, and one that cannot be read is deleted and redone."""
    start, started = time.perf_counter(), time.time()
    records, skips = collect_records(cfg)
    records = records[:limit] if limit is not None else records
    every = records
    records = shard_items(records, *shard) if shard is not None else records
    cache = FeatureCache.for_config(cfg)
    read_only = cache.dir.is_dir() and not os.access(cache.dir, os.W_OK)
    if not read_only:
        writable_folder(cache.dir)  # before the backbones load: one line naming the folder
        clean_orphans(cache.dir)
        cache.remove_other_formats()
    for record in records:
        if record.path is None:
            skips.add(record.clip_id, "no media file for this clip")
    if verify:
        _verify(cache, [r for r in records if r.path is not None], read_only)
    todo = [r for r in records if r.path is not None and not cache.has(r)]
    with_media = sum(r.path is not None for r in records)
    summary = ExtractSummary(total=len(records), cached=with_media - len(todo))
    summary.ids["skipped"] = [r.clip_id for r in records if r.path is None]
    waiting = {r.clip_id for r in todo}
    summary.ids["cached"] = [r.clip_id for r in records if r.path is not None and r.clip_id not in waiting]
    log.info("%d clips, %d already cached in %s, %d to extract",
             len(records), summary.cached, cache.dir, len(todo))
    if read_only:
        return _read_only(cache, todo, summary, start)
    dev = resolve_device(device or cfg.features.device)
    try:
        if todo:
            owner = Claims(cache.dir / LOCKS) if claims else None
            _extract_clips(cfg, todo, cache, Backbones(cfg, dev), skips, summary, progress, owner)
    finally:
        summary.skipped = len(skips)
        summary.seconds = time.perf_counter() - start
        done = {k for r in every if cache.has(r) for k in (str(r.path), r.clip_id)}
        # One list per data root, the union with other processes' skips.
        skip_file = cache.skip_file(get_adapter(cfg).root(cfg))
        merge_skip_file(skip_file, skips, done=done)
        if len(summary.flagged):
            merge_skip_file(skip_file.with_name("flagged" + skip_file.name[7:]), summary.flagged)
        _record(cache, summary, started, shard)
    return summary


def _read_only(cache: FeatureCache, todo: list[ClipRecord], summary: ExtractSummary,
               start: float) -> ExtractSummary:
    """A cache folder this process cannot write: fine when nothing is left to extract (no
    claim, skip list or summary is written), else one line naming it."""
    if todo:
        raise WriteError(f"{cache.dir}: this folder is not writable and {len(todo)} clips are "
                         "not extracted yet; make it writable or set features.cache_dir")
    log.info("%s is read-only and complete: nothing to write", cache.dir)
    summary.seconds = time.perf_counter() - start
    return summary


def _verify(cache: FeatureCache, records: Sequence[ClipRecord], read_only: bool) -> None:
    """``--verify``: the unreadable entries are removed to be extracted again; in a cache
    this process cannot write they are only named, in one line (nothing is changed)."""
    bad = verify_entries(cache, records, remove=not read_only)
    if read_only and bad:
        raise WriteError(f"{cache.dir}: {len(bad)} cache entries cannot be read (first: {bad[0].name}) and this "
                         "folder is not writable, so they cannot be extracted again; make it writable or "
                         "set features.cache_dir")
    log.info("verified the cache entries: %d unreadable, removed to be extracted again", len(bad))


def verify_entries(cache: FeatureCache, records: Sequence[ClipRecord], *, remove: bool = True) -> list[Path]:
    """Load every existing entry of `records`; the unreadable ones' paths (deleted when `remove`)."""
    bad = []
    for record in records:
        path = cache.path_for(record)
        if not path.exists():
            continue
        try:
            cache.get(record)
        except CacheEntryError as err:
            log.warning("%s", err)
            if remove:
                path.unlink(missing_ok=True)
            bad.append(path)
    return bad


def _record(cache: FeatureCache, summary: ExtractSummary, started: float,
            shard: tuple[int, int] | None) -> None:
    """This process's line in the cache's summary.json."""
    record = {"shard": f"{shard[0]}/{shard[1]}" if shard else None, "pid": os.getpid(),
              "started": started, "finished": time.time(), "n_clips": summary.total,
              **{f"n_{k}": len(v) for k, v in summary.ids.items()}, **summary.ids}
    record_summary(cache.dir, worker_id(shard), record)


def _extract_clips(cfg: Config, todo: list[ClipRecord], cache: FeatureCache,
                   nets: Backbones, skips: SkipList, summary: ExtractSummary, progress: bool,
                   claims: Claims | None = None) -> None:
    n_snip = max(cfg.video.n_snippets, cfg.audio.n_segments, 1)
    # collate_fn=list: a batch stays a list of clip dicts (their shapes may differ).
    loader = DataLoader(ClipDataset(todo, cfg, claims=claims, cache=cache), batch_size=max(1, cfg.features.batch_size // n_snip),
                        num_workers=cfg.features.num_workers, collate_fn=list,
                        pin_memory=nets.cuda, generator=torch.Generator().manual_seed(0),
                        worker_init_fn=_worker_init,
                        # A forked worker inherits the parent's OpenMP thread pool in whatever
                        # state earlier torch work left it, and can hang on its first op.
                        multiprocessing_context="forkserver" if cfg.features.num_workers > 0 else None)
    tick, cpu = time.perf_counter(), _cpu_time()
    with tqdm(total=len(todo), unit="clip", desc="extract", disable=not progress) as bar, \
            torch.inference_mode():
        for items in loader:
            good = _sort_items(items, todo, skips, summary, claims)
            for it, feats in zip(good, nets.features(good), strict=True):
                record = todo[it["index"]]
                for flag in it.get("flags", []):
                    log.warning("accepted %s, but: %s", record.path, flag)
                    summary.flagged.add(record.path, flag)
                cache.put(record, make_entry(record, it, feats, nets.pretrained))
                summary.truncated += bool(it["truncated"])
                summary.ids["extracted"].append(record.clip_id)
                if claims is not None:
                    claims.release(str(record.path))
            now = time.perf_counter()
            summary.done += len(good)
            summary.clip_seconds += [(now - tick) / len(items)] * len(good)
            tick = now
            bar.update(len(items))
    summary.cpu_seconds = _cpu_time() - cpu  # the loader has joined its workers by now


def _sort_items(items: list[dict[str, Any]], todo: list[ClipRecord], skips: SkipList,
                summary: ExtractSummary, claims: Claims | None) -> list[dict[str, Any]]:
    """The items to run through the backbones; the others are counted (and unclaimed)."""
    good = []
    for it in items:
        record = todo[it["index"]]
        outcome = ("claimed_elsewhere" if it.get("busy") else "cached" if it.get("cached")
                   else "skipped" if "error" in it else None)
        if outcome is None:
            good.append(it)
            continue
        summary.ids[outcome].append(record.clip_id)
        if outcome == "skipped":
            skips.add(record.path, it["error"])
            if claims is not None:
                claims.release(str(record.path))
        summary.cached += outcome == "cached"
    return good


def _cpu_time() -> float:
    """CPU seconds of this process and its finished children (the DataLoader workers)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def _worker_init(worker_id: int) -> None:
    # The workers are the parallelism: OpenCV's own thread pool in each of them (torch
    # is already limited to one thread there) would fight the backbones for the cores.
    cv2.setNumThreads(1)
