"""Offline tokenizers for the text branch: strings -> padded token ids and a mask.

Two kinds, one interface (``encode``, ``vocab_size``, ``pad_id``, ``state``):

- :class:`WordPieceTokenizer`: the WordPiece files shipped with the MiniLM weights
  package (loaded by transformers from the local folder, never from a hub).
- :class:`WordTokenizer`: a lower-cased word/punctuation vocabulary built from the
  training texts; needs nothing installed. Punctuation stays a token of its own
  because ``!`` and ``?`` carry emotion in dialogue.

``state()`` is a plain dict (kind + vocabulary or folder) that a checkpoint stores,
and :func:`tokenizer_from_state` rebuilds the same tokenizer from it.
"""
from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import Tensor

from mmer.config import ConfigError, TextConfig
from mmer.errors import BadInput
from mmer.nets.minilm import TextEncoderUnavailable, minilm_dir

log = logging.getLogger(__name__)

PAD, UNK = "[PAD]", "[UNK]"
TOKENIZERS = ("auto", "minilm", "word")
# Words (with an English contraction tail) or any single non-space, non-word character.
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?|[^\sa-z0-9]")
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "`": "'"})


@dataclass
class TokenBatch:
    """ids: int64 (N, T) padded with the pad id; mask: bool (N, T), True on real tokens."""

    ids: Tensor
    mask: Tensor


class Tokenizer(Protocol):
    vocab_size: int
    pad_id: int

    def encode(self, texts: Sequence[str], max_tokens: int) -> TokenBatch: ...

    def state(self) -> dict[str, Any]: ...


def words(text: str) -> list[str]:
    """``"I’m SO mad!!"`` -> ``["i'm", "so", "mad", "!", "!"]``."""
    return _WORD.findall(text.translate(_APOSTROPHES).lower())


class WordTokenizer:
    """Word-level vocabulary: id 0 ``[PAD]``, id 1 ``[UNK]``, then words by falling count."""

    def __init__(self, vocab: Sequence[str]) -> None:
        if list(vocab[:2]) != [PAD, UNK]:
            raise BadInput(f"word vocabulary must start with {PAD}, {UNK}; got {list(vocab[:2])}")
        self.vocab = list(vocab)
        self.index = {w: i for i, w in enumerate(self.vocab)}
        self.vocab_size = len(self.vocab)
        self.pad_id, self.unk_id = 0, 1

    @classmethod
    def build(cls, texts: Iterable[str], min_count: int = 2) -> WordTokenizer:
        """Vocabulary of the words seen at least `min_count` times (ties in alphabetical order)."""
        counts = Counter(w for text in texts for w in words(text))
        kept = sorted((w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], w))
        log.info("word vocabulary: %d of %d distinct words (min count %d)", len(kept), len(counts),
                 min_count)
        return cls([PAD, UNK, *kept])

    def encode(self, texts: Sequence[str], max_tokens: int) -> TokenBatch:
        """Pad to the longest text (at most `max_tokens`); an empty text becomes one ``[UNK]``."""
        rows = [[self.index.get(w, self.unk_id) for w in words(t)][:max_tokens] or [self.unk_id]
                for t in texts]
        width = max((len(r) for r in rows), default=1)
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        for i, row in enumerate(rows):
            ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
        return TokenBatch(ids, ids != self.pad_id)

    def state(self) -> dict[str, Any]:
        return {"kind": "word", "vocab": list(self.vocab)}


class WordPieceTokenizer:
    """The WordPiece tokenizer of a local transformers model folder (e.g. MiniLM's)."""

    def __init__(self, model_dir: str | Path) -> None:
        from transformers import AutoTokenizer
        self.model_dir = str(model_dir)
        self.hf = AutoTokenizer.from_pretrained(self.model_dir, local_files_only=True)
        self.vocab_size = int(self.hf.vocab_size)
        self.pad_id = int(self.hf.pad_token_id)

    def encode(self, texts: Sequence[str], max_tokens: int) -> TokenBatch:
        """``[CLS] ... [SEP]`` ids padded to the longest text, truncated to `max_tokens`."""
        out = self.hf(list(texts), padding=True, truncation=True, max_length=max_tokens,
                      return_tensors="pt")
        return TokenBatch(out["input_ids"].long(), out["attention_mask"].bool())

    def state(self) -> dict[str, Any]:
        return {"kind": "wordpiece", "model_dir": self.model_dir}


def make_tokenizer(cfg: TextConfig, train_texts: Iterable[str]) -> Tokenizer:
    """The tokenizer of ``cfg`` (``text.tokenizer``, or MiniLM's whenever ``encoder`` is minilm).

    ``auto`` uses the MiniLM WordPiece files when the package (or ``text.model_dir``) is
    there and falls back to a word vocabulary of `train_texts` otherwise.
    """
    if cfg.tokenizer not in TOKENIZERS:
        raise ConfigError(f"unknown text.tokenizer {cfg.tokenizer!r}; valid: {', '.join(TOKENIZERS)}")
    if cfg.encoder == "minilm" or cfg.tokenizer == "minilm":
        return WordPieceTokenizer(minilm_dir(cfg))
    if cfg.tokenizer == "auto":
        try:
            return WordPieceTokenizer(minilm_dir(cfg))
        except TextEncoderUnavailable as err:
            log.info("no MiniLM tokenizer files (%s); building a word vocabulary instead", err)
    return WordTokenizer.build(train_texts, cfg.min_word_count)


def tokenizer_from_state(state: dict[str, Any]) -> Tokenizer:
    """Rebuild a tokenizer from its :meth:`state` dict (as a checkpoint stores it)."""
    if state.get("kind") == "word":
        return WordTokenizer(state["vocab"])
    if state.get("kind") == "wordpiece":
        return WordPieceTokenizer(state["model_dir"])
    raise BadInput(f"unknown tokenizer state kind {state.get('kind')!r}; valid: word, wordpiece")
