"""Cached trunk states of a pretrained encoder (text or Whisper audio), for fine-tuning
its top blocks.

With ``finetune.top_blocks: K`` the frozen blocks 0 .. L-K-1 of MiniLM / MPNet
(:mod:`mmer.nets.sentence_net`) run once per distinct text; the (T, D) hidden states
entering block L-K (real tokens only) are kept in one file per encoder, cut and
truncation length, ``<features.cache_dir>/text/trunk-<model id>-b<cut>-t<max_tokens>.pt``::

    {"model_id": str, "max_tokens": int, "cut": int,
     "keys": [sha1 of the text, ...], "lengths": int Tensor (N,),
     "states": fp16 Tensor (sum of lengths, D)}

It is a :class:`mmer.features.text.TextEmbeddingCache` (same keys, same atomic rewrite of
the whole file after the missing texts are computed) with variable-length rows. The model
id is the weight file's hash, so other weights never read these states; the text string
itself is the key, so speaker names or context strings are cached as the texts they are.
Each training epoch then runs only the K top blocks on these states.

Whisper (``backbone.audio`` whisper_tiny | whisper_base, a model reading audio and no
text): the tuned blocks are the K ending at the highest block of ``backbone.whisper_layers``
(h), so the cut is h - K. The states entering block h - K over the WHOLE window (the
frozen encoder attends over the padding too, so only the whole window keeps the tuned path
equal to the full forward) are kept, with the count covering audio, in
``<features.cache_dir>/audio/trunk-<whisper id>-b<cut>-f<whisper_frames>-<window hash>.pt``
(:class:`WhisperTrunkCache`: the same file layout, one row per clip keyed by its path,
size and mtime; the window hash covers the decode and trim settings). Read blocks at or
below the cut are frozen: their pooled features are the cached ``"audio"`` entry's.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from tqdm import tqdm

from mmer.config import Config
from mmer.datasets import get_adapter
from mmer.datasets.records import ClipRecord
from mmer.features.backbones import build_whisper
from mmer.features.cache import clip_identity, weights_state
from mmer.features.clips import prepare_clip
from mmer.features.text import TextEmbeddingCache, text_key
from mmer.features.tokenizer import WordPieceTokenizer
from mmer.nets.assets import content_hash
from mmer.nets.minilm import minilm_dir, minilm_id
from mmer.nets.pretrained import weight_file
from mmer.nets.sentence_net import NetSpec, SentenceNet, load_sentence_net
from mmer.nets.whisper import WhisperEncoder

log = logging.getLogger(__name__)


def trunk_cut(cfg: Config, n_layers: int) -> int:
    """Index of the first tuned block: L - ``finetune.top_blocks`` (0 for ``all``); for
    Whisper, L is the highest block the model reads."""
    k = cfg.finetune.top_blocks
    return 0 if k == "all" else n_layers - int(k)


class TrunkStateCache(TextEmbeddingCache):
    """The trunk states of one encoder (`model_id`), `cut` and `max_tokens` in one file."""

    def __init__(self, path: str | Path, model_id: str, max_tokens: int, cut: int) -> None:
        super().__init__(path, model_id, max_tokens)
        self.cut = cut

    @classmethod
    def for_model(cls, cache_dir: str | Path, model_id: str, max_tokens: int, cut: int) -> TrunkStateCache:
        name = f"trunk-{model_id}-b{cut}-t{max_tokens}.pt"
        return cls(Path(cache_dir) / "text" / name, model_id, max_tokens, cut)

    def header(self) -> dict[str, object]:
        return {**super().header(), "cut": self.cut}

    def pack(self, rows: list[Tensor]) -> dict[str, Tensor]:
        return {"lengths": torch.tensor([len(r) for r in rows]),
                "states": torch.cat(rows).half()}

    def unpack(self, blob: dict) -> list[Tensor]:
        return list(torch.split(blob["states"], blob["lengths"].tolist()))


def compute_trunk_states(net: SentenceNet, tokenizer: WordPieceTokenizer, texts: list[str], *,
                         cut: int, max_tokens: int, batch_size: int) -> list[Tensor]:
    """fp16 (T_i, D) states entering block `cut` of each text's real tokens."""
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # little padding per batch
    rows: dict[int, Tensor] = {}
    with torch.inference_mode():
        for start in tqdm(range(0, len(order), batch_size), desc="trunk states",
                          disable=len(order) <= 4 * batch_size):
            idx = order[start:start + batch_size]
            batch = tokenizer.encode([texts[i] for i in idx], max_tokens)
            states = net.states(batch.ids, batch.mask, cut).half()
            for row, i in enumerate(idx):
                rows[i] = states[row, : int(batch.mask[row].sum())].clone()
    return [rows[i] for i in range(len(texts))]


def trunk_states(texts: Sequence[str], cfg: Config) -> tuple[list[Tensor], NetSpec]:
    """fp16 (T_i, D) cached trunk states of `texts` (computed for the texts not cached
    yet) and the encoder's spec. The encoder is loaded only when some text is missing."""
    path = minilm_dir(cfg.text, cfg.backbone.weights_dir)
    spec = NetSpec.from_config(path)
    cut = trunk_cut(cfg, spec.n_layers)
    cache = TrunkStateCache.for_model(cfg.features.cache_dir, minilm_id(path), cfg.text.max_tokens, cut)

    def compute(batch: list[str]) -> list[Tensor]:
        net = load_sentence_net(path)
        return compute_trunk_states(net, WordPieceTokenizer(path), batch, cut=cut,
                                    max_tokens=cfg.text.max_tokens,
                                    batch_size=cfg.text.embed_batch_size)

    return cache.lookup(list(texts), compute), spec


def with_trunk_states(entries: Sequence[Mapping[str, Any]], cfg: Config,
                      texts: Sequence[str]) -> list[dict[str, Any]]:
    """Copies of `entries` with ``trunk_states`` fp16 (max_tokens, D), zero past the text,
    and ``attention_mask`` bool (max_tokens,) (every part padded alike, so they stack)."""
    if not entries:
        return []
    states, spec = trunk_states(texts, cfg)
    width = cfg.text.max_tokens
    out = []
    for entry, s in zip(entries, states, strict=True):
        padded = torch.zeros(width, spec.hidden, dtype=torch.float16)
        padded[: len(s)] = s
        mask = torch.arange(width) < len(s)
        out.append(dict(entry, trunk_states=padded, attention_mask=mask))
    return out


class WhisperTrunkCache(TrunkStateCache):
    """Whisper trunk states, rows ((T, C) fp16 window states, states covering audio), of
    one encoder (`model_id`), cut, window length (`frames`) and decode settings (`window`)."""

    def __init__(self, path: str | Path, model_id: str, frames: int, cut: int,
                 window: dict[str, Any]) -> None:
        super().__init__(path, model_id, frames, cut)
        self.window = window

    @classmethod
    def for_config(cls, cfg: Config, cut: int) -> WhisperTrunkCache:
        bb = cfg.backbone
        # Random weights (pretrained none, or no file) as the feature cache decides them.
        loaded = weights_state(cfg)["audio"] != "random"
        model_id = f"{bb.audio}-{content_hash(weight_file(bb, 'audio'))[:16]}" if loaded else f"{bb.audio}-random"
        window = {"sample_rate": cfg.audio.sample_rate, "trim_db": cfg.audio.trim_db,
                  "trim_margin_ms": cfg.audio.trim_margin_ms,
                  "max_seconds": get_adapter(cfg).max_seconds(cfg)}
        tag = text_key(repr(sorted(window.items())))[:8]
        name = f"trunk-{model_id}-b{cut}-f{bb.whisper_frames}-{tag}.pt"
        return cls(Path(cfg.features.cache_dir) / "audio" / name, model_id, bb.whisper_frames, cut, window)

    def header(self) -> dict[str, object]:
        return {**super().header(), "window": self.window}

    def pack(self, rows: list[tuple[Tensor, int]]) -> dict[str, Tensor]:
        return {"valid": torch.tensor([v for _, v in rows]),
                "states": torch.stack([s for s, _ in rows]).half()}

    def unpack(self, blob: dict) -> list[tuple[Tensor, int]]:
        return list(zip(blob["states"], blob["valid"].tolist(), strict=True))


def whisper_cut(cfg: Config) -> int:
    """The Whisper block index the tuned blocks start at (:func:`trunk_cut` of the highest
    read block)."""
    return trunk_cut(cfg, max(cfg.backbone.whisper_layers))


def compute_whisper_states(encoder: WhisperEncoder, records: Sequence[ClipRecord], cfg: Config,
                           cut: int) -> list[tuple[Tensor, int]]:
    """Each clip's ((T, C) fp16 states entering block `cut` over its whole Whisper window,
    states covering its audio), decoded as extraction decodes it."""
    rows = []
    step = max(1, cfg.features.batch_size // max(1, cfg.audio.n_segments))
    with torch.inference_mode():
        for start in tqdm(range(0, len(records), step), desc="whisper trunk states",
                          disable=len(records) <= 4 * step):
            items = [prepare_clip(r, cfg, video=False, audio=True) for r in records[start:start + step]]
            mel = torch.stack([it["whisper_mel"] for it in items])
            states = encoder.states(mel, cut).half()
            rows += [(st.clone(), int(it["whisper_valid"])) for st, it in zip(states, items, strict=True)]
    return rows


def with_whisper_trunk(entries: Sequence[Mapping[str, Any]], records: Sequence[ClipRecord],
                       cfg: Config) -> list[dict[str, Any]]:
    """Copies of `entries` (one per record of `records`) with ``whisper_states`` fp16
    (T, C) and ``whisper_valid`` (int64 scalar), from the cache (computed for the clips
    not cached yet; the encoder is built only then)."""
    if not entries:
        return []
    cut = whisper_cut(cfg)
    cache = WhisperTrunkCache.for_config(cfg, cut)
    by_id = {clip_identity(r): r for r in records}

    def compute(ids: list[str]) -> list[tuple[Tensor, int]]:
        encoder, _ = build_whisper(cfg.backbone)
        return compute_whisper_states(encoder, [by_id[i] for i in ids], cfg, cut)

    rows = cache.lookup([clip_identity(r) for r in records], compute)
    return [dict(e, whisper_states=s, whisper_valid=torch.tensor(v))
            for e, (s, v) in zip(entries, rows, strict=True)]
