"""Metric-learning loss (pytorch-metric-learning) plus cross-entropy, returning named parts.

The *emotional metric constraint* makes the triplet margin depend on the classes of
the anchor and the negative: emotions far apart in valence/arousal must be pushed
further apart in the embedding,

    margin(i, j) = loss.margin + loss.emotional_margin_scale * d_VA(i, j) / max_kl d_VA(k, l),

with d_VA the Euclidean distance between the categories' (valence, arousal)
coordinates. The coordinates are the NRC VAD Lexicon v1 scores (0..1) of the label
words themselves: S. M. Mohammad, "Obtaining Reliable Human Ratings of Valence,
Arousal, and Dominance for 20,000 English Words", ACL 2018
(saifmohammad.com/WebPages/nrc-vad.html). Each dataset's own label word is looked up
(RAVDESS's adjectives "angry", "fearful", ...; MELD's nouns "anger", "fear", ...); the
numbers below were checked against a copy of ``NRC-VAD-Lexicon.txt``.
"""
from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from pytorch_metric_learning import distances, miners
from pytorch_metric_learning.losses import TripletMarginLoss
from pytorch_metric_learning.utils import loss_and_miner_utils as lmu
from torch import Tensor, nn

from mmer.config import LossConfig
from mmer.datasets.labels import balanced_class_weights
from mmer.errors import BadInput
from mmer.models.heads import ModelOutput

log = logging.getLogger(__name__)

# (valence, arousal) from the NRC VAD Lexicon v1 (Mohammad, 2018), keyed by label word.
NRC_VAD_VALENCE_AROUSAL: dict[str, tuple[float, float]] = {
    # RAVDESS label words
    "neutral": (0.469, 0.184),
    "calm": (0.875, 0.100),
    "happy": (1.000, 0.735),
    "sad": (0.225, 0.333),
    "angry": (0.122, 0.830),
    "fearful": (0.083, 0.482),
    "disgust": (0.052, 0.775),
    "surprised": (0.784, 0.855),
    # MELD label words (neutral and disgust as above)
    "anger": (0.167, 0.865),
    "fear": (0.073, 0.840),
    "joy": (0.980, 0.824),
    "sadness": (0.052, 0.288),
    "surprise": (0.875, 0.875),
}


def valence_arousal(label_names: Sequence[str]) -> np.ndarray:
    """(K, 2) coordinates of `label_names`; raises KeyError naming the unknown labels."""
    missing = [n for n in label_names if n not in NRC_VAD_VALENCE_AROUSAL]
    if missing:
        raise KeyError(f"no valence/arousal coordinates for {missing}; "
                       f"known: {', '.join(NRC_VAD_VALENCE_AROUSAL)}")
    return np.array([NRC_VAD_VALENCE_AROUSAL[n] for n in label_names], dtype=np.float64)


def emotional_margins(label_names: Sequence[str], base: float, scale: float) -> Tensor:
    """(K, K) class-pair margins: base + scale * d_VA / max d_VA (diagonal: base)."""
    va = valence_arousal(label_names)
    dist = np.sqrt(((va[:, None, :] - va[None, :, :]) ** 2).sum(-1))
    top = dist.max()
    rel = dist / top if top > 0 else dist
    return torch.tensor(base + scale * rel, dtype=torch.float32)


class ClassPairTripletLoss(TripletMarginLoss):
    """PML's TripletMarginLoss with margin ``margins[label(anchor), label(negative)]``.

    The triplets are resolved first (mined, given, or all of them), then PML's own
    computation runs on them with a per-triplet margin vector.
    """

    def __init__(self, margins: Tensor, **kwargs) -> None:
        super().__init__(margin=0.0, **kwargs)
        self.margins = margins

    def compute_loss(self, embeddings, labels, indices_tuple, ref_emb, ref_labels):
        a, p, n = lmu.convert_to_triplets(indices_tuple, labels, ref_labels,
                                          t_per_anchor=self.triplets_per_anchor)
        margins = self.margins.to(embeddings.device)
        self.margin = margins[labels[a], ref_labels[n]].to(embeddings.dtype)
        return super().compute_loss(embeddings, labels, (a, p, n), ref_emb, ref_labels)


def make_distance(name: str) -> distances.BaseDistance:
    """``cosine`` (similarity of unit vectors) or ``euclidean`` (L2 of unit vectors)."""
    if name == "cosine":
        return distances.CosineSimilarity()
    if name == "euclidean":
        return distances.LpDistance(normalize_embeddings=True, p=2)
    raise BadInput(f"unknown distance {name!r}; valid: cosine, euclidean")


def make_miner(cfg: LossConfig, margin: float) -> miners.BaseMiner | None:
    """PML TripletMarginMiner of type ``cfg.miner`` (None for ``"none"``: every triplet)."""
    if cfg.miner == "none":
        return None
    if cfg.miner not in ("semihard", "hard", "all"):
        raise BadInput(f"unknown miner {cfg.miner!r}; valid: semihard, hard, all, none")
    return miners.TripletMarginMiner(margin=margin, type_of_triplets=cfg.miner,
                                     distance=make_distance(cfg.distance))


class EmotionLoss(nn.Module):
    """triplet_weight * triplet + ce_weight * CE (+ weight * CE of each extra task).

    ``forward(output, targets, indices_tuple=None, mix=None)`` returns a dict of 0-d
    tensors: ``loss`` (the weighted total), ``triplet``, ``ce`` and one per extra task.
    `targets`: ``{"label": (B,) int, task: (B,) int}``. `indices_tuple`: explicit
    (anchor, positive, negative) index tensors (TripletDataset batches); otherwise the
    miner picks triplets in the batch. `mix`: ``(lam, perm)`` after mixup, the CE then
    being ``lam * CE(y) + (1 - lam) * CE(y[perm])``; the triplet term uses ``y``, which
    the mixup keeps dominant (lam >= 0.5).

    An ensemble's output (``output.members``) trains each member on its own output, with
    its own mined triplets: ``loss`` is the members' sum, so each member gets the gradient
    it would get alone (``train.grad_clip`` then bounds the norm of all the members'
    gradients together); the other parts are the members' means.
    """

    def __init__(self, cfg: LossConfig, label_names: Sequence[str], *,
                 class_weights: Tensor | None = None,
                 extra_weights: Mapping[str, float] | None = None,
                 extra_class_weights: Mapping[str, Tensor] | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        distance = make_distance(cfg.distance)
        if cfg.emotional_margin:
            margins = emotional_margins(label_names, cfg.margin, cfg.emotional_margin_scale)
            self.triplet = ClassPairTripletLoss(margins, distance=distance)
            miner_margin = float(margins.max())
        else:
            self.triplet = TripletMarginLoss(margin=cfg.margin, distance=distance)
            miner_margin = cfg.margin
        self.miner = make_miner(cfg, miner_margin)
        self.register_buffer("class_weights", class_weights, persistent=False)
        self.extra_weights = dict(extra_weights or {})
        # Per-class CE weights of the extra tasks (e.g. MELD's sentiment), one buffer each.
        for task, w in (extra_class_weights or {}).items():
            self.register_buffer(f"class_weights_{task}", w, persistent=False)

    def forward(self, output: ModelOutput, targets: Mapping[str, Tensor], *,
                indices_tuple: tuple[Tensor, Tensor, Tensor] | None = None,
                mix: tuple[float, Tensor] | None = None) -> dict[str, Tensor]:
        if output.members:
            per = [self(o, targets, indices_tuple=indices_tuple, mix=mix) for o in output.members]
            parts = {k: torch.stack([p[k] for p in per]).mean() for k in per[0]}
            parts["loss"] = torch.stack([p["loss"] for p in per]).sum()
            return parts
        labels = targets["label"]
        emb = output.embedding.float()
        if indices_tuple is None and self.miner is not None:
            indices_tuple = self.miner(emb, labels)
        parts = {"triplet": self.triplet(emb, labels, indices_tuple),
                 "ce": self._ce(output.logits, labels, mix, self.class_weights)}
        total = self.cfg.triplet_weight * parts["triplet"] + self.cfg.ce_weight * parts["ce"]
        for task, weight in self.extra_weights.items():
            task_cw = getattr(self, f"class_weights_{task}", None)
            parts[task] = self._ce(output.extra_logits[task], targets[task], mix, task_cw)
            total = total + weight * parts[task]
        parts["loss"] = total
        return parts

    def _ce(self, logits: Tensor, y: Tensor, mix: tuple[float, Tensor] | None,
            weight: Tensor | None) -> Tensor:
        logits = logits.float()
        ce = self._ce_of(logits, y, weight)
        if mix is None:
            return ce
        lam, perm = mix
        return lam * ce + (1.0 - lam) * self._ce_of(logits, y[perm], weight)

    def _ce_of(self, logits: Tensor, y: Tensor, weight: Tensor | None) -> Tensor:
        """Cross-entropy, or with ``loss.focal_gamma`` > 0 the focal loss: each item's
        (class-weighted, smoothed) CE times (1 - p_y) ** gamma, normalised like weighted CE
        (by the sum of the items' class weights)."""
        smooth, gamma = self.cfg.label_smoothing, self.cfg.focal_gamma
        if gamma == 0:
            return F.cross_entropy(logits, y, weight=weight, label_smoothing=smooth)
        per_item = F.cross_entropy(logits, y, weight=weight, label_smoothing=smooth, reduction="none")
        p_y = F.softmax(logits, dim=1).gather(1, y[:, None]).squeeze(1)
        norm = weight[y].sum() if weight is not None else torch.tensor(float(len(y)))
        return ((1.0 - p_y).pow(gamma) * per_item).sum() / norm


def build_loss(cfg: LossConfig, label_names: Sequence[str], *, train_labels: Sequence[int] | None = None,
               extra_weights: Mapping[str, float] | None = None,
               extra_train_labels: Mapping[str, tuple[Sequence[int], int]] | None = None) -> EmotionLoss:
    """The loss of ``cfg``; class weights (``loss.class_weights``) come from `train_labels`
    and, for each extra task, from ``extra_train_labels[task] = (labels, n_classes)``,
    every weight vector in its task's label index order."""
    weights, extra_cw = None, {}
    if cfg.class_weights:
        if train_labels is None:
            raise BadInput("loss.class_weights needs the training labels")
        weights = balanced_class_weights(train_labels, len(label_names))
        log.info("class weights: %s", [round(float(w), 3) for w in weights])
        for task, (labels, n_classes) in (extra_train_labels or {}).items():
            extra_cw[task] = balanced_class_weights(labels, n_classes)
            log.info("%s class weights: %s", task, [round(float(w), 3) for w in extra_cw[task]])
    if not math.isfinite(cfg.margin):
        raise BadInput(f"loss.margin must be finite, got {cfg.margin}")
    return EmotionLoss(cfg, label_names, class_weights=weights, extra_weights=extra_weights,
                       extra_class_weights=extra_cw)
