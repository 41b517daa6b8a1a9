"""Every fusion with the visual feature vector as one token, beside log-mel segments or alone."""
from __future__ import annotations

import pytest
import torch

from mmer.config import Config
from mmer.models.build import build_model
from mmer.models.fusion import FUSIONS


def tiny_model_cfg(fusion: str, modalities: list[str]) -> Config:
    cfg = Config()
    cfg.model.fusion, cfg.model.modalities = fusion, modalities
    cfg.model.d_model, cfg.model.n_heads, cfg.model.embed_dim, cfg.model.dropout = 16, 2, 8, 0.0
    cfg.model.audio_encoder, cfg.model.audio_width = "resnet18", 4
    return cfg


@pytest.mark.parametrize("fusion", FUSIONS)
@pytest.mark.parametrize("visual_shape", [(35,), (4, 35)])   # one token, or a short sequence
def test_every_fusion_runs_with_logmel_segments_and_a_visual_token(fusion, visual_shape):
    torch.manual_seed(0)
    shapes = {"logmel": (6, 1, 16, 12), "visual": visual_shape}
    model = build_model(tiny_model_cfg(fusion, ["audio", "visual"]), shapes, n_classes=8)
    batch = {k: torch.randn(3, *s) for k, s in shapes.items()}
    out = model(batch)
    assert out.embedding.shape == (3, 8) and out.logits.shape == (3, 8)
    out.logits.pow(2).sum().backward()
    visual_grad = [p.grad for n, p in model.named_parameters() if n.startswith("encoders.visual")]
    audio_grad = [p.grad for n, p in model.named_parameters() if n.startswith("encoders.audio.cnn")]
    assert all(g is not None and g.abs().sum() > 0 for g in visual_grad + audio_grad)
    model.eval()   # the visual input really changes the prediction
    changed = dict(batch, visual=batch["visual"] + 3.0)
    assert not torch.allclose(model(batch).logits, model(changed).logits)


@pytest.mark.parametrize("fusion", FUSIONS)
def test_every_fusion_runs_with_the_visual_vector_alone(fusion):
    torch.manual_seed(0)
    model = build_model(tiny_model_cfg(fusion, ["visual"]), {"visual": (35,)}, n_classes=8)
    out = model({"visual": torch.randn(5, 35)})
    assert out.logits.shape == (5, 8) and torch.isfinite(out.embedding).all()
