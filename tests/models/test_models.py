"""Attention encoders, fusions and heads on tiny fabricated inputs."""
from __future__ import annotations

import pytest
import torch

from mmer.config import Config
from mmer.models.attention import CrossAttentionBlock, MapSequenceEncoder, make_encoder
from mmer.models.build import build_model, input_keys
from mmer.models.fusion import FUSIONS, make_fusion

B = 3


def tiny_cfg(fusion: str = "cross_attention", modalities=("audio", "video"), **model) -> Config:
    cfg = Config()
    cfg.model.fusion = fusion
    cfg.model.modalities = list(modalities)
    cfg.model.d_model, cfg.model.n_heads, cfg.model.embed_dim = 16, 2, 8
    for k, v in model.items():
        setattr(cfg.model, k, v)
    return cfg


def fake_batch(shapes: dict[str, tuple[int, ...]], seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {k: torch.randn(B, *s, generator=gen) for k, s in shapes.items()}


def backward_all(out) -> None:
    """A loss touching every output with random weights (a plain sum of a unit vector's
    entries can have an exactly zero gradient)."""
    gen = torch.Generator().manual_seed(1)
    loss = (out.embedding * torch.randn(out.embedding.shape, generator=gen)).sum()
    loss = loss + (out.logits * torch.randn(out.logits.shape, generator=gen)).sum()
    for logits in out.extra_logits.values():
        loss = loss + (logits * torch.randn(logits.shape, generator=gen)).sum()
    loss.backward()


def params_without_grad(model) -> list[str]:
    return [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]


AV_SHAPES = {"video": (6, 24, 2, 2), "audio": (6, 20)}
AUDIO_VISUAL = {"audio": (6, 20), "visual": (35,)}


@pytest.mark.parametrize("fusion", FUSIONS)
@pytest.mark.parametrize("shapes,modalities", [
    (AV_SHAPES, ("audio", "video")),                       # map sequence + vector sequence
    (AUDIO_VISUAL, ("audio", "visual")),                   # segments + ONE visual token (issue 8)
    ({"audio": (6, 20), "video": (6, 12), "text": (10,)}, ("text", "audio", "video")),  # 3 modalities
])
def test_every_parameter_gets_a_gradient(fusion, shapes, modalities):
    torch.manual_seed(0)
    model = build_model(tiny_cfg(fusion, modalities), shapes, n_classes=5)
    out = model(fake_batch(shapes))
    assert out.embedding.shape == (B, 8) and out.logits.shape == (B, 5)
    torch.testing.assert_close(out.embedding.norm(dim=1), torch.ones(B))
    backward_all(out)
    assert params_without_grad(model) == []


def test_single_vector_cross_attention_is_a_real_gate():
    # With one context token the zero-attention slot lets queries weigh it: the
    # query/key projections must receive gradient, not just the value projection.
    torch.manual_seed(0)
    block = CrossAttentionBlock(16, 2, dropout=0.0)
    out = block(torch.randn(2, 6, 16), torch.randn(2, 1, 16))
    out.pow(2).sum().backward()
    q_grad = block.attn.in_proj_weight.grad[:16]
    k_grad = block.attn.in_proj_weight.grad[16:32]
    assert q_grad.abs().sum() > 0 and k_grad.abs().sum() > 0


def test_sentiment_head_for_meld_text():
    model = build_model(tiny_cfg("concat", ("text",)), {"text": (12,)}, n_classes=7,
                        extra_classes={"sentiment": 3})
    out = model(fake_batch({"text": (12,)}))
    assert out.logits.shape == (B, 7) and out.extra_logits["sentiment"].shape == (B, 3)


@pytest.mark.parametrize("modalities", [("audio",), ("video",)])
def test_modalities_switch_off_and_unused_inputs_are_ignored(modalities):
    model = build_model(tiny_cfg("cross_attention", modalities), AV_SHAPES, n_classes=4).eval()
    assert list(model.encoders) == list(modalities)
    batch = fake_batch(AV_SHAPES)
    before = model(batch).logits
    unused = {"audio": "video", "video": "audio"}[modalities[0]]
    batch[unused] = batch[unused] + 100.0
    torch.testing.assert_close(model(batch).logits, before)
    batch[modalities[0]] = batch[modalities[0]] + 1.0
    assert not torch.allclose(model(batch).logits, before)


def test_end_to_end_audio_resnet_reads_logmel():
    cfg = tiny_cfg("concat", ("audio",), audio_encoder="resnet18", audio_width=4)
    assert input_keys(cfg.model) == {"audio": "logmel"}
    model = build_model(cfg, {"logmel": (3, 1, 32, 40)}, n_classes=8)
    assert any(n.startswith("encoders.audio.cnn.layer4") for n, _ in model.named_parameters())
    out = model(fake_batch({"logmel": (3, 1, 32, 40)}))
    backward_all(out)
    assert params_without_grad(model) == []


def test_map_encoder_attends_over_positions_then_snippets():
    enc = MapSequenceEncoder((5, 24, 3, 2), dim=16, n_heads=2, dropout=0.0).eval()
    x = torch.randn(2, 5, 24, 3, 2)
    assert enc(x).shape == (2, 5, 16)
    # Temporal attention mixes snippets: changing snippet 0 changes snippet 4's token.
    y = x.clone()
    y[:, 0] += 1.0
    assert not torch.allclose(enc(x)[:, 4], enc(y)[:, 4])


def test_late_fusion_weights_are_used():
    cfg = tiny_cfg("late", ("audio", "video"), late_weights=[1.0, 0.0], dropout=0.0)
    torch.manual_seed(0)
    model = build_model(cfg, AV_SHAPES, n_classes=4).eval()
    batch = fake_batch(AV_SHAPES)
    before = model(batch).logits
    batch["video"] = batch["video"] * 5 + 1  # video's head has weight 0
    torch.testing.assert_close(model(batch).logits, before)


def test_factories_reject_unknown_names_listing_valid_ones():
    with pytest.raises(ValueError, match="cross_attention, concat, late"):
        make_fusion("attention", modalities=["audio"], dim=8, n_heads=2, dropout=0.0)
    with pytest.raises(ValueError, match="audio, video, visual, text"):
        build_model(tiny_cfg(modalities=("audio", "speech")), AV_SHAPES, n_classes=3)
    with pytest.raises(ValueError, match=r"expected \(D,\), \(S, D\) or \(S, C, h, w\)"):
        make_encoder((2, 3, 4), 8, 2, 0.0)
    with pytest.raises(ValueError, match="late_weights has 1 values"):
        build_model(tiny_cfg("late", late_weights=[1.0]), AV_SHAPES, n_classes=3)


def test_missing_input_is_named():
    with pytest.raises(ValueError, match="need inputs"):
        build_model(tiny_cfg(modalities=("audio", "visual")), AV_SHAPES, n_classes=3)


def test_inputs_are_standardised_with_training_statistics():
    model = build_model(tiny_cfg(), AV_SHAPES, n_classes=3)
    gen = torch.Generator().manual_seed(0)
    train = {"video": 3.0 + 0.1 * torch.randn(20, *AV_SHAPES["video"], generator=gen),
             "audio": -2.0 + 5.0 * torch.randn(20, *AV_SHAPES["audio"], generator=gen)}
    model.fit_input_stats(train)
    video = model.norms["video"](train["video"])        # channels: axis 2 of (B, S, C, h, w)
    torch.testing.assert_close(video.mean(dim=(0, 1, 3, 4)), torch.zeros(24), atol=1e-4, rtol=0)
    torch.testing.assert_close(video.std(dim=(0, 1, 3, 4)), torch.ones(24), atol=1e-4, rtol=0)
    audio = model.norms["audio"](train["audio"])
    torch.testing.assert_close(audio.mean(dim=(0, 1)), torch.zeros(20), atol=1e-4, rtol=0)
    state = model.state_dict()  # checkpoints carry the statistics to evaluation
    assert torch.equal(state["norms.audio.mean"], train["audio"].mean(dim=(0, 1)))


def test_ensemble_averages_member_probabilities_and_joins_embeddings():
    torch.manual_seed(0)
    cfg = tiny_cfg("concat", ("audio", "visual"), ensemble=3, dropout=0.0)
    model = build_model(cfg, AUDIO_VISUAL, n_classes=5, extra_classes={"sentiment": 3}).eval()
    batch = fake_batch(AUDIO_VISUAL)
    with torch.no_grad():
        out = model(batch)
        alone = [member(batch) for member in model.members]
    assert len(out.members) == 3 and out.embedding.shape == (B, 3 * 8)
    # independently initialised members disagree
    assert not torch.allclose(alone[0].logits, alone[1].logits)
    mean_p = torch.stack([o.logits.softmax(1) for o in alone]).mean(0)
    torch.testing.assert_close(out.logits.softmax(1), mean_p)
    mean_s = torch.stack([o.extra_logits["sentiment"].softmax(1) for o in alone]).mean(0)
    torch.testing.assert_close(out.extra_logits["sentiment"].softmax(1), mean_s)
    # unit norm, and the cosine of joined embeddings is the members' mean cosine
    torch.testing.assert_close(out.embedding.norm(dim=1), torch.ones(B))
    mean_cos = torch.stack([o.embedding[0] @ o.embedding[1] for o in alone]).mean()
    torch.testing.assert_close(out.embedding[0] @ out.embedding[1], mean_cos)


def test_ensemble_loss_trains_each_member_as_if_alone():
    from mmer.losses import build_loss

    names = ["a", "b", "c"]
    cfg = tiny_cfg("concat", ("audio", "visual"), ensemble=2, dropout=0.0)
    cfg.loss.miner = "all"
    torch.manual_seed(0)
    model = build_model(cfg, AUDIO_VISUAL, n_classes=3)
    loss_fn = build_loss(cfg.loss, names)
    batch = fake_batch(AUDIO_VISUAL)
    targets = {"label": torch.tensor([0, 1, 0])}
    parts = loss_fn(model(batch), targets)
    parts["loss"].backward()
    for i, member in enumerate(model.members):
        twin = build_model(tiny_cfg("concat", ("audio", "visual"), dropout=0.0), AUDIO_VISUAL, n_classes=3)
        twin.load_state_dict(member.state_dict())
        alone = loss_fn(twin(batch), targets)
        alone["loss"].backward()
        for (name, p), (_, q) in zip(member.named_parameters(), twin.named_parameters(), strict=True):
            torch.testing.assert_close(p.grad, q.grad, msg=f"member {i}: {name}")
    single = [loss_fn(m(batch), targets) for m in model.members]
    torch.testing.assert_close(parts["loss"], single[0]["loss"] + single[1]["loss"])
    torch.testing.assert_close(parts["ce"], (single[0]["ce"] + single[1]["ce"]) / 2)


def test_ensemble_size_below_one_is_refused():
    with pytest.raises(ValueError, match="model.ensemble"):
        build_model(tiny_cfg("concat", ("audio",), ensemble=0), {"audio": (6, 20)}, n_classes=3)
