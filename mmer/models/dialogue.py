"""Dialogue layer: a GRU or self-attention over the utterances of a dialogue.

Input: a window of frozen utterance embeddings (B, W, D), oldest first, as
:func:`mmer.features.text.with_dialogue_windows` builds it. Online (``text.context_mode:
past``): ``text.context`` past utterances + the target in the last row, left-padded with
zero rows; the layer is causal (output at each position depends on that position and
earlier ones only), so the target's vector never sees a later utterance. Offline
(``dialogue``): W = 2 n + 1 with the target in row n and the n following utterances
after it; the GRU runs both ways and attention has no causal mask.
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
                 kind: str = "gru", offline: bool = False) -> None:
        super().__init__()
        if kind not in DIALOGUE_LAYERS:
            raise ConfigError(f"unknown text.dialogue {kind!r}; valid: none, {', '.join(DIALOGUE_LAYERS)}")
        width, features = shape
        self.kind, self.offline = kind, offline
        # Per-channel standardisation fitted on the real rows of the training windows
        # (:meth:`fit`); identity until then. Padding rows stay zero.
        self.register_buffer("mean", torch.zeros(features))
        self.register_buffer("std", torch.ones(features))
        self.proj = nn.Sequential(nn.Linear(features, dim), nn.LayerNorm(dim), nn.GELU(),
                                  nn.Dropout(dropout))
        if kind == "gru":
            self.cell = nn.GRUCell(dim, dim)
            if offline:
                self.cell_back = nn.GRUCell(dim, dim)
        else:
            self.pos = nn.Parameter(torch.zeros(1, width, dim))
            nn.init.trunc_normal_(self.pos, std=0.02)
            self.layer = nn.TransformerEncoderLayer(dim, n_heads, dim_feedforward=2 * dim,
                                                    dropout=dropout, batch_first=True,
                                                    norm_first=True, activation="gelu")
        states = 2 if offline and kind == "gru" else 1
        self.out = nn.Sequential(nn.Linear((1 + states) * dim, dim), nn.Dropout(dropout))
        self.n_heads = n_heads

    @torch.no_grad()
    def fit(self, x: Tensor, eps: float = 1e-5) -> None:
        """Standardisation statistics of the real rows of `x` (N, W, D), the training windows."""
        rows = x.float()[padding_mask(x)]
        self.mean.copy_(rows.mean(dim=0))
        self.std.copy_(rows.std(dim=0).clamp_min(eps))

    def sequence(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """(B, T, D) utterances (+ (B, T) real-row mask) -> (B, T, dim) outputs (causal
        unless offline)."""
        mask = padding_mask(x) if mask is None else mask.bool()
        u = self.proj((x - self.mean) / self.std) * mask.unsqueeze(-1)
        if self.kind == "gru":
            states = self._gru(u, mask, self.cell)
            if self.offline:
                back = self._gru(u.flip(1), mask.flip(1), self.cell_back).flip(1)
                states = torch.cat([states, back], dim=-1)
        else:
            states = self._attend(u, mask)
        return self.out(torch.cat([u, states], dim=-1))

    @staticmethod
    def _gru(u: Tensor, mask: Tensor, cell: nn.GRUCell) -> Tensor:
        h = u.new_zeros(u.shape[0], u.shape[2])
        states = []
        for t in range(u.shape[1]):
            h = torch.where(mask[:, t:t + 1], cell(u[:, t], h), h)
            states.append(h)
        return torch.stack(states, dim=1)

    def _attend(self, u: Tensor, mask: Tensor) -> Tensor:
        b, t, _ = u.shape
        causal = torch.ones(t, t, dtype=torch.bool, device=u.device)
        if not self.offline:
            causal = causal.tril()
        # allowed[b, i, j]: j is at or before i and real; each row may always see itself,
        # so padding rows attend to something and no row is fully masked.
        allowed = (causal & mask[:, None, :]) | torch.eye(t, dtype=torch.bool, device=u.device)
        blocked = ~allowed.repeat_interleave(self.n_heads, dim=0)
        # Positions count real rows from the window's start, so left padding moves nothing.
        index = (mask.long().cumsum(dim=1) - 1).clamp(0, self.pos.shape[1] - 1)
        return self.layer(u + self.pos[0, index] * mask.unsqueeze(-1), src_mask=blocked)

    def forward(self, x: Tensor) -> Tensor:
        """(B, W, D) -> (B, 1, dim): the output at the target's row (the last, or the middle
        one offline)."""
        target = (x.shape[1] - 1) // 2 if self.offline else x.shape[1] - 1
        return self.sequence(x)[:, target:target + 1]
