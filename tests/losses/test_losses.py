"""Losses against hand-written loops on five embeddings; emotional margins vs coordinates;
focal loss against a hand-written loop."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mmer.config import LossConfig
from mmer.losses import (
    NRC_VAD_VALENCE_AROUSAL,
    EmotionLoss,
    balanced_class_weights,
    build_loss,
    emotional_margins,
    valence_arousal,
)
from mmer.models.heads import ModelOutput

RAVDESS = ["neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised"]
MELD = ["anger", "disgust", "fear", "joy", "neutral", "sadness", "surprise"]

# Five unit vectors at known angles (degrees) and their classes.
ANGLES = [0.0, 90.0, 30.0, 150.0, 200.0]  # 0->2 is a hard triplet
LABELS = [0, 0, 1, 1, 2]
NAMES = ["angry", "calm", "disgust"]


def embeddings() -> torch.Tensor:
    rad = np.deg2rad(ANGLES)
    return torch.tensor(np.stack([np.cos(rad), np.sin(rad)], 1), dtype=torch.float32)


def output(emb: torch.Tensor, logits: torch.Tensor | None = None) -> ModelOutput:
    return ModelOutput(emb, logits if logits is not None else torch.zeros(len(emb), 3))


def hand_triplet(emb, labels, margin_of, *, distance="cosine", select=lambda a, p, n: True):
    """Mean over violating triplets (PML's AvgNonZeroReducer) of the triplet loss."""
    e = emb.double().numpy()
    losses = []
    for a, p, n in itertools.permutations(range(len(labels)), 3):
        if labels[a] != labels[p] or labels[a] == labels[n]:
            continue
        if distance == "cosine":
            ap, an = e[a] @ e[p], e[a] @ e[n]
            gap = an - ap          # similarity: negative should be less similar
        else:
            ap, an = np.linalg.norm(e[a] - e[p]), np.linalg.norm(e[a] - e[n])
            gap = ap - an
        if not select(ap, an, margin_of(labels[a], labels[n])):
            continue
        losses.append(max(gap + margin_of(labels[a], labels[n]), 0.0))
    positive = [v for v in losses if v > 0]
    return sum(positive) / len(positive) if positive else 0.0


def triplet_only(**kw) -> LossConfig:
    return LossConfig(ce_weight=0.0, triplet_weight=1.0, **kw)


@pytest.mark.parametrize("distance", ["cosine", "euclidean"])
def test_triplet_loss_over_all_triplets_matches_hand_loop(distance):
    cfg = triplet_only(margin=0.3, miner="none", distance=distance)
    parts = build_loss(cfg, NAMES)(output(embeddings()), {"label": torch.tensor(LABELS)})
    expected = hand_triplet(embeddings(), LABELS, lambda i, j: 0.3, distance=distance)
    assert expected > 0
    assert float(parts["triplet"]) == pytest.approx(expected, rel=1e-5)
    assert float(parts["loss"]) == pytest.approx(expected, rel=1e-5)


def test_semihard_miner_keeps_only_semihard_triplets():
    margin = 0.5
    cfg = triplet_only(margin=margin, miner="semihard")
    parts = build_loss(cfg, NAMES)(output(embeddings()), {"label": torch.tensor(LABELS)})
    semihard = lambda ap, an, m: 0 < ap - an <= m  # noqa: E731  (similarities)
    expected = hand_triplet(embeddings(), LABELS, lambda i, j: margin, select=semihard)
    everything = hand_triplet(embeddings(), LABELS, lambda i, j: margin)
    assert expected != pytest.approx(everything)
    assert float(parts["triplet"]) == pytest.approx(expected, rel=1e-5)


def test_emotional_margin_loss_uses_class_pair_margins():
    cfg = triplet_only(margin=0.1, miner="none", emotional_margin=True, emotional_margin_scale=0.4)
    parts = build_loss(cfg, NAMES)(output(embeddings()), {"label": torch.tensor(LABELS)})
    va = {n: np.array(NRC_VAD_VALENCE_AROUSAL[n]) for n in NAMES}
    d = {(i, j): np.linalg.norm(va[NAMES[i]] - va[NAMES[j]]) for i in range(3) for j in range(3)}
    top = max(d.values())
    expected = hand_triplet(embeddings(), LABELS, lambda i, j: 0.1 + 0.4 * d[i, j] / top)
    plain = hand_triplet(embeddings(), LABELS, lambda i, j: 0.1)
    assert expected != pytest.approx(plain)
    assert float(parts["triplet"]) == pytest.approx(expected, rel=1e-5)


def test_given_triplets_are_the_only_ones_used():
    cfg = triplet_only(margin=0.3, miner="semihard")  # the miner must be bypassed
    idx = (torch.tensor([0]), torch.tensor([1]), torch.tensor([2]))
    parts = build_loss(cfg, NAMES)(output(embeddings()), {"label": torch.tensor(LABELS)},
                                   indices_tuple=idx)
    e = embeddings().double()
    expected = max(float(e[0] @ e[2] - e[0] @ e[1]) + 0.3, 0.0)
    assert expected > 0
    assert float(parts["triplet"]) == pytest.approx(expected, rel=1e-5)


def test_cross_entropy_with_smoothing_weights_and_mixup_matches_hand():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(5, 3, generator=gen)
    y = torch.tensor(LABELS)
    cfg = LossConfig(triplet_weight=0.5, ce_weight=2.0, label_smoothing=0.1, miner="none", margin=0.3)
    loss = build_loss(cfg, NAMES)
    parts = loss(output(embeddings(), logits), {"label": y})

    def ce(target):
        total = 0.0
        for row, t in zip(logits.double(), target, strict=True):
            logp = row - torch.logsumexp(row, 0)
            q = torch.full((3,), 0.1 / 3, dtype=torch.float64)
            q[t] += 0.9
            total += float(-(q * logp).sum())
        return total / len(target)

    assert float(parts["ce"]) == pytest.approx(ce(y), rel=1e-5)
    triplet = hand_triplet(embeddings(), LABELS, lambda i, j: 0.3)
    assert float(parts["loss"]) == pytest.approx(0.5 * triplet + 2.0 * ce(y), rel=1e-5)
    perm = torch.tensor([4, 3, 2, 1, 0])
    mixed = loss(output(embeddings(), logits), {"label": y}, mix=(0.7, perm))
    assert float(mixed["ce"]) == pytest.approx(0.7 * ce(y) + 0.3 * ce(y[perm]), rel=1e-5)


def test_extra_task_loss_is_weighted_in():
    cfg = LossConfig(triplet_weight=0.0, ce_weight=1.0, miner="none")
    loss = build_loss(cfg, NAMES, extra_weights={"sentiment": 0.5})
    logits, senti = torch.zeros(5, 3), torch.tensor([[2.0, 0.0, 0.0]] * 5)
    out = ModelOutput(embeddings(), logits, {"sentiment": senti})
    parts = loss(out, {"label": torch.tensor(LABELS), "sentiment": torch.tensor([0, 1, 2, 0, 1])})
    p = torch.softmax(senti[0], 0)
    expected_senti = float(-(torch.log(p[[0, 1, 2, 0, 1]])).mean())
    assert float(parts["sentiment"]) == pytest.approx(expected_senti, rel=1e-5)
    assert float(parts["loss"]) == pytest.approx(math.log(3) + 0.5 * expected_senti, rel=1e-5)


def test_extra_task_class_weights_follow_its_training_counts():
    # sentiment counts 3, 1, 1 (label order) -> weights 5/9, 5/3, 5/3; emotion unweighted here
    cfg = LossConfig(triplet_weight=0.0, ce_weight=0.0, miner="none", class_weights=True)
    senti_y = torch.tensor([0, 0, 0, 1, 2])
    loss = build_loss(cfg, NAMES, train_labels=LABELS, extra_weights={"sentiment": 1.0},
                      extra_train_labels={"sentiment": (senti_y.tolist(), 3)})
    torch.testing.assert_close(loss.class_weights_sentiment, torch.tensor([5 / 9, 5 / 3, 5 / 3]))
    senti = torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 3.0], [1.0, 0.0, 0.0],
                          [0.0, 2.0, 0.0]])
    out = ModelOutput(embeddings(), torch.zeros(5, len(NAMES)), {"sentiment": senti})
    parts = loss(out, {"label": torch.tensor(LABELS), "sentiment": senti_y})
    w = [5 / 9, 5 / 3, 5 / 3]
    nll = [-float(torch.log_softmax(senti[i], 0)[senti_y[i]]) for i in range(5)]
    expected = sum(w[int(senti_y[i])] * nll[i] for i in range(5)) / sum(w[int(y)] for y in senti_y)
    assert float(parts["sentiment"]) == pytest.approx(expected, rel=1e-5)
    assert float(parts["loss"]) == pytest.approx(expected, rel=1e-5)


def test_anger_is_pushed_further_from_calm_than_from_disgust():
    m = emotional_margins(RAVDESS, base=0.2, scale=0.3)
    i = {n: k for k, n in enumerate(RAVDESS)}
    assert m[i["angry"], i["calm"]] > m[i["angry"], i["disgust"]]
    mm = emotional_margins(MELD, base=0.2, scale=0.3)
    j = {n: k for k, n in enumerate(MELD)}
    assert mm[j["anger"], j["joy"]] > mm[j["anger"], j["disgust"]]


@pytest.mark.parametrize("names", [RAVDESS, MELD])
def test_margins_are_ordered_as_the_coordinates_say(names):
    va = valence_arousal(names)
    m = emotional_margins(names, base=0.2, scale=0.3).double().numpy()
    pairs = [(a, b) for a in range(len(names)) for b in range(a + 1, len(names))]
    dist = {p: np.linalg.norm(va[p[0]] - va[p[1]]) for p in pairs}
    for p, q in itertools.combinations(pairs, 2):
        if dist[p] > dist[q] + 1e-9:
            assert m[p] > m[q], (names[p[0]], names[p[1]], names[q[0]], names[q[1]])
    assert np.allclose(m, m.T)
    assert m.max() == pytest.approx(0.5) and np.diag(m) == pytest.approx(0.2)


def test_unknown_label_words_are_named():
    with pytest.raises(KeyError, match="contempt"):
        valence_arousal(["anger", "contempt"])


def test_balanced_class_weights():
    w = balanced_class_weights([0, 0, 0, 1], 3)
    assert w.tolist() == pytest.approx([4 / 9, 4 / 3, 4 / 3])


def _loss(gamma: float) -> EmotionLoss:
    cfg = LossConfig(triplet_weight=0.0, miner="none", focal_gamma=gamma)
    return EmotionLoss(cfg, ["a", "b", "c"], class_weights=torch.tensor([1.0, 2.0, 0.5]))


def test_focal_loss_matches_a_hand_written_loop_and_is_ce_at_gamma_zero() -> None:
    torch.manual_seed(1)
    logits, y = torch.randn(5, 3), torch.tensor([0, 1, 2, 1, 0])
    out = ModelOutput(embedding=F.normalize(torch.randn(5, 4), dim=1), logits=logits, extra_logits={})
    w = torch.tensor([1.0, 2.0, 0.5])
    assert _loss(0.0)(out, {"label": y})["ce"] == pytest.approx(float(F.cross_entropy(logits, y, weight=w)))
    num = den = 0.0
    for i in range(5):
        p = torch.softmax(logits[i], 0)[y[i]]
        num += float(w[y[i]] * (1 - p) ** 2 * -torch.log(p))
        den += float(w[y[i]])
    assert _loss(2.0)(out, {"label": y})["ce"] == pytest.approx(num / den, rel=1e-5)
