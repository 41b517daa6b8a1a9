"""Sentence embeddings of utterances, computed once per model and cached on disk.

The frozen MiniLM path embeds every distinct utterance once. One file per model and
truncation length, ``<features.cache_dir>/text/<model id>-t<max_tokens>.pt``, holds::

    {"model_id": str, "max_tokens": int,
     "keys": [sha1 of the utterance's UTF-8 text, ...],
     "embeddings": float32 Tensor (N, D)}

The model id is a hash of the weight file (:func:`mmer.models.text.minilm_id`), so
other weights never read these vectors. Only the texts missing from the file are
embedded; the file is then rewritten atomically, so a killed run loses nothing it
had finished before.
"""
from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from mmer.config import Config, ConfigError
from mmer.errors import BadInput
from mmer.features.context import context_windows, spoken
from mmer.io import atomic_save
from mmer.nets.minilm import load_sentence_model, minilm_dirs, minilm_id

log = logging.getLogger(__name__)

EmbedFn = Callable[[list[str]], "np.ndarray | Tensor"]


def text_key(text: str) -> str:
    """Cache key of one utterance: the SHA-1 of its exact UTF-8 text."""
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


class TextEmbeddingCache:
    """The embeddings of one model (`model_id`, `max_tokens`) in one file at `path`."""

    def __init__(self, path: str | Path, model_id: str, max_tokens: int) -> None:
        self.path = Path(path)
        self.model_id = model_id
        self.max_tokens = max_tokens

    @classmethod
    def in_dir(cls, cache_dir: str | Path, model_id: str, max_tokens: int) -> TextEmbeddingCache:
        return cls(Path(cache_dir) / "text" / f"{model_id}-t{max_tokens}.pt", model_id, max_tokens)

    def load(self) -> dict[str, Tensor]:
        """{text key: (D,) float32} of the file; {} when absent or written for another model."""
        if not self.path.is_file():
            return {}
        try:
            blob = torch.load(self.path, map_location="cpu", weights_only=True)
        except Exception as err:  # a damaged file fails in many ways; recompute rather than stop
            log.warning("%s: unreadable text embedding cache (%s); recomputing", self.path, err)
            return {}
        header = self.header()
        if any(blob.get(k) != v for k, v in header.items()):
            log.warning("%s: written for %s, not %s; ignoring it", self.path,
                        {k: blob.get(k) for k in header}, header)
            return {}
        return dict(zip(blob["keys"], self.unpack(blob), strict=True))

    def header(self) -> dict[str, object]:
        """What the file must have been written for (else it is ignored)."""
        return {"model_id": self.model_id, "max_tokens": self.max_tokens}

    def pack(self, rows: list[Tensor]) -> dict[str, Tensor]:
        return {"embeddings": torch.stack(rows).float()}

    def unpack(self, blob: dict) -> list[Tensor]:
        return list(blob["embeddings"].float())

    def save(self, table: dict[str, Tensor]) -> None:
        keys = sorted(table)
        blob = {**self.header(), "keys": keys, **self.pack([table[k] for k in keys])}
        atomic_save(self.path, lambda fh: torch.save(blob, fh))

    def lookup(self, texts: Sequence[str], compute: Callable[[list[str]], list[Tensor]]) -> list[Tensor]:
        """The cached tensor of each of `texts`; `compute` runs once, on the distinct texts
        the file lacks ((M,) texts -> M tensors), and the file is then updated."""
        keys = [text_key(t) for t in texts]
        table = self.load()
        todo: dict[str, str] = {}
        for key, text in zip(keys, texts, strict=True):
            if key not in table:
                todo.setdefault(key, text)
        log.info("%s: %d texts, %d distinct new ones to compute (%s)", type(self).__name__,
                 len(texts), len(todo), self.path)
        if todo:
            table.update(zip(todo, compute(list(todo.values())), strict=True))
            self.save(table)
        return [table[k] for k in keys]

    def embed(self, texts: Sequence[str], compute: EmbedFn) -> Tensor:
        """(N, D) float32 embeddings of `texts` (:meth:`lookup`; `compute`: (M,) texts -> (M, D))."""
        def rows(batch: list[str]) -> list[Tensor]:
            vectors = torch.as_tensor(np.asarray(compute(batch), dtype=np.float32))
            if vectors.ndim != 2 or len(vectors) != len(batch):
                raise BadInput(f"text embedder returned shape {tuple(vectors.shape)} for "
                               f"{len(batch)} texts; expected ({len(batch)}, D)")
            return list(vectors)

        found = self.lookup(texts, rows)
        return torch.stack(found) if found else torch.zeros(0, 0)


def sentence_embeddings(texts: Sequence[str], cfg: Config, *, device: str = "cpu") -> Tensor:
    """(N, D) L2-normalised sentence embeddings of `texts` (D = 384 for MiniLM, 768 for
    MPNet), through the cache of ``cfg``; when ``text.model_dir`` lists several folders,
    each folder's embeddings (each through its own cache file), joined in the listed order.

    A model is loaded only when some text is not cached yet. Raises
    :class:`mmer.nets.minilm.TextEncoderUnavailable` when the weights are not installed.
    """
    parts = []
    for path in minilm_dirs(cfg.text, cfg.backbone.weights_dir):
        cache = TextEmbeddingCache.in_dir(cfg.features.cache_dir, minilm_id(path), cfg.text.max_tokens)

        def compute(batch: list[str], path: Path = path) -> np.ndarray:
            model = load_sentence_model(cfg.text, path, device=device)
            with torch.inference_mode():
                return model.encode(batch, batch_size=cfg.text.embed_batch_size,
                                    convert_to_numpy=True, normalize_embeddings=True,
                                    show_progress_bar=len(batch) > 256)

        parts.append(cache.embed(texts, compute))
    return torch.cat(parts, dim=1)


def with_text(entries: Sequence[dict], cfg: Config, texts: Sequence[str] | None = None) -> list[dict]:
    """`entries` (cache or record entries of MELD clips) with ``"text"``: the (384,) frozen
    MiniLM embedding of `texts` (default: each ``entry["extra"]["text"]``; the input builder
    passes context strings, :mod:`mmer.features.context`), the model's text input.

    Only the frozen encoder gives fixed per-clip vectors; a trained one (``text.encoder:
    scratch`` or ``text.finetune``) reads token ids inside the model instead.
    """
    _check_frozen(cfg)
    if not entries:
        return []
    if texts is None:
        texts = [str(e["extra"]["text"]) for e in entries]
    vectors = sentence_embeddings(list(texts), cfg)
    return [dict(e, text=v) for e, v in zip(entries, vectors, strict=True)]


def with_dialogue_windows(entries: Sequence[dict], cfg: Config) -> list[dict]:
    """`entries` with ``"text"`` (W, D), W = ``text.context`` + 1 (D: the width of
    :func:`sentence_embeddings`, summed over the ``text.model_dir`` folders): the frozen embeddings of
    ``"Speaker: text"`` of the `text.context` preceding utterances of the dialogue, oldest
    first, then the target's in the last row. Dialogues with less past are left-padded with
    zero rows (real embeddings have unit norm, so a zero row marks padding). With
    ``text.context_mode: dialogue``, W = 2 n + 1: the target in row n, then the n following
    utterances (right-padded with zero rows at the dialogue's end)."""
    _check_frozen(cfg)
    if not entries:
        return []
    vectors = sentence_embeddings([spoken(e) for e in entries], cfg)
    n = cfg.text.context
    width = 2 * n + 1 if cfg.text.context_mode == "dialogue" else n + 1
    out = []
    for i, (entry, window) in enumerate(
            zip(entries, context_windows(entries, n, cfg.text.context_mode), strict=True)):
        start = n - window.index(i)  # the target sits at row n
        rows = torch.zeros(width, vectors.shape[1])
        rows[start:start + len(window)] = vectors[window]
        out.append(dict(entry, text=rows))
    return out


def _check_frozen(cfg: Config) -> None:
    if cfg.text.encoder == "scratch" or cfg.text.finetune:
        raise ConfigError("a text input from the feature entries is the frozen MiniLM / MPNet "
                          "embedding (text.encoder: minilm or mpnet, text.finetune: false); a trained text encoder "
                          "runs text-only: model.modalities: [text]")
