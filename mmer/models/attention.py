"""Attention blocks and the per-modality encoders built from them.

Every encoder turns one modality's cached features into a token sequence
(B, N, d_model) for the fusion module:

- :class:`MapSequenceEncoder` (B, S, C, h, w), e.g. video: per snippet, spatial
  self-attention over the h*w positions, channel attention, pooling over positions;
  then temporal self-attention over the S snippets -> (B, S, d).
- :class:`VectorSequenceEncoder` (B, S, D), e.g. audio segments: temporal
  self-attention over the S segments -> (B, S, d).
- :class:`VectorEncoder` (B, D), e.g. a table of action units or a sentence
  embedding: one token -> (B, 1, d). Self-attention over one token is the identity
  up to its projections, so none is used.
- :class:`LogMelEncoder` (B, S, 1, M, T): a 2D ResNet-18 trained end to end on each
  log-mel segment, then as :class:`VectorSequenceEncoder` -> (B, S, d).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from mmer.errors import BadInput
from mmer.nets.audio_resnet import AudioResNet18


class SelfAttentionBlock(nn.Module):
    """Pre-norm transformer layer: x + MHSA(LN x), then x + FFN(LN x). (B, N, d) -> (B, N, d)."""

    def __init__(self, dim: int, n_heads: int, dropout: float, ff_mult: int = 2) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, n_heads, dropout=dropout, batch_first=True)
        self.norm2 = nn.LayerNorm(dim)
        self.ff = _feed_forward(dim, ff_mult, dropout)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        h = self.norm1(x)
        x = x + self.drop(self.attn(h, h, h, need_weights=False)[0])
        return x + self.ff(self.norm2(x))


class CrossAttentionBlock(nn.Module):
    """Queries attend to a context, with residual paths. (B, Nq, d), (B, Nk, d) -> (B, Nq, d).

    ``add_zero_attn`` gives every query a learned-free "nothing" key, so a query can
    decline the context; with a one-token context (a single visual vector) the
    attention is then a real gate rather than a constant weight of 1.
    """

    def __init__(self, dim: int, n_heads: int, dropout: float, ff_mult: int = 2) -> None:
        super().__init__()
        self.norm_q = nn.LayerNorm(dim)
        self.norm_kv = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, n_heads, dropout=dropout, batch_first=True,
                                          add_zero_attn=True)
        self.norm2 = nn.LayerNorm(dim)
        self.ff = _feed_forward(dim, ff_mult, dropout)
        self.drop = nn.Dropout(dropout)

    def forward(self, query: Tensor, context: Tensor) -> Tensor:
        kv = self.norm_kv(context)
        x = query + self.drop(self.attn(self.norm_q(query), kv, kv, need_weights=False)[0])
        return x + self.ff(self.norm2(x))


class ChannelAttention(nn.Module):
    """Squeeze-and-excitation over channels: (N, P, d) tokens scaled by a (N, 1, d) gate
    computed from their mean over the P positions."""

    def __init__(self, dim: int, reduction: int = 4) -> None:
        super().__init__()
        hidden = max(dim // reduction, 1)
        self.gate = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim), nn.Sigmoid())

    def forward(self, x: Tensor) -> Tensor:
        return x * self.gate(x.mean(dim=1, keepdim=True))


class TemporalEncoder(nn.Module):
    """Learned positions + self-attention over S steps. (B, S, d) -> (B, S, d)."""

    def __init__(self, steps: int, dim: int, n_heads: int, dropout: float) -> None:
        super().__init__()
        self.pos = nn.Parameter(torch.zeros(1, steps, dim))
        nn.init.trunc_normal_(self.pos, std=0.02)
        self.block = SelfAttentionBlock(dim, n_heads, dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.block(x + self.pos[:, : x.shape[1]])


class MapSequenceEncoder(nn.Module):
    """(B, S, C, h, w) feature maps -> (B, S, d) tokens (spatial, channel, temporal attention)."""

    def __init__(self, shape: Sequence[int], dim: int, n_heads: int, dropout: float) -> None:
        super().__init__()
        steps, channels, height, width = shape
        self.proj = nn.Sequential(nn.Linear(channels, dim), nn.LayerNorm(dim))
        self.spatial_pos = nn.Parameter(torch.zeros(1, height * width, dim))
        nn.init.trunc_normal_(self.spatial_pos, std=0.02)
        self.spatial = SelfAttentionBlock(dim, n_heads, dropout)
        self.channel = ChannelAttention(dim)
        self.temporal = TemporalEncoder(steps, dim, n_heads, dropout)

    def forward(self, x: Tensor) -> Tensor:
        b, s, c, h, w = x.shape
        tokens = x.reshape(b * s, c, h * w).transpose(1, 2)      # (B*S, h*w, C)
        tokens = self.proj(tokens) + self.spatial_pos             # (B*S, h*w, d)
        tokens = self.channel(self.spatial(tokens))
        pooled = tokens.mean(dim=1).reshape(b, s, -1)             # (B, S, d)
        return self.temporal(pooled)


class VectorSequenceEncoder(nn.Module):
    """(B, S, D) vectors -> (B, S, d) tokens (projection, temporal attention)."""

    def __init__(self, shape: Sequence[int], dim: int, n_heads: int, dropout: float) -> None:
        super().__init__()
        steps, features = shape
        self.proj = nn.Sequential(nn.Linear(features, dim), nn.LayerNorm(dim))
        self.temporal = TemporalEncoder(steps, dim, n_heads, dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.temporal(self.proj(x))


class VectorEncoder(nn.Module):
    """(B, D) vector -> (B, 1, d): one token through a small MLP."""

    def __init__(self, shape: Sequence[int], dim: int, n_heads: int, dropout: float) -> None:
        super().__init__()
        (features,) = shape
        self.mlp = nn.Sequential(nn.Linear(features, dim), nn.LayerNorm(dim), nn.GELU(),
                                 nn.Dropout(dropout), nn.Linear(dim, dim))

    def forward(self, x: Tensor) -> Tensor:
        return self.mlp(x).unsqueeze(1)


class LogMelEncoder(nn.Module):
    """(B, S, 1, M, T) log-mel segments -> (B, S, d): ResNet-18 per segment, then temporal attention."""

    def __init__(self, shape: Sequence[int], dim: int, n_heads: int, dropout: float, *,
                 width: int) -> None:
        super().__init__()
        steps = shape[0]
        self.cnn = AudioResNet18(width=width, output="pooled")
        self.sequence = VectorSequenceEncoder((steps, self.cnn.out_channels), dim, n_heads, dropout)

    def forward(self, x: Tensor) -> Tensor:
        b, s = x.shape[:2]
        feats = self.cnn(x.reshape(b * s, *x.shape[2:])).reshape(b, s, -1)
        return self.sequence(feats)


def make_encoder(shape: Sequence[int], dim: int, n_heads: int, dropout: float, *,
                 logmel_width: int | None = None) -> nn.Module:
    """The encoder for per-item input `shape` (no batch axis).

    (D,) -> VectorEncoder, (S, D) -> VectorSequenceEncoder, (S, C, h, w) ->
    MapSequenceEncoder; with ``logmel_width`` the shape must be (S, 1, M, T) and a
    LogMelEncoder is built.
    """
    shape = tuple(int(v) for v in shape)
    if logmel_width is not None:
        if len(shape) != 4 or shape[1] != 1:
            raise BadInput(f"log-mel input must be (S, 1, M, T), got {shape}")
        return LogMelEncoder(shape, dim, n_heads, dropout, width=logmel_width)
    builders = {1: VectorEncoder, 2: VectorSequenceEncoder, 4: MapSequenceEncoder}
    if len(shape) not in builders:
        raise BadInput(f"no encoder for input shape {shape}: expected (D,), (S, D) or (S, C, h, w)")
    return builders[len(shape)](shape, dim, n_heads, dropout)


def _feed_forward(dim: int, mult: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(nn.Linear(dim, dim * mult), nn.GELU(), nn.Dropout(dropout),
                         nn.Linear(dim * mult, dim), nn.Dropout(dropout))
