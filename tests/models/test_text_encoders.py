"""Text encoders and the token text model: shapes, padding invariance, gradients, the registry."""
from __future__ import annotations

import pytest
import torch

from mmer.config import Config, TextConfig
from mmer.models.build import build_model
from mmer.models.text import ScratchTextEncoder, TokenTextModel, build_text_encoder


def test_scratch_encoder_shapes_padding_invariance_and_gradients() -> None:
    torch.manual_seed(0)
    enc = ScratchTextEncoder(50, dim=16, n_layers=2, n_heads=2, max_tokens=12, dropout=0.1)
    ids = torch.tensor([[5, 6, 7, 0, 0, 0, 0, 0], [8, 9, 10, 11, 12, 13, 14, 15]])
    mask = ids != 0
    enc.train()
    enc(ids, mask).sum().backward()
    assert all(p.grad is not None for p in enc.parameters())
    enc.eval()
    with torch.no_grad():
        out = enc(ids, mask)
        short = enc(ids[:1, :3], mask[:1, :3])             # same sentence, no padding
    assert out.shape == (2, 16)
    torch.testing.assert_close(out[:1], short, atol=1e-5, rtol=1e-5)


def test_token_text_model_outputs_both_heads() -> None:
    cfg = Config(dataset="meld")
    cfg.model.modalities, cfg.model.d_model, cfg.model.n_heads, cfg.model.embed_dim = ["text"], 16, 2, 8
    cfg.text = TextConfig(encoder="scratch", scratch_dim=24, scratch_layers=1, scratch_heads=2)
    model = build_model(cfg, {"input_ids": (6,), "attention_mask": (6,)}, n_classes=7,
                        extra_classes={"sentiment": 3}, vocab=(30, 0))
    assert isinstance(model, TokenTextModel) and model.text_encoder.out_dim == 24
    with pytest.raises(ValueError, match="vocabulary"):
        build_model(cfg, {"input_ids": (6,)}, n_classes=7)
    ids = torch.randint(1, 30, (4, 6))
    out = model({"input_ids": ids, "attention_mask": ids != 0})
    assert out.logits.shape == (4, 7) and out.extra_logits["sentiment"].shape == (4, 3)
    assert out.embedding.shape == (4, 8)
    torch.testing.assert_close(out.embedding.norm(dim=1), torch.ones(4))


def test_unknown_text_encoder_lists_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="minilm, mpnet, scratch"):
        build_text_encoder(TextConfig(encoder="bert"), vocab_size=10, pad_id=0, dropout=0.0)  # type: ignore[arg-type]
