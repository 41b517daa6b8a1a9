"""Cached trunk states of the pretrained text encoder, for fine-tuning its top blocks.

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
from mmer.features.text import TextEmbeddingCache
from mmer.features.tokenizer import WordPieceTokenizer
from mmer.nets.minilm import minilm_dir, minilm_id
from mmer.nets.sentence_net import NetSpec, SentenceNet, load_sentence_net

log = logging.getLogger(__name__)


def trunk_cut(cfg: Config, n_layers: int) -> int:
    """Index of the first tuned block: L - ``finetune.top_blocks`` (0 for ``all``)."""
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
