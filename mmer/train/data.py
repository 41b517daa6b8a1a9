"""The data of one training fold: records -> split -> model input entries -> datasets.

The dataset's adapter gives the records, the split (actor folds, or the corpus's own
train/dev/test) and the label names; :func:`mmer.inputs.builder.model_entries` turns
each part's records into the entries the model reads. A trained text encoder's
tokenizer is fitted on the training texts here and travels in the checkpoint.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import torch

from mmer.config import Config
from mmer.config.keys import batch_keys, input_keys, needs_media, uses_tokens
from mmer.datasets import collect_records, get_adapter
from mmer.datasets.base import PARTS
from mmer.datasets.records import ClipRecord
from mmer.errors import BadInput
from mmer.features.cache import FeatureCache
from mmer.features.tokenizer import Tokenizer, make_tokenizer
from mmer.inputs.builder import model_entries, same_shapes, visual_features_of
from mmer.inputs.datasets import FeatureDataset
from mmer.io import SkipList
from mmer.seed import derive_seed, make_generator

log = logging.getLogger(__name__)


class CacheIncompleteError(BadInput):
    """Clips without cached features: run the extractor first."""


@dataclass
class FoldData:
    """The datasets of one fold and what a checkpoint must remember about them."""

    parts: dict[str, FeatureDataset | None]
    split: dict[str, Any]
    label_names: list[str]
    extra_classes: dict[str, int]
    skips: SkipList
    tokenizer: Tokenizer | None = None
    # {clip id: media file} of the training clips (predict's feature check re-makes one).
    train_paths: dict[str, str] | None = None


def fold_data(cfg: Config, fold: int, *, merge_val: bool = False) -> FoldData:
    """Records -> split -> entries -> datasets. Raises :class:`CacheIncompleteError` when
    clips have no cache entry and were not skipped by the extractor. `merge_val`: the
    validation clips join the training clips (a refit; no validation part).

    A model that reads no media (text-only MELD) needs no clips: its entries are the
    records themselves."""
    adapter = get_adapter(cfg)
    records, skips = collect_records(cfg)
    usable = _cached_records(cfg, records, skips) if needs_media(cfg) else records
    visual = None
    if "visual" in input_keys(cfg.model).values():  # clips without a row are listed, then left out
        visual, listing = visual_features_of(cfg, usable)
        skips.extend(listing)
        usable = [r for r in usable if r.clip_id in visual]
    parts, split = adapter.split(cfg, usable, fold)
    if merge_val:
        parts, split = _merge_val(parts, split)
    if not parts["train"]:
        raise BadInput(f"fold {fold}: no training clips in {adapter.root(cfg)} "
                       f"({len(records)} records, {len(skips)} skipped)")
    tokenizer = None
    if "text" in input_keys(cfg.model).values() and uses_tokens(cfg.text):
        tokenizer = make_tokenizer(cfg.text, [str(r.extra["text"]) for r in parts["train"]])
    entries = {p: model_entries(cfg, parts[p], p, tokenizer=tokenizer, visual=visual) for p in PARTS}
    entries = same_shapes(entries, batch_keys(cfg), skips)
    datasets = {p: _dataset(cfg, entries[p], p) for p in PARTS}
    return FoldData(datasets, split, adapter.label_names,
                    {t: len(n) for t, n in adapter.extra_tasks.items()}, skips, tokenizer,
                    {r.clip_id: str(r.path) for r in parts["train"] if r.path is not None})


def _dataset(cfg: Config, entries: list[dict], part: str) -> FeatureDataset | None:
    truncated = sum(bool((e.get("meta") or {}).get("truncated")) for e in entries)
    if truncated:
        log.info("%s: %d clips were truncated at the corpus's maximum length", part, truncated)
    if not entries:
        return None
    dataset = FeatureDataset(entries, batch_keys(cfg), augment=cfg.train.augment, seed=cfg.train.seed,
                             extra_targets=list(get_adapter(cfg).extra_tasks))
    if cfg.train.shuffle_labels and part in ("train", "val"):
        gen = make_generator(derive_seed(cfg.train.seed, PARTS.index(part), 7919))
        dataset.labels = dataset.labels[torch.randperm(len(dataset.labels), generator=gen)]
        log.warning("train.shuffle_labels: the %s labels are permuted (a sanity check)", part)
    return dataset


def _cached_records(cfg: Config, records: list[ClipRecord], skips: SkipList) -> list[ClipRecord]:
    """The records with a cache entry; extraction skips are listed, other misses raise."""
    cache = FeatureCache.for_config(cfg)
    skipped_before = cache.skipped_items(get_adapter(cfg).root(cfg))
    usable, missing = [], []
    for r in records:
        if cache.has(r):
            usable.append(r)
        elif str(r.path) in skipped_before or r.clip_id in skipped_before:
            skips.add(r.clip_id, "skipped by feature extraction (see the cache's skipped-*.tsv)")
        else:
            missing.append(r)
    if missing:
        raise CacheIncompleteError(
            f"{len(missing)} of {len(records)} clips have no cached features in {cache.dir} "
            f"(first: {missing[0].clip_id}); run: python -m mmer.extract --config <this config>")
    if not usable:
        raise CacheIncompleteError(f"no clips with cached features for {cfg.dataset} in {cache.dir}")
    return usable


def _merge_val(parts: dict[str, list], split: dict[str, Any]) -> tuple[dict[str, list], dict[str, Any]]:
    """The validation part moved into the training part, in the records and in the split
    description (which records what was merged under ``"refit"``)."""
    split = dict(split, refit={"val_actors": list((split.get("actors") or {}).get("val", [])),
                               "val_clips": len(parts["val"])})
    for side in ("actors", "clips"):
        if side in split:
            split[side] = dict(split[side], train=list(split[side]["train"]) + list(split[side]["val"]),
                               val=[])
    return dict(parts, train=parts["train"] + parts["val"], val=[]), split
