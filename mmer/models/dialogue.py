"""Dialogue layer: a causal GRU or causal self-attention over the utterances of a dialogue.

Input: a window of frozen utterance embeddings (B, W, D), oldest first and the target
utterance in the last row, as :func:`mmer.features.text.with_dialogue_windows` builds it
(``text.context`` past utterances + the target; left-padded with zero rows). Output at
each position depends on that position and earlier ones only, so the target's vector
never sees a later utterance: the model can label a dialogue online.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from mmer.config import ConfigError

DIALOGUE_LAYERS = ("gru", "attention")


def padding_mask(x: Tensor) -> Tensor:
    """(B, W) True where the window row is a real utterance (padding rows are all zero)."""
    return x.abs().sum(dim=-1) > 0


class DialogueEncoder(nn.Module):
    """(B, W, D) window -> (B, 1, dim): the target's token for the fusion.

    Each utterance embedding is projected to `dim`; a causal layer (``kind``: ``gru``, a
    GRU cell stepped over the window that keeps its state across padding, or
    ``attention``, one pre-norm transformer layer with a causal mask and learnt positions
    of the real rows)
    gives every position a context state; the target's token is a linear map of
    [its own projection, its context state], so the utterance itself is never diluted.
    """

    # The input is not standardised by EmotionModel: the zero padding rows must stay zero.
    raw_input = True

    def __init__(self, shape: tuple[int, int], dim: int, n_heads: int, dropout: float, *,
                 kind: str = "gru") -> None:
        super().__init__()
        if kind not in DIALOGUE_LAYERS:
            raise ConfigError(f"unknown text.dialogue {kind!r}; valid: none, {', '.join(DIALOGUE_LAYERS)}")
        width, features = shape
        self.kind = kind
        # Per-channel standardisation fitted on the real rows of the training windows
        # (:meth:`fit`); identity until then. Padding rows stay zero.
        self.register_buffer("mean", torch.zeros(features))
        self.register_buffer("std", torch.ones(features))
        self.proj = nn.Sequential(nn.Linear(features, dim), nn.LayerNorm(dim), nn.GELU(),
                                  nn.Dropout(dropout))
        if kind == "gru":
            self.cell = nn.GRUCell(dim, dim)
        else:
            self.pos = nn.Parameter(torch.zeros(1, width, dim))
            nn.init.trunc_normal_(self.pos, std=0.02)
            self.layer = nn.TransformerEncoderLayer(dim, n_heads, dim_feedforward=2 * dim,
                                                    dropout=dropout, batch_first=True,
                                                    norm_first=True, activation="gelu")
        self.out = nn.Sequential(nn.Linear(2 * dim, dim), nn.Dropout(dropout))
        self.n_heads = n_heads

    @torch.no_grad()
    def fit(self, x: Tensor, eps: float = 1e-5) -> None:
        """Standardisation statistics of the real rows of `x` (N, W, D), the training windows."""
        rows = x.float()[padding_mask(x)]
        self.mean.copy_(rows.mean(dim=0))
        self.std.copy_(rows.std(dim=0).clamp_min(eps))

    def sequence(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """(B, T, D) utterances (+ (B, T) real-row mask) -> (B, T, dim) causal outputs."""
        mask = padding_mask(x) if mask is None else mask.bool()
        u = self.proj((x - self.mean) / self.std) * mask.unsqueeze(-1)
        states = self._gru(u, mask) if self.kind == "gru" else self._attend(u, mask)
        return self.out(torch.cat([u, states], dim=-1))

    def _gru(self, u: Tensor, mask: Tensor) -> Tensor:
        h = u.new_zeros(u.shape[0], u.shape[2])
        states = []
        for t in range(u.shape[1]):
            h = torch.where(mask[:, t:t + 1], self.cell(u[:, t], h), h)
            states.append(h)
        return torch.stack(states, dim=1)

    def _attend(self, u: Tensor, mask: Tensor) -> Tensor:
        b, t, _ = u.shape
        causal = torch.ones(t, t, dtype=torch.bool, device=u.device).tril()
        # allowed[b, i, j]: j is at or before i and real; each row may always see itself,
        # so padding rows attend to something and no row is fully masked.
        allowed = (causal & mask[:, None, :]) | torch.eye(t, dtype=torch.bool, device=u.device)
        blocked = ~allowed.repeat_interleave(self.n_heads, dim=0)
        # Positions count real rows from the window's start, so left padding moves nothing.
        index = (mask.long().cumsum(dim=1) - 1).clamp(0, self.pos.shape[1] - 1)
        return self.layer(u + self.pos[0, index] * mask.unsqueeze(-1), src_mask=blocked)

    def forward(self, x: Tensor) -> Tensor:
        return self.sequence(x)[:, -1:]
