"""Dialogue context windows, the causal dialogue layer, focal loss, layer-wise LRs, config checks."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from mmer.config import ConfigError, LossConfig, config_from_dict
from mmer.errors import BadInput
from mmer.features.context import TARGET_MARK, context_strings, context_windows
from mmer.losses import EmotionLoss
from mmer.models.dialogue import DialogueEncoder
from mmer.models.heads import ModelOutput


def _entry(dialogue: str, utt: int, speaker: str, text: str) -> dict:
    return {"clip_id": f"{dialogue}_utt{utt}", "group": dialogue, "speaker": speaker,
            "extra": {"utterance_id": utt, "text": text}}


def _dialogues() -> list[dict]:
    # Sorted by clip id, as records are: utt10 comes before utt2 in string order.
    rows = [_entry("train/dia0", u, "Joey" if u % 2 else "Ross", f"a{u}") for u in range(12)]
    rows += [_entry("train/dia1", u, "Monica", f"b{u}") for u in (0, 1, 3)]  # utt 2 skipped
    return sorted(rows, key=lambda e: e["clip_id"])


def test_windows_hold_the_past_of_the_same_dialogue_only() -> None:
    entries = _dialogues()
    where = {e["clip_id"]: i for i, e in enumerate(entries)}
    windows = context_windows(entries, 3)
    ids = {e["clip_id"]: [entries[j]["clip_id"] for j in w] for e, w in zip(entries, windows, strict=True)}
    assert ids["train/dia0_utt0"] == ["train/dia0_utt0"]
    assert ids["train/dia0_utt2"] == ["train/dia0_utt0", "train/dia0_utt1", "train/dia0_utt2"]
    assert ids["train/dia0_utt10"] == [f"train/dia0_utt{u}" for u in (7, 8, 9, 10)]
    # dia1 never sees dia0, and a skipped utterance is bridged by the nearest earlier ones.
    assert ids["train/dia1_utt0"] == ["train/dia1_utt0"]
    assert ids["train/dia1_utt3"] == ["train/dia1_utt0", "train/dia1_utt1", "train/dia1_utt3"]
    for e, w in zip(entries, windows, strict=True):
        assert w[-1] == where[e["clip_id"]] and len(w) <= 4
        assert all(entries[j]["group"] == e["group"] for j in w)
        assert all(entries[j]["extra"]["utterance_id"] < e["extra"]["utterance_id"] for j in w[:-1])
    assert context_windows(entries, 0) == [[i] for i in range(len(entries))]
    with pytest.raises(ValueError, match="0 or more"):
        context_windows(entries, -1)
    with pytest.raises(BadInput, match="utterance_id"):
        context_windows([{"group": "x", "extra": {}}], 2)


def test_context_string_marks_the_target_first_then_past_most_recent_first() -> None:
    entries = _dialogues()
    strings = dict(zip((e["clip_id"] for e in entries), context_strings(entries, 2), strict=True))
    assert strings["train/dia0_utt3"] == f"{TARGET_MARK} Joey: a3 [SEP] Ross: a2 [SEP] Joey: a1"
    assert strings["train/dia0_utt0"] == f"{TARGET_MARK} Ross: a0"
    assert strings["train/dia1_utt1"] == f"{TARGET_MARK} Monica: b1 [SEP] Monica: b0"
    # No context: the utterance's own text, unchanged (the frozen cache keys stay the same).
    assert context_strings(entries, 0) == [e["extra"]["text"] for e in entries]
    named = context_strings(entries, 0, speaker_names=True)
    assert named[0] == "Ross: a0" and named == [f"{e['speaker']}: {e['extra']['text']}" for e in entries]


@pytest.mark.parametrize("kind", ["gru", "attention"])
def test_dialogue_layer_is_causal_and_ignores_padding(kind: str) -> None:
    torch.manual_seed(0)
    layer = DialogueEncoder((6, 8), 16, 2, 0.1, kind=kind).eval()
    layer.fit(F.normalize(torch.randn(20, 6, 8), dim=-1))
    x = F.normalize(torch.randn(3, 6, 8), dim=-1)
    changed = x.clone()
    changed[:, 4:] = F.normalize(torch.randn(3, 2, 8), dim=-1)
    with torch.no_grad():
        a, b = layer.sequence(x), layer.sequence(changed)
        assert torch.allclose(a[:, :4], b[:, :4], atol=1e-6)  # the future does not reach the past
        assert not torch.allclose(a[:, 4:], b[:, 4:], atol=1e-3)
        # A window left-padded with zero rows gives the target what the unpadded one does.
        short = layer(x[:, 2:])
        padded = layer(torch.cat([torch.zeros(3, 2, 8), x[:, 2:]], dim=1))
        assert torch.allclose(short, padded, atol=1e-5) and short.shape == (3, 1, 16)


def test_offline_windows_add_the_later_utterances_of_the_same_dialogue_only() -> None:
    entries = _dialogues()
    windows = context_windows(entries, 2, "dialogue")
    ids = {e["clip_id"]: [entries[j]["clip_id"] for j in w] for e, w in zip(entries, windows, strict=True)}
    assert ids["train/dia0_utt5"] == [f"train/dia0_utt{u}" for u in (3, 4, 5, 6, 7)]
    assert ids["train/dia0_utt11"] == [f"train/dia0_utt{u}" for u in (9, 10, 11)]  # dialogue's end
    assert ids["train/dia1_utt0"] == ["train/dia1_utt0", "train/dia1_utt1", "train/dia1_utt3"]
    for e, w in zip(entries, windows, strict=True):
        assert all(entries[j]["group"] == e["group"] for j in w)
    assert context_windows(entries, 2, "past") == context_windows(entries, 2)
    with pytest.raises(ValueError, match="context_mode"):
        context_windows(entries, 2, "future")


@pytest.mark.parametrize("kind", ["gru", "attention"])
def test_offline_dialogue_layer_reads_a_later_utterance(kind: str) -> None:
    torch.manual_seed(0)
    layer = DialogueEncoder((5, 8), 16, 2, 0.1, kind=kind, offline=True).eval()
    causal = DialogueEncoder((5, 8), 16, 2, 0.1, kind=kind).eval()
    x = F.normalize(torch.randn(3, 5, 8), dim=-1)
    later = x.clone()
    later[:, 4] = F.normalize(torch.randn(3, 8), dim=-1)  # after the target (row 2)
    with torch.no_grad():
        assert layer(x).shape == (3, 1, 16)
        assert not torch.allclose(layer(x), layer(later), atol=1e-3)
        torch.testing.assert_close(layer(x), layer.sequence(x)[:, 2:3])
        # the causal layer's target (the last row) ignores nothing before it, and its rows
        # before a change stay as they were
        assert torch.allclose(causal.sequence(x)[:, :4], causal.sequence(later)[:, :4], atol=1e-6)


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


def _cfg(**text) -> dict:
    return {"dataset": "meld", "model": {"modalities": ["text"]}, "text": text}


@pytest.mark.parametrize(("text", "loss", "match"), [
    ({"context": -1}, {}, "text.context"),
    ({"context": 3, "dialogue": "gru", "finetune": True}, {}, "text.dialogue"),
    ({"context": 0, "dialogue": "attention"}, {}, "text.dialogue"),
    ({"context": 3, "dialogue": "lstm"}, {}, "dialogue"),
    ({"context": 3, "context_mode": "dialogue"}, {}, "context_mode"),
    ({"layer_decay": 0.0}, {}, "layer_decay"),
    ({"freeze_epochs": -2}, {}, "freeze_epochs"),
    ({}, {"focal_gamma": -1.0}, "focal_gamma"),
])
def test_config_refuses_bad_context_settings(text: dict, loss: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        config_from_dict({**_cfg(**text), "loss": loss})
    ok = config_from_dict(_cfg(context=4, dialogue="gru"))
    assert (ok.text.context, ok.text.dialogue) == (4, "gru")


def test_layer_wise_learning_rates_and_freezing() -> None:
    transformers = pytest.importorskip("transformers")
    from mmer.nets.minilm import MiniLMEncoder
    from mmer.train.loop import freeze_text_encoder, param_groups
    bert = transformers.BertModel(transformers.BertConfig(
        vocab_size=30, hidden_size=8, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=16, max_position_embeddings=16))
    model = torch.nn.Module()
    model.text_encoder, model.head = MiniLMEncoder(bert), torch.nn.Linear(8, 2)
    cfg = config_from_dict(_cfg(finetune=True, finetune_lr=1e-4, layer_decay=0.5))
    groups = param_groups(cfg, model)
    assert "lr" not in groups[0] and len(groups[0]["params"]) == 2  # the head, at train.lr
    lrs = [g["lr"] for g in groups[1:]]
    # embeddings, layer 0, layer 1, pooler: each depth twice the rate of the one below
    assert lrs == pytest.approx([1e-4 / 8, 1e-4 / 4, 1e-4 / 2, 1e-4])
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))
    freeze_text_encoder(model, True)
    assert not any(p.requires_grad for p in model.text_encoder.parameters())
    assert all(p.requires_grad for p in model.head.parameters())
    freeze_text_encoder(model, False)
    assert all(p.requires_grad for p in model.text_encoder.parameters())
