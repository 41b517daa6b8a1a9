"""Trainable text encoders: token ids -> one sentence vector per utterance.

- :class:`ScratchTextEncoder`: a small transformer trained from scratch, for when no
  pretrained weights are installed; ``text.encoder: minilm`` with ``text.finetune``
  trains the pretrained :class:`mmer.nets.minilm.MiniLMEncoder` instead.
- :class:`TokenTextModel` puts a text encoder in front of the shared
  :class:`mmer.models.build.EmotionModel`: it turns ``input_ids``/``attention_mask`` into
  the ``"text"`` (B, D) input the model reads, which the model projects to
  ``model.d_model``.
"""
from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from mmer.config import Config, ConfigError, TextConfig
from mmer.nets.minilm import MiniLMEncoder, load_minilm_transformer, masked_mean, minilm_dir
from mmer.nets.sentence_net import TopBlocks, load_sentence_net

TEXT_ENCODERS = ("minilm", "mpnet", "scratch")


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
    """Text encoder + EmotionModel: batch with ``input_ids`` (B, T) (or, for the top blocks
    of a cached trunk, `input_key` ``trunk_states`` (B, T, D)) and ``attention_mask`` (B, T)
    (plus any other modality keys) -> the EmotionModel's ModelOutput."""

    def __init__(self, text_encoder: nn.Module, model: nn.Module, input_key: str = "input_ids") -> None:
        super().__init__()
        self.text_encoder = text_encoder
        self.model = model
        self.input_key = input_key

    def forward(self, batch: Mapping[str, Tensor]):
        batch = dict(batch)
        first, mask = batch.pop(self.input_key), batch.pop("attention_mask").bool()
        batch["text"] = self.text_encoder(first.long() if self.input_key == "input_ids" else first, mask)
        return self.model(batch)

    def fit_input_stats(self, inputs: Mapping[str, Tensor]) -> None:
        """Fit the inner model's standardisers on the non-text inputs (the text is learnt)."""
        self.model.fit_input_stats(inputs)


def build_text_encoder(cfg: TextConfig, *, vocab_size: int, pad_id: int,
                       dropout: float) -> nn.Module:
    """The trainable text encoder of ``text.encoder`` (``minilm`` loads the pretrained weights)."""
    if cfg.encoder in ("minilm", "mpnet"):
        return MiniLMEncoder(load_minilm_transformer(minilm_dir(cfg)))
    if cfg.encoder == "scratch":
        return ScratchTextEncoder(vocab_size, dim=cfg.scratch_dim, n_layers=cfg.scratch_layers,
                                  n_heads=cfg.scratch_heads, max_tokens=cfg.max_tokens,
                                  dropout=dropout, pad_id=pad_id)
    raise ConfigError(f"unknown text.encoder {cfg.encoder!r}; valid: {', '.join(TEXT_ENCODERS)}")


def build_top_blocks(cfg: Config) -> TopBlocks:
    """The trainable top ``finetune.top_blocks`` blocks of the pretrained text encoder (its
    weights as loaded; the frozen trunk below them is cached, :mod:`mmer.features.trunk`)."""
    net = load_sentence_net(minilm_dir(cfg.text, cfg.backbone.weights_dir))
    k = cfg.finetune.top_blocks
    return TopBlocks(net, net.spec.n_layers if k == "all" else int(k))
