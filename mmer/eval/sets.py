"""The clips of a trained fold as model outputs: :class:`EmbeddedSet` per part.

The clips of each part are the ones the checkpoint's ``split["clips"]`` lists, so
evaluation sees exactly the training, validation and test clips of training. Scoring
on another data root keeps the training clips as the kNN reference and makes every
clip found under the other root the ``test`` part; only data-location sections of the
config (:data:`DATA_SECTIONS`) may change for that, never the model.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from mmer.config import Config, ConfigError, config_from_dict
from mmer.data.dataset import FeatureDataset, eval_loader
from mmer.data.records import ClipRecord
from mmer.engine import embed
from mmer.features.cache import FeatureCache
from mmer.models.build import input_keys

log = logging.getLogger(__name__)

# Config sections an evaluation on another data root may override.
DATA_SECTIONS = ("ravdess", "meld", "features")


class MissingFeaturesError(ValueError):
    """Clips to be evaluated that have no cached features."""


@dataclass
class EmbeddedSet:
    """Model outputs for N clips: embedding (N, E), logits (N, K), labels (N,), ids, speakers,
    and per extra task (MELD's sentiment) its logits (N, K_task) and labels (N,)."""

    embedding: np.ndarray
    logits: np.ndarray
    labels: np.ndarray
    clip_ids: list[str] = field(default_factory=list)
    speakers: list[str] = field(default_factory=list)
    extra_logits: dict[str, np.ndarray] = field(default_factory=dict)
    extra_labels: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.embedding = np.asarray(self.embedding, dtype=np.float32)
        self.logits = np.asarray(self.logits, dtype=np.float32)
        self.labels = np.asarray(self.labels, dtype=np.int64)
        n = len(self.labels)
        if self.embedding.shape[0] != n or self.logits.shape[0] != n:
            raise ValueError(f"embedding {self.embedding.shape}, logits {self.logits.shape} and "
                             f"labels {self.labels.shape} disagree on the number of clips")

    def __len__(self) -> int:
        return len(self.labels)


def data_config(config: Mapping[str, Any], data_root: str | None = None,
                overrides: Sequence[str] = ()) -> Config:
    """The checkpoint's config with its data location changed (`data_root`, `overrides`).

    `data_root` replaces ``ravdess.root`` (all actors found there) or ``meld.root``.
    Overrides outside :data:`DATA_SECTIONS` are refused: the model comes from the checkpoint.
    """
    for item in overrides:
        section = item.split("=", 1)[0].strip().split(".", 1)[0]
        if section not in DATA_SECTIONS:
            raise ConfigError(f"override '{item}': only {', '.join(DATA_SECTIONS)} settings may "
                              f"change at evaluation; the model is rebuilt from the checkpoint")
    dataset = config.get("dataset", "ravdess")
    first = []
    if data_root is not None:
        first = [f"meld.root={data_root}"] if dataset == "meld" else [
            f"ravdess.root={data_root}", "ravdess.actors=null"]
    return config_from_dict(config, [*first, *overrides], source="checkpoint config")


def load_entries(cfg: Config, records: Sequence[ClipRecord], what: str) -> list[dict[str, Any]]:
    """Cache entries of `records` in order; raises :class:`MissingFeaturesError` if any is absent.

    A text-only MELD model reads no clip features: its entries are the records, and a
    ``"text"`` input is joined to every entry by its utterance.
    """
    from mmer.extract import needs_clips, record_entry
    if needs_clips(cfg):
        cache = FeatureCache.for_config(cfg)
        entries, missing = cache.load_all(records)
        if missing:
            raise MissingFeaturesError(
                f"{len(missing)} of {len(records)} {what} clips have no cached features in {cache.dir} "
                f"(first: {missing[0].clip_id}); run: python -m mmer.extract with the run's config "
                f"(or evaluate.py --extract)")
    else:
        entries = [record_entry(r) for r in records]
    keys = model_keys(cfg)
    if "text" in keys:
        from mmer.features.text import with_text
        entries = with_text(entries, cfg)
    if "visual" in keys:
        entries = _attach_visual(cfg, records, entries, what)
    if cfg.model.speaker_norm:
        from mmer.data.speaker_norm import speaker_normalise
        entries = speaker_normalise(entries, keys)
    return entries


def _attach_visual(cfg: Config, records: Sequence[ClipRecord], entries: list[dict[str, Any]],
                   what: str) -> list[dict[str, Any]]:
    """`entries` with ``"visual"`` from ``ravdess.visual_table``. Clips of other data
    (`what` ``"evaluation"``) without a row are listed in the log and left out; for the
    checkpoint's own clips a missing row is an error."""
    from mmer.data.visual_table import visual_features, with_visual

    other = what == "evaluation"
    features, _ = visual_features(cfg.ravdess, records, list_unused=other)
    lacking = [r.clip_id for r in records if r.clip_id not in features]
    if lacking and not other:
        raise MissingFeaturesError(f"{len(lacking)} {what} clips have no row in the visual table "
                                   f"{cfg.ravdess.visual_table} (first: {lacking[0]})")
    return with_visual([e for e in entries if str(e["clip_id"]) in features], features)


def checkpoint_records(ckpt: Mapping[str, Any]) -> tuple[Config, dict[str, list[ClipRecord]]]:
    """(the checkpoint's config, {part: records}) for the clips its ``split["clips"]`` lists."""
    from mmer.extract import collect_records

    cfg = config_from_dict(ckpt["config"], source="checkpoint config")
    clips = ckpt["split"]["clips"]
    records, _ = collect_records(cfg)
    by_id = {r.clip_id: r for r in records}
    lost = [c for part in clips.values() for c in part if c not in by_id]
    if lost:
        root = cfg.ravdess.root if cfg.dataset == "ravdess" else cfg.meld.root
        raise MissingFeaturesError(f"{len(lost)} clips of the checkpoint's split are no longer "
                                   f"under {root} (first: {lost[0]})")
    return cfg, {part: [by_id[c] for c in ids] for part, ids in clips.items() if ids}


def fold_entries(ckpt: Mapping[str, Any], *, data_root: str | None = None,
                 data_overrides: Sequence[str] = ()) -> tuple[dict[str, list[dict]], Config]:
    """({part: cache entries}, config the query clips were read with) for a checkpoint.

    Without `data_root`/`data_overrides`: the train, val and test clips of the checkpoint's
    split. With them: the training clips, and every clip of the other data as ``test``.
    """
    from mmer.extract import collect_records

    cfg, records = checkpoint_records(ckpt)
    other = bool(data_root or data_overrides)
    wanted = ("train",) if other else ("train", "val", "test")
    parts = {p: load_entries(cfg, records[p], p) for p in wanted if p in records}
    if not other:
        return parts, cfg
    other_cfg = data_config(ckpt["config"], data_root, data_overrides)
    other_records, skips = collect_records(other_cfg)
    if len(skips):
        log.warning("%d files of the evaluation data were skipped (%s)", len(skips), next(iter(skips)))
    shared = sorted({r.clip_id for r in other_records} & {r.clip_id for r in records.get("train", [])})
    if shared:
        log.warning("%d evaluation clips have the clip id of a training clip (first: %s): "
                    "is the other data root really other actors?", len(shared), shared[0])
    parts["test"] = load_entries(other_cfg, other_records, "evaluation")
    return parts, other_cfg


def backbone_status(entries: Sequence[Mapping[str, Any]], keys: Sequence[str]) -> dict[str, Any]:
    """Whether the frozen backbones behind the model's inputs `keys` had pretrained weights.

    Reads the cache entries' ``meta["pretrained"]``; ``logmel`` inputs feed an encoder
    trained end to end, not a frozen backbone.
    """
    meta = (entries[0].get("meta") or {}).get("pretrained", {}) if entries else {}
    detail, random = {}, False
    for key in keys:
        if key == "logmel":
            detail["audio"] = "log-mel ResNet-18 inside the model, trained from scratch"
        elif key == "egemaps":
            detail["egemaps"] = "openSMILE eGeMAPSv02 functionals (no backbone)"
        elif key in meta:
            info = meta[key]
            status = info.get("status", "unknown")
            random = random or status != "loaded"
            detail[key] = f"{info.get('name', key)} {status}" + (
                f" ({info['file']})" if status == "loaded" else "")
        else:
            detail[key] = "precomputed features (no backbone)"
    return {"random": random, "pretrained": detail}


def embed_entries(model: nn.Module, entries: Sequence[Mapping[str, Any]], keys: Sequence[str], *,
                  device: torch.device, batch_size: int = 64, tasks: Sequence[str] = ()) -> EmbeddedSet:
    """Run `model` over cache `entries` (inputs `keys`, no augmentation) -> EmbeddedSet;
    `tasks`: extra heads whose logits and labels (``entry["extra"][task]``) are kept."""
    dataset = FeatureDataset(entries, keys, extra_targets=tasks)
    out = embed(model.to(device), eval_loader(dataset, batch_size), device=device, tasks=tasks)
    return EmbeddedSet(out["embedding"], out["logits"], out["labels"], dataset.clip_ids,
                       dataset.speakers, {t: out[f"extra_logits/{t}"] for t in tasks},
                       {t: dataset.targets[t].numpy() for t in tasks})


def model_keys(cfg: Config) -> list[str]:
    """The batch keys the model of `cfg` reads."""
    return list(input_keys(cfg.model).values())
