"""The clips of a trained fold as model outputs: :class:`EmbeddedSet` per part.

The clips of each part are the ones the checkpoint's ``split["clips"]`` lists, so
evaluation sees exactly the training, validation and test clips of training. Scoring
on another data root keeps the training clips as the kNN reference and makes every
clip found under the other root the ``test`` part; only data-location sections of the
config (:func:`data_sections`) may change for that, never the model.
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
from mmer.config.keys import AUDIO_TRUNK_KEYS, batch_keys, needs_media
from mmer.datasets import collect_records, get_adapter
from mmer.datasets.records import ClipRecord
from mmer.errors import BadInput
from mmer.features.cache import FeatureCache
from mmer.inputs.builder import MissingFeaturesError, model_entries, same_shapes
from mmer.inputs.datasets import FeatureDataset, eval_loader
from mmer.io import SkipList
from mmer.models.forward import embed
from mmer.run.folder import checkpoint_tokenizer

log = logging.getLogger(__name__)

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
            raise BadInput(f"embedding {self.embedding.shape}, logits {self.logits.shape} and "
                             f"labels {self.labels.shape} disagree on the number of clips")

    def __len__(self) -> int:
        return len(self.labels)


def data_sections(dataset: str) -> tuple[str, ...]:
    """Config sections an evaluation on other data may override: the corpus's, its visual
    table and features."""
    return (get_adapter(dataset).name, "visual", "features")


def data_config(config: Mapping[str, Any], data_root: str | None = None,
                overrides: Sequence[str] = ()) -> Config:
    """The checkpoint's config with its data location changed (`data_root`, `overrides`).

    `data_root` replaces the corpus's root (all speakers found there). Overrides outside
    :func:`data_sections` are refused: the model comes from the checkpoint.
    """
    adapter = get_adapter(config.get("dataset", "ravdess"))
    sections = data_sections(adapter.name)
    for item in overrides:
        section = item.split("=", 1)[0].strip().split(".", 1)[0]
        if section not in sections:
            raise ConfigError(f"override '{item}': only {', '.join(sections)} settings may "
                              f"change at evaluation; the model is rebuilt from the checkpoint")
    first = adapter.root_overrides(data_root) if data_root is not None else []
    return config_from_dict(config, [*first, *overrides], source="checkpoint config")


def load_entries(cfg: Config, records: Sequence[ClipRecord], what: str,
                 ckpt: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """The model input entries of `records` (:func:`mmer.inputs.builder.model_entries`),
    with the tokenizer of checkpoint `ckpt` when its text encoder was trained."""
    tokenizer = checkpoint_tokenizer(ckpt) if ckpt is not None else None
    return model_entries(cfg, records, what, tokenizer=tokenizer)


def checkpoint_records(ckpt: Mapping[str, Any]) -> tuple[Config, dict[str, list[ClipRecord]]]:
    """(the checkpoint's config, {part: records}) for the clips its ``split["clips"]`` lists."""
    cfg = config_from_dict(ckpt["config"], source="checkpoint config")
    clips = ckpt["split"]["clips"]
    records, _ = collect_records(cfg)
    by_id = {r.clip_id: r for r in records}
    lost = [c for part in clips.values() for c in part if c not in by_id]
    if lost:
        raise MissingFeaturesError(f"{len(lost)} clips of the checkpoint's split are no longer "
                                   f"under {get_adapter(cfg).root(cfg)} (first: {lost[0]})")
    return cfg, {part: [by_id[c] for c in ids] for part, ids in clips.items() if ids}


def fold_entries(ckpt: Mapping[str, Any], *, data_root: str | None = None,
                 data_overrides: Sequence[str] = (), skipped: SkipList | None = None
                 ) -> tuple[dict[str, list[dict]], Config]:
    """({part: cache entries}, config the query clips were read with) for a checkpoint.

    Without `data_root`/`data_overrides`: the train, val and test clips of the checkpoint's
    split. With them: the training clips, and every usable clip of the other data as
    ``test``; the files left out (by the reader or by feature extraction) go to `skipped`.
    """
    cfg, records = checkpoint_records(ckpt)
    other = bool(data_root or data_overrides)
    wanted = ("train",) if other else ("train", "val", "test")
    parts = {p: load_entries(cfg, records[p], p, ckpt) for p in wanted if p in records}
    if not other:
        # The clips training left out for their input shape (see mmer.inputs.builder.same_shapes).
        return same_shapes(parts, batch_keys(cfg), skipped if skipped is not None else SkipList()), cfg
    other_cfg = data_config(ckpt["config"], data_root, data_overrides)
    other_records, skips = collect_records(other_cfg)
    if len(skips):
        log.warning("%d files of the evaluation data were skipped (%s)", len(skips), next(iter(skips)))
    shared = sorted({r.clip_id for r in other_records} & {r.clip_id for r in records.get("train", [])})
    if shared:
        log.warning("%d evaluation clips have the clip id of a training clip (first: %s): "
                    "is the other data root really other actors?", len(shared), shared[0])
    other_records = _without_extraction_skips(other_cfg, other_records, skips)
    parts["test"] = load_entries(other_cfg, other_records, "evaluation", ckpt)
    if other_records and not parts["test"] and "visual" in batch_keys(other_cfg):
        raise MissingFeaturesError(
            f"none of the {len(other_records)} evaluation clips has a row in the visual table "
            f"{other_cfg.visual.table}; give the other data's table: --data-set visual.table=FILE")
    # Inputs shaped unlike the training clips' (a long clip's log-mel segments) are listed.
    parts = same_shapes(parts, batch_keys(other_cfg), skips)
    if skipped is not None:
        skipped.extend(skips)
    return parts, other_cfg


def _without_extraction_skips(cfg: Config, records: list[ClipRecord],
                              skips: SkipList) -> list[ClipRecord]:
    """`records` less the clips feature extraction listed as unusable (added to `skips`)."""
    if not needs_media(cfg):
        return records
    cache = FeatureCache.for_config(cfg)
    skipped = cache.skipped_items(get_adapter(cfg).root(cfg))
    kept = []
    for r in records:
        if (str(r.path) in skipped or r.clip_id in skipped) and not cache.has(r):
            skips.add(r.path, "skipped by feature extraction (see the cache's skipped-*.tsv)")
        else:
            kept.append(r)
    return kept


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
        elif key == "text":  # only the frozen sentence encoder gives this input
            detail["text"] = "all-MiniLM-L6-v2 sentence embeddings, pretrained weights loaded (frozen)"
        elif key in ("input_ids", "attention_mask"):
            detail["text"] = "text encoder inside the model, trained on token ids"
        elif key in AUDIO_TRUNK_KEYS:
            detail["audio_trunk"] = "cached Whisper trunk states under the model's tuned top blocks"
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
    return batch_keys(cfg)
