"""Output heads: L2-normalised embedding, softmax logits and extra task logits."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmer.errors import BadInput


@dataclass
class ModelOutput:
    """embedding (B, E) L2-normalised; logits (B, K); extra_logits {task: (B, K_task)}.

    ``members``: an ensemble's per-member outputs (empty for a single model); the loss
    trains each member on its own output.
    """

    embedding: Tensor
    logits: Tensor
    extra_logits: dict[str, Tensor] = field(default_factory=dict)
    members: list[ModelOutput] = field(default_factory=list)


class EmbeddingHead(nn.Module):
    """(B, F) fused vector -> ModelOutput.

    The embedding and the classifier are two branches on the fused vector, so the
    metric loss and cross-entropy both shape the shared representation.
    """

    def __init__(self, in_dim: int, embed_dim: int, n_classes: int, dropout: float,
                 extra_classes: Mapping[str, int] | None = None) -> None:
        super().__init__()
        self.embed = nn.Sequential(nn.Linear(in_dim, in_dim), nn.GELU(), nn.Linear(in_dim, embed_dim))
        self.drop = nn.Dropout(dropout)
        self.classifier = nn.Linear(in_dim, n_classes)
        self.extra = nn.ModuleDict({k: nn.Linear(in_dim, n) for k, n in (extra_classes or {}).items()})

    def forward(self, x: Tensor) -> ModelOutput:
        h = self.drop(x)
        return ModelOutput(
            embedding=F.normalize(self.embed(x), dim=1),
            logits=self.classifier(h),
            extra_logits={k: head(h) for k, head in self.extra.items()},
        )


class LateFusionHead(nn.Module):
    """(B, M, d) per-modality vectors -> ModelOutput combining M heads with weights.

    logits = sum_m w_m * logits_m (likewise each extra task); embedding =
    normalise(sum_m w_m * embedding_m), so it keeps dimension E. Weights default to 1/M.
    """

    def __init__(self, modalities: Sequence[str], in_dim: int, embed_dim: int, n_classes: int,
                 dropout: float, weights: Sequence[float] | None = None,
                 extra_classes: Mapping[str, int] | None = None) -> None:
        super().__init__()
        self.modalities = list(modalities)
        if weights is None:
            weights = [1.0 / len(self.modalities)] * len(self.modalities)
        if len(weights) != len(self.modalities):
            raise BadInput(f"model.late_weights has {len(weights)} values for "
                             f"{len(self.modalities)} modalities {self.modalities}")
        self.register_buffer("weights", torch.tensor([float(w) for w in weights]), persistent=False)
        self.heads = nn.ModuleList(EmbeddingHead(in_dim, embed_dim, n_classes, dropout, extra_classes)
                                   for _ in self.modalities)

    def forward(self, x: Tensor) -> ModelOutput:
        outs = [head(x[:, i]) for i, head in enumerate(self.heads)]
        w = self.weights.to(x.dtype)
        logits = sum(w[i] * o.logits for i, o in enumerate(outs))
        embedding = sum(w[i] * o.embedding for i, o in enumerate(outs))
        extra = {k: sum(w[i] * o.extra_logits[k] for i, o in enumerate(outs))
                 for k in outs[0].extra_logits}
        return ModelOutput(F.normalize(embedding, dim=1), logits, extra)
