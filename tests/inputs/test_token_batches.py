"""Token inputs of a trained text encoder: one shape across parts, length-bucketed batches,
batches cut to the longest text."""
from __future__ import annotations

import torch

from mmer.config import TrainConfig
from mmer.features.tokenizer import WordTokenizer
from mmer.inputs.builder import with_tokens
from mmer.inputs.datasets import FeatureDataset, LengthBatches, train_loader, trim_collate


def _entries(texts: list[str], part: str) -> list[dict]:
    return [{"clip_id": f"{part}/{i}", "label": i % 2, "speaker": "Joey", "extra": {"text": t}}
            for i, t in enumerate(texts)]


def test_parts_with_shorter_texts_keep_the_token_shape() -> None:
    # Regression: ids were padded to each part's longest text, so a dev set whose longest
    # utterance was shorter than train's had another shape and was dropped whole.
    tok = WordTokenizer.build(["a b c d e f g h"], min_count=1)
    train = with_tokens(_entries(["a b c d e f g h", "a"], "train"), tok, 6)
    dev = with_tokens(_entries(["b c", "d"], "dev"), tok, 6)
    assert {tuple(e["input_ids"].shape) for e in train + dev} == {(6,)}
    assert dev[0]["attention_mask"].tolist() == [True, True, False, False, False, False]
    assert dev[0]["input_ids"][2:].tolist() == [tok.pad_id] * 4


def test_length_batches_cover_every_item_once_with_little_padding() -> None:
    lengths = torch.randint(1, 64, (1000,), generator=torch.Generator().manual_seed(0))
    sampler = LengthBatches(lengths, 32, seed=5, pool_batches=10)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 32
    assert sorted(i for b in batches for i in b) == list(range(1000))
    assert batches == list(LengthBatches(lengths, 32, seed=5, pool_batches=10))
    assert batches != list(LengthBatches(lengths, 32, seed=6, pool_batches=10))
    padded = sum(len(b) * int(lengths[b].max()) for b in batches)
    shuffled = sum(32 * int(lengths[i:i + 32].max()) for i in range(0, 1000, 32))
    assert padded < 0.6 * shuffled  # measured 1.12 x the real tokens vs 1.91 x


def test_length_sampler_through_the_train_loader() -> None:
    tok = WordTokenizer.build(["x y z w v u t s"], min_count=1)
    texts = [" ".join("xyzwvuts"[: 1 + i % 8]) for i in range(40)]
    data = FeatureDataset(with_tokens(_entries(texts, "train"), tok, 8), ["input_ids", "attention_mask"])
    loader = train_loader(data, TrainConfig(sampler="length", batch_size=8), seed=0, epoch=0)
    widths = [b["input_ids"].shape[1] for b in loader]
    assert sum(len(b["label"]) for b in loader) == 40 and len(widths) == 5
    assert sorted(widths) != [8] * 5  # batches are cut to their own longest text


def test_trim_collate_cuts_token_batches_to_the_longest_text() -> None:
    ids = torch.tensor([[5, 6, 0, 0, 0], [7, 8, 9, 0, 0]])
    items = [{"input_ids": ids[i], "attention_mask": ids[i] != 0, "label": torch.tensor(i)} for i in (0, 1)]
    batch = trim_collate(items)
    assert batch["input_ids"].tolist() == [[5, 6, 0], [7, 8, 9]]
    assert batch["attention_mask"].shape == (2, 3) and batch["label"].tolist() == [0, 1]
