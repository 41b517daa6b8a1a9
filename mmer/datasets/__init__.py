"""One adapter per corpus behind one interface (:class:`~mmer.datasets.base.DatasetAdapter`).

``get_adapter(cfg.dataset)`` is the only place a dataset name is looked up; everything
downstream asks the adapter (records, label names of every task, selection metric,
split rule, media streams, synthetic-set writer). :func:`collect_records` lists a config's
clips for training, evaluation, prediction and extraction.
"""
from __future__ import annotations

from mmer.config import Config
from mmer.config.keys import needs_media
from mmer.datasets.base import DatasetAdapter
from mmer.datasets.crema_d import CremaDAdapter
from mmer.datasets.mead import MeadAdapter
from mmer.datasets.meld import MeldAdapter
from mmer.datasets.ravdess import RavdessAdapter
from mmer.datasets.records import ClipRecord
from mmer.errors import ConfigError
from mmer.io import SkipList

ADAPTERS: dict[str, DatasetAdapter] = {a.name: a for a in (RavdessAdapter(), MeldAdapter(), CremaDAdapter(),
                                                                MeadAdapter())}


def get_adapter(name: str | Config) -> DatasetAdapter:
    """The adapter of a dataset name (or of a config's ``dataset``); refuses unknown names."""
    key = name.dataset if isinstance(name, Config) else name
    try:
        return ADAPTERS[key]
    except KeyError:
        raise ConfigError(f"dataset {key!r} is unknown; valid: {', '.join(sorted(ADAPTERS))}") from None


def collect_records(cfg: Config) -> tuple[list[ClipRecord], SkipList]:
    """All clips of ``cfg.dataset``, sorted by clip id, and the files the reader skipped.

    A model that reads no media (text-only MELD) gets records without media files."""
    records, skips = get_adapter(cfg).records(cfg, require_media=needs_media(cfg))
    return sorted(records, key=lambda r: r.clip_id), skips


__all__ = ["ADAPTERS", "DatasetAdapter", "collect_records", "get_adapter"]
