"""On-disk cache of backbone features: one ``torch.save`` file per clip.

Layout: ``<root>/<config hash>/<clip id>.<key>.f<ENTRY_FORMAT>.pt`` where the config hash
covers every setting that changes the features (``video``, ``audio`` and ``backbone``
sections, the state of the weight files, ``features.train_views``, the corpus's
``max_seconds`` cut) and the
key hashes the clip's absolute path, size and mtime together with that config hash. So an
edited clip, a changed feature setting or a weight file that appeared since the last
run each miss the cache, and stale entries are never read.

:data:`ENTRY_FORMAT` numbers the entry format (its keys and their meaning); it is in each
entry's file name and ``meta["format"]``. An entry of another format is never read:
extraction removes it with a one-line notice and extracts its clip again.

Entries are written with :func:`mmer.io.atomic_save`: a run killed mid-write leaves no
partial entry, and the next run redoes exactly the clips without one. The entry dict
is the one fixed in docs/design.md (``clip_id``, ``label``, ``speaker``, ``group``,
``extra``, ``video``, ``audio``, ``logmel``, ``meta``).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from mmer.config import Config
from mmer.datasets import get_adapter
from mmer.datasets.records import ClipRecord
from mmer.errors import BadInput, brief
from mmer.io import SkipList, atomic_save
from mmer.nets.pretrained import weight_file

log = logging.getLogger(__name__)

# The entry format; bump it when the content or meaning of an entry changes.
ENTRY_FORMAT = 2
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


class CacheEntryError(BadInput):
    """A cache entry that is absent, unreadable or not for the clip asked for."""


def weights_state(cfg: Config) -> dict[str, str]:
    """What each backbone's weights will be, from the disk alone (no model is built).

    ``"random"`` when ``backbone.pretrained`` is none, the backbone is off or its file
    is absent (with ``optional``; ``required`` fails later, at load time), otherwise
    the file's name, size and mtime, so replacing a checkpoint invalidates the cache.
    """
    bb = cfg.backbone
    state = {}
    for part, name in (("video", bb.video), ("audio", bb.audio)):
        path = weight_file(bb, part) if name != "none" else None
        if path is None or bb.pretrained == "none" or not path.is_file():
            state[part] = "random"
        else:
            st = path.stat()
            state[part] = f"{path.name}:{st.st_size}:{st.st_mtime_ns}"
    return state


# Backbone fields that only the pretrained audio encoders read: they change nothing for
# the resnet18 or no audio backbone, so they are left out of its hash.
_AUDIO_ENCODER_FIELDS = ("whisper_frames", "whisper_layers", "audio_pool", "audio_image_size",
                         "audio_views", "audio_view_speed")


def _backbone_fields(cfg: Config) -> dict[str, Any]:
    """``cfg.backbone`` as hashed: every field the chosen backbones read."""
    fields = dataclasses.asdict(cfg.backbone)
    if cfg.backbone.audio in ("resnet18", "none"):
        for key in _AUDIO_ENCODER_FIELDS:
            del fields[key]
    return fields


def feature_config_hash(cfg: Config) -> str:
    """16 hex digits over everything that changes the cached features of a clip."""
    relevant: dict[str, Any] = {
        "video": dataclasses.asdict(cfg.video),
        "audio": dataclasses.asdict(cfg.audio),
        "backbone": _backbone_fields(cfg),
        "weights": weights_state(cfg),
        "train_views": cfg.features.train_views,  # entries hold that many extra views
    }
    max_seconds = get_adapter(cfg).max_seconds(cfg)
    if max_seconds is not None:  # clips are cut there when decoded
        relevant[f"{cfg.dataset}_max_seconds"] = max_seconds
    blob = json.dumps(relevant, sort_keys=True)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


def clip_identity(record: ClipRecord) -> str:
    """The clip file's absolute path, size and mtime (an edited clip changes it); raises
    :class:`CacheEntryError` if the clip has no file or cannot be read."""
    if record.path is None:
        raise CacheEntryError(f"{record.clip_id}: no media file, nothing to cache")
    clip = Path(record.path).resolve()
    try:
        st = clip.stat()
    except OSError as err:
        raise CacheEntryError(f"{clip}: cannot stat clip ({err.strerror})") from None
    return f"{clip}\0{st.st_size}\0{st.st_mtime_ns}"


def record_entry(record: ClipRecord) -> dict[str, Any]:
    """The record fields of a cache entry (docs/design.md), without features: what a
    text-only model reads (the input builder attaches the text)."""
    return {"clip_id": record.clip_id, "label": record.label, "speaker": record.speaker,
            "group": record.group, "extra": json.loads(json.dumps(record.extra, default=str))}


def make_entry(record: ClipRecord, item: dict[str, Any], feats: dict[str, torch.Tensor],
               pretrained: dict[str, Any]) -> dict[str, Any]:
    """The cache entry of docs/design.md for one clip."""
    entry: dict[str, Any] = {
        **record_entry(record),
        **feats,
        "meta": {"face_misses": int(item["face_misses"]), "pretrained": pretrained,
                 "truncated": bool(item["truncated"]), "flags": list(item.get("flags", []))},
    }
    if "logmel" in item:
        entry["logmel"] = item["logmel"].to(torch.float16)
    if "egemaps" in item:
        entry["egemaps"] = item["egemaps"]
    return entry


class FeatureCache:
    """Per-clip feature entries under ``root/<feature_config_hash>/``."""

    def __init__(self, root: str | Path, feature_config_hash: str) -> None:
        self.root = Path(root)
        self.config_hash = feature_config_hash
        self.dir = self.root / feature_config_hash

    @classmethod
    def for_config(cls, cfg: Config) -> FeatureCache:
        """The cache that ``python -m mmer.extract`` fills for this config."""
        return cls(cfg.features.cache_dir, feature_config_hash(cfg))

    def path_for(self, record: ClipRecord) -> Path:
        """Entry file of `record`; raises :class:`CacheEntryError` if its clip is unreadable."""
        raw = f"{clip_identity(record)}\0{self.config_hash}"
        key = hashlib.sha1(raw.encode("utf-8", "surrogateescape")).hexdigest()[:16]
        stem = _UNSAFE.sub("_", record.clip_id).strip("_") or "clip"
        return self.dir / f"{stem}.{key}.f{ENTRY_FORMAT}.pt"

    def has(self, record: ClipRecord) -> bool:
        """Whether `record` has an entry that looks whole (see :func:`entry_looks_whole`)."""
        try:
            return entry_looks_whole(self.path_for(record))
        except CacheEntryError:
            return False

    def get(self, record: ClipRecord) -> dict[str, Any]:
        """Load the entry of `record` (tensors on CPU)."""
        path = self.path_for(record)
        if not path.is_file():
            raise CacheEntryError(f"{path}: no cache entry for {record.clip_id}; "
                                  f"run python -m mmer.extract with this config")
        try:
            entry = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # a damaged file can fail in many ways
            raise CacheEntryError(f"{path}: unreadable cache entry ({brief(err)})") from err
        if not isinstance(entry, dict) or entry.get("clip_id") != record.clip_id:
            raise CacheEntryError(f"{path}: cache entry is not for clip {record.clip_id}")
        found = entry.get("meta", {}).get("format")
        if found != ENTRY_FORMAT:
            raise CacheEntryError(f"{path}: cache entry of format {found}, this mmer reads format "
                                  f"{ENTRY_FORMAT}; run python -m mmer.extract to extract it again")
        return entry

    def put(self, record: ClipRecord, entry: dict[str, Any]) -> Path:
        """Write `entry` for `record` atomically, stamped with :data:`ENTRY_FORMAT` in its
        ``meta``; returns the entry's path."""
        path = self.path_for(record)
        compact = {k: compact_tensor(v) for k, v in entry.items()}
        compact["meta"] = {**entry.get("meta", {}), "format": ENTRY_FORMAT}
        atomic_save(path, lambda fh: torch.save(compact, fh))
        return path

    def load_all(self, records: Sequence[ClipRecord]) -> tuple[list[dict[str, Any]], list[ClipRecord]]:
        """Entries of `records` in their order, and the records that have none."""
        entries, missing = [], []
        for record in records:
            if self.has(record):
                entries.append(self.get(record))
            else:
                missing.append(record)
        if missing:
            log.warning("%d of %d clips have no cache entry in %s (first: %s)",
                        len(missing), len(records), self.dir, missing[0].clip_id)
        return entries, missing

    def remove_other_formats(self) -> int:
        """Delete the entries of another entry format in this cache's folder (never read:
        their clips are extracted again); logs one line when there were any. Returns their count."""
        other = [p for p in self.dir.glob("*.pt") if not p.name.endswith(f".f{ENTRY_FORMAT}.pt")]
        for path in other:
            path.unlink(missing_ok=True)
        if other:
            log.warning("%s: %d cache entries of another entry format removed (this mmer reads "
                        "format %d); their clips are extracted again", self.dir, len(other), ENTRY_FORMAT)
        return len(other)

    def skip_file(self, data_root: str | Path) -> Path:
        """Where extraction lists the clips of `data_root` it could not use:
        ``skipped-<hash of the root>.tsv``, one per data root, so extracting another root
        with the same feature settings does not replace this root's list."""
        key = hashlib.sha1(str(Path(data_root).resolve()).encode("utf-8", "surrogateescape"))
        return self.dir / f"skipped-{key.hexdigest()[:12]}.tsv"

    def skipped_items(self, data_root: str | Path) -> set[str]:
        """The items (clip paths or ids) extraction listed as unusable under `data_root`."""
        path = self.skip_file(data_root)
        return {s.item for s in SkipList.read(path)} if path.is_file() else set()


def compact_tensor(value: Any) -> Any:
    """`value`, a tensor made to own exactly its elements: ``torch.save`` writes a view's
    whole storage (e.g. the backbone output of a loader batch, not one clip's rows)."""
    if isinstance(value, torch.Tensor) and (
            value.untyped_storage().nbytes() != value.numel() * value.element_size()
            or not value.is_contiguous()):
        return value.clone(memory_format=torch.contiguous_format)
    return value


def entry_looks_whole(path: Path) -> bool:
    """A cheap check that `path` is a complete ``torch.save`` file: a zip archive that starts
    with a local header and ends with its end-of-central-directory record (a cut file loses
    the end). It does not read the tensors; ``python -m mmer.extract --verify`` does."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(4)
            size = fh.seek(0, 2)
            if size < 26 or head != b"PK\x03\x04":
                return False
            fh.seek(size - 22)
            return fh.read(4) == b"PK\x05\x06"
    except OSError:
        return False
