"""Layer-wise learning rates of a fine-tuned text encoder, and freezing it."""
from __future__ import annotations

import pytest
import torch

from mmer.config import config_from_dict


def _cfg(**text) -> dict:
    return {"dataset": "meld", "model": {"modalities": ["text"]}, "text": text}


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
