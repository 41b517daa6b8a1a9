"""The dialogue layer over a dialogue's utterances: causal, padding ignored, offline reads later utterances."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from mmer.models.dialogue import DialogueEncoder


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
