"""Fusion of per-modality token sequences into what the heads read.

Input of every fusion: ``tokens``, a dict {modality: (B, N_m, d)} in the order of
``model.modalities`` (N_m may differ: 6 audio segments and one visual token).

- ``cross_attention`` (default): each modality's tokens attend to the tokens of all
  the other modalities (residual paths), are mean-pooled, concatenated and mixed by
  an MLP -> (B, d).
- ``concat`` (intermediate fusion): mean-pool each modality, concatenate, MLP -> (B, d).
- ``late``: mean-pool each modality -> (B, M, d); per-modality heads make their own
  predictions, combined with weights by :class:`mmer.models.heads.LateFusionHead`.

With a single modality there is nothing to attend to, so ``cross_attention`` reduces
to ``concat`` (pooling + MLP), and a warning says so.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from mmer.errors import BadInput
from mmer.models.attention import CrossAttentionBlock

log = logging.getLogger(__name__)


class ConcatFusion(nn.Module):
    """Mean-pool each modality, concatenate, MLP: {m: (B, N_m, d)} -> (B, d)."""

    def __init__(self, modalities: Sequence[str], dim: int, dropout: float) -> None:
        super().__init__()
        self.modalities = list(modalities)
        self.out_dim = dim
        self.mlp = _mixer(len(self.modalities) * dim, dim, dropout)

    def forward(self, tokens: dict[str, Tensor]) -> Tensor:
        pooled = [tokens[m].mean(dim=1) for m in self.modalities]
        return self.mlp(torch.cat(pooled, dim=1))


class CrossAttentionFusion(nn.Module):
    """Each modality attends to all others, then pool + concatenate + MLP: -> (B, d)."""

    def __init__(self, modalities: Sequence[str], dim: int, n_heads: int, dropout: float) -> None:
        super().__init__()
        self.modalities = list(modalities)
        self.out_dim = dim
        if len(self.modalities) < 2:
            log.warning("cross_attention fusion with one modality (%s): nothing to attend to, "
                        "it reduces to pooling + MLP (concat)", self.modalities)
        self.cross = nn.ModuleDict({m: CrossAttentionBlock(dim, n_heads, dropout)
                                    for m in self.modalities} if len(self.modalities) > 1 else {})
        self.mlp = _mixer(len(self.modalities) * dim, dim, dropout)

    def forward(self, tokens: dict[str, Tensor]) -> Tensor:
        pooled = []
        for m in self.modalities:
            x = tokens[m]
            if self.cross:
                context = torch.cat([tokens[o] for o in self.modalities if o != m], dim=1)
                x = self.cross[m](x, context)
            pooled.append(x.mean(dim=1))
        return self.mlp(torch.cat(pooled, dim=1))


class LateFusion(nn.Module):
    """Mean-pool each modality and stack: {m: (B, N_m, d)} -> (B, M, d) for per-modality heads."""

    def __init__(self, modalities: Sequence[str], dim: int) -> None:
        super().__init__()
        self.modalities = list(modalities)
        self.out_dim = dim

    def forward(self, tokens: dict[str, Tensor]) -> Tensor:
        return torch.stack([tokens[m].mean(dim=1) for m in self.modalities], dim=1)


FUSIONS = ("cross_attention", "concat", "late")


def make_fusion(name: str, *, modalities: Sequence[str], dim: int, n_heads: int,
                dropout: float) -> nn.Module:
    """Build fusion `name` (one of :data:`FUSIONS`); raises ValueError listing the valid names."""
    if not modalities:
        raise BadInput("fusion needs at least one modality")
    if name == "cross_attention":
        return CrossAttentionFusion(modalities, dim, n_heads, dropout)
    if name == "concat":
        return ConcatFusion(modalities, dim, dropout)
    if name == "late":
        return LateFusion(modalities, dim)
    raise BadInput(f"unknown fusion {name!r}; valid: {', '.join(FUSIONS)}")


def _mixer(in_dim: int, out_dim: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(nn.LayerNorm(in_dim), nn.Linear(in_dim, out_dim), nn.GELU(), nn.Dropout(dropout))
