"""The one way records become model inputs, used by training, evaluation and predict alike.

:func:`model_entries` turns records into the entries the model reads, in this order:

1. the clip's feature-cache entry (:mod:`mmer.features.cache`), or, for a model that
   reads no media (text-only MELD), the record's own fields;
2. the text: the frozen MiniLM sentence embedding (``"text"``), or token ids and mask
   (``"input_ids"``, ``"attention_mask"``) for a trained text encoder, by the tokenizer
   fitted on the training texts, or the cached states of the frozen lower blocks
   (``"trunk_states"``, :mod:`mmer.features.trunk`) with ``finetune.top_blocks`` (for a
   Whisper audio trunk instead: the clip's cached ``"whisper_states"``). With ``text.context`` > 0 the text is the utterance's
   context string (:func:`input_texts`: the target marked, then the preceding utterances
   of its dialogue with speaker names), or, with ``text.dialogue``, a (context + 1, D)
   window of per-utterance embeddings for the dialogue layer;
3. the precomputed visual table row (``"visual"``) when the model reads one;
4. per-speaker standardisation (``model.speaker_norm``).

An entry is the dict of docs/design.md; :func:`mmer.inputs.datasets.FeatureDataset`
stacks the keys of :func:`mmer.config.keys.batch_keys` into tensors. :func:`same_shapes`
leaves out the entries whose inputs are shaped unlike most training entries (training and
evaluation alike).
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from mmer.config import Config
from mmer.config.keys import (
    AUDIO_TRUNK_KEYS,
    TOKEN_KEYS,
    TRUNK_KEYS,
    batch_keys,
    input_keys,
    needs_media,
    uses_tokens,
    uses_trunk,
)
from mmer.datasets import get_adapter
from mmer.datasets.records import ClipRecord
from mmer.datasets.visual_table import visual_features, with_visual
from mmer.errors import BadInput
from mmer.features.cache import FeatureCache, record_entry
from mmer.features.context import context_strings
from mmer.features.text import with_dialogue_windows, with_text
from mmer.features.tokenizer import Tokenizer
from mmer.features.trunk import with_trunk_states, with_whisper_trunk
from mmer.inputs.speaker_norm import speaker_normalise
from mmer.io import SkipList


class MissingFeaturesError(BadInput):
    """Clips to be used that have no cached features (or no visual-table row)."""


def base_entries(cfg: Config, records: Sequence[ClipRecord], what: str) -> list[dict[str, Any]]:
    """Cache entries of `records` in order (record fields alone when the model reads no media).

    Raises :class:`MissingFeaturesError` naming the cache and the first clip without one.
    """
    if not needs_media(cfg):
        return [record_entry(r) for r in records]
    cache = FeatureCache.for_config(cfg)
    entries, missing = cache.load_all(records)
    if missing:
        raise MissingFeaturesError(
            f"{len(missing)} of {len(records)} {what} clips have no cached features in {cache.dir} "
            f"(first: {missing[0].clip_id}); run: python -m mmer.extract with the run's config "
            f"(or evaluate.py --extract)")
    return entries


def with_tokens(entries: Sequence[Mapping[str, Any]], tokenizer: Tokenizer,
                max_tokens: int, texts: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Copies of `entries` with ``input_ids`` and ``attention_mask`` (max_tokens,) of `texts`
    (default: their own text; the builder passes context strings)."""
    if not entries:
        return []
    if texts is None:
        texts = [str(e["extra"]["text"]) for e in entries]
    batch = tokenizer.encode(list(texts), max_tokens)
    # Every part padded to max_tokens, so train and dev ids stack alike (a part whose
    # longest text is shorter would otherwise differ in shape); batches are cut back to
    # their longest text by trim_collate.
    pad = max_tokens - batch.ids.shape[1]
    ids = torch.nn.functional.pad(batch.ids, (0, pad), value=tokenizer.pad_id)
    mask = torch.nn.functional.pad(batch.mask, (0, pad), value=False)
    return [dict(e, input_ids=i, attention_mask=m)
            for e, i, m in zip(entries, ids, mask, strict=True)]


def visual_features_of(cfg: Config, records: Sequence[ClipRecord], *, list_unused: bool = True
                       ) -> tuple[dict[str, torch.Tensor], SkipList]:
    """:func:`mmer.datasets.visual_table.visual_features` of ``cfg.visual``, joined by the
    corpus adapter's ``visual_join_key``."""
    return visual_features(cfg.visual, records, join=get_adapter(cfg).visual_join_key,
                           list_unused=list_unused)


def visual_rows(cfg: Config, records: Sequence[ClipRecord], what: str) -> dict[str, torch.Tensor]:
    """{clip id: visual-table row} of `records`. For clips of other data (`what` is
    ``"evaluation"``) rows of unknown clips are listed in the log; for a run's own clips
    a missing row is an error."""
    other = what == "evaluation"
    rows, _ = visual_features_of(cfg, records, list_unused=other)
    lacking = [r.clip_id for r in records if r.clip_id not in rows]
    if lacking and not other:
        raise MissingFeaturesError(f"{len(lacking)} {what} clips have no row in the visual table "
                                   f"{cfg.visual.table} (first: {lacking[0]})")
    return rows


def model_entries(cfg: Config, records: Sequence[ClipRecord], what: str, *,
                  tokenizer: Tokenizer | None = None,
                  visual: Mapping[str, torch.Tensor] | None = None) -> list[dict[str, Any]]:
    """The model's input entries of `records` (steps 1-4 of the module docstring).

    `what` names the clips in messages (``"train"``, ``"test"``, ``"evaluation"``: clips of
    another data root, whose missing visual rows leave them out instead of failing).
    `tokenizer`: required when the text encoder is trained. `visual`: rows already read.
    """
    entries = base_entries(cfg, records, what)
    return finish_entries(cfg, entries, records, what, tokenizer=tokenizer, visual=visual)


def finish_entries(cfg: Config, entries: Sequence[dict[str, Any]], records: Sequence[ClipRecord],
                   what: str, *, tokenizer: Tokenizer | None = None,
                   visual: Mapping[str, torch.Tensor] | None = None) -> list[dict[str, Any]]:
    """Steps 2-4 on base entries (cache entries, or entries a clip was just featurised into)."""
    keys = batch_keys(cfg)
    entries = list(entries)
    if "text" in keys and cfg.text.dialogue != "none":
        entries = with_dialogue_windows(entries, cfg)
    elif "text" in keys:
        entries = with_text(entries, cfg, input_texts(cfg, entries))
    if TRUNK_KEYS[0] in keys:
        entries = with_trunk_states(entries, cfg, input_texts(cfg, entries))
    if AUDIO_TRUNK_KEYS[0] in keys:
        entries = with_whisper_trunk(entries, records, cfg)
    if TOKEN_KEYS[0] in keys:
        if tokenizer is None:
            raise BadInput("a trained text encoder needs the run's tokenizer (checkpoint 'tokenizer')")
        entries = with_tokens(entries, tokenizer, cfg.text.max_tokens, input_texts(cfg, entries))
    if "visual" in keys:
        rows = visual if visual is not None else visual_rows(cfg, records, what)
        entries = with_visual([e for e in entries if str(e["clip_id"]) in rows], rows)
    if cfg.model.speaker_norm and entries:  # each side's speakers are its own
        entries = speaker_normalise(entries, [k for k in keys if k not in TOKEN_KEYS + TRUNK_KEYS + AUDIO_TRUNK_KEYS],
                                    min_clips=cfg.model.speaker_norm_min_clips,
                                    refuse_few=cfg.model.speaker_norm_few_clips == "refuse")
    return entries


def input_texts(cfg: Config, entries: Sequence[Mapping[str, Any]]) -> list[str]:
    """The text each entry's utterance is read as: its own text, or with ``text.context`` > 0
    the context string of :func:`mmer.features.context.context_strings` (the target marked,
    then the past utterances of its dialogue among `entries`, most recent first)."""
    if cfg.text.context and entries and "utterance_id" not in entries[0].get("extra", {}):
        raise BadInput(f"text.context needs dialogue and utterance ids; dataset {cfg.dataset} "
                       "has none")
    return context_strings(entries, cfg.text.context, speaker_names=cfg.text.speaker_names)


def text_mode(cfg: Config) -> str | None:
    """How the model reads text: ``"embedding"`` (frozen MiniLM), ``"tokens"``, ``"trunk"``
    (cached trunk states, ``finetune.top_blocks``), or None."""
    if "text" not in input_keys(cfg.model).values():
        return None
    if uses_trunk(cfg):
        return "trunk"
    return "tokens" if uses_tokens(cfg.text) else "embedding"


def same_shapes(entries: dict[str, list[dict]], keys: list[str],
                 skips: SkipList) -> dict[str, list[dict]]:
    """Each part's entries less those whose inputs differ in shape from most training
    entries (e.g. a long clip's log-mel segments without ``audio.clip_seconds``), listed."""
    train = entries.get("train") or []
    want = {}
    for key in keys:
        shapes = Counter(tuple(e[key].shape) for e in train if hasattr(e.get(key), "shape"))
        if shapes:
            want[key] = shapes.most_common(1)[0][0]
    if not want:
        return entries
    out = {}
    for part, part_entries in entries.items():
        out[part] = []
        for e in part_entries:
            odd = [k for k, shape in want.items() if hasattr(e.get(k), "shape") and tuple(e[k].shape) != shape]
            if odd:
                hint = "; set audio.clip_seconds to give every clip one length" if "logmel" in odd else ""
                skips.add(e["clip_id"], f"{odd[0]!r} has shape {tuple(e[odd[0]].shape)}, most training "
                                        f"clips {want[odd[0]]}{hint}")
            else:
                out[part].append(e)
    return out
