"""FeatureDataset, TripletDataset, samplers and log-mel augmentation on fabricated entries."""
from __future__ import annotations

from collections import Counter

import pytest
import torch

from mmer.config import AugmentConfig, TrainConfig
from mmer.inputs.datasets import (
    FeatureDataset,
    TripletDataset,
    eval_loader,
    mixup_batch,
    random_time_crop,
    spec_augment,
    train_loader,
)
from mmer.seed import make_generator


def fake_entries(n_per_class=4, classes=4, actors=(1, 2), seed=0):
    gen = torch.Generator().manual_seed(seed)
    entries = []
    for c in range(classes):
        for i in range(n_per_class):
            actor = actors[i % len(actors)]
            entries.append({
                "clip_id": f"01-01-0{c + 1}-01-01-0{i + 1}-{actor:02d}", "label": c,
                "speaker": str(actor), "group": f"g{c}{i}", "extra": {"sentiment": c % 3},
                "audio": torch.randn(3, 10, generator=gen).half(),
                "logmel": torch.randn(3, 1, 16, 20, generator=gen).half(),
                "meta": {},
            })
    return entries


AUG = AugmentConfig(time_masks=2, time_mask_width=5, freq_masks=2, freq_mask_width=4, random_crop=True)


def test_items_shapes_and_targets():
    ds = FeatureDataset(fake_entries(), ["audio", "logmel"], extra_targets=["sentiment"])
    assert len(ds) == 16
    assert ds.input_shapes == {"audio": (3, 10), "logmel": (3, 1, 16, 20)}
    item = ds[5]
    assert item["audio"].dtype == torch.float32 and int(item["label"]) == 1
    assert int(item["sentiment"]) == 1 and item["index"] == 5


def test_augmentation_only_in_training_mode_and_seeded():
    ds = FeatureDataset(fake_entries(), ["logmel"], augment=AUG, seed=3)
    raw = ds.eval()[2]["logmel"]
    torch.testing.assert_close(raw, fake_entries()[2]["logmel"].float())
    torch.testing.assert_close(ds.eval()[2]["logmel"], raw)  # evaluation: untouched, every time
    ds.train().set_epoch(1)
    a = ds[2]["logmel"]
    assert a.shape == raw.shape and not torch.equal(a, raw)
    torch.testing.assert_close(ds[2]["logmel"], a)  # same (seed, epoch, index) -> same draw
    ds.set_epoch(2)
    assert not torch.equal(ds[2]["logmel"], a)
    assert torch.equal(eval_loader(ds, 4).dataset[2]["logmel"], raw)  # eval loader switches it off


def test_spec_augment_masks_bands_of_bounded_width():
    cfg = AugmentConfig(time_masks=1, time_mask_width=5, freq_masks=1, freq_mask_width=3)
    x = torch.randn(4, 1, 16, 20) + 10.0  # no natural zeros
    y = spec_augment(x, cfg, make_generator(0))
    assert y.shape == x.shape
    for seg in range(4):
        zero = y[seg, 0] == 0
        full_cols = int(zero.all(dim=0).sum())   # masked frames
        full_rows = int(zero.all(dim=1).sum())   # masked mel bands
        assert full_cols <= 5 and full_rows <= 3
        kept = ~zero
        torch.testing.assert_close(y[seg, 0][kept], x[seg, 0][kept])


def test_random_time_crop_is_a_padded_shift():
    x = torch.arange(2 * 4 * 10, dtype=torch.float32).reshape(2, 1, 4, 10)
    y = random_time_crop(x, 0.2, make_generator(1))
    assert y.shape == x.shape
    for seg in range(2):
        floor = x[seg].min()
        padded = torch.nn.functional.pad(x[seg], (2, 2), value=float(floor))
        assert any(torch.equal(y[seg], padded[..., s:s + 10]) for s in range(5))


def test_triplets_come_from_the_training_set_by_class():
    train = FeatureDataset(fake_entries(actors=(1, 2)), ["audio"])
    triplets = TripletDataset(train, seed=0)
    train_ids = set(train.clip_ids)
    for i in range(len(triplets)):
        a, p, n = triplets.triplet(i)
        assert a == i and p != i
        assert train.labels[p] == train.labels[a] != train.labels[n]
        item = triplets[i]
        assert {train.clip_ids[item[k]["index"]] for k in ("anchor", "positive", "negative")} <= train_ids
    assert [triplets.triplet(i) for i in range(16)] == [TripletDataset(train, 0).triplet(i) for i in range(16)]
    train.set_epoch(1)
    assert [triplets.triplet(i) for i in range(16)] != [TripletDataset(train, 1).triplet(i) for i in range(16)]


def test_m_per_class_loader_batches_and_is_seeded():
    cfg = TrainConfig(batch_size=8, m_per_class=2, sampler="m_per_class")
    ds = FeatureDataset(fake_entries(), ["audio"])
    first = [b["index"].tolist() for b in train_loader(ds, cfg, seed=0, epoch=0)]
    for batch in train_loader(ds, cfg, seed=0, epoch=0):
        assert set(Counter(batch["label"].tolist()).values()) == {2}
    assert first == [b["index"].tolist() for b in train_loader(ds, cfg, seed=0, epoch=0)]
    assert first != [b["index"].tolist() for b in train_loader(ds, cfg, seed=0, epoch=1)]
    with pytest.raises(ValueError, match="multiple of m_per_class"):
        train_loader(ds, TrainConfig(batch_size=6, m_per_class=4), seed=0, epoch=0)


def test_triplet_loader_yields_anchor_positive_negative():
    cfg = TrainConfig(batch_size=4, sampler="triplet")
    batch = next(iter(train_loader(FeatureDataset(fake_entries(), ["audio"]), cfg, seed=0, epoch=0)))
    assert set(batch) == {"anchor", "positive", "negative"}
    assert torch.equal(batch["anchor"]["label"], batch["positive"]["label"])
    assert not (batch["anchor"]["label"] == batch["negative"]["label"]).any()


def test_mixup_keeps_the_original_dominant():
    torch.manual_seed(0)
    x = {"audio": torch.randn(6, 3, 10), "visual": torch.randn(6, 35)}
    mixed, lam, perm = mixup_batch(x, alpha=0.4)
    assert 0.5 <= lam <= 1.0
    for k in x:
        assert mixed[k].shape == x[k].shape
        torch.testing.assert_close(mixed[k], lam * x[k] + (1 - lam) * x[k][perm])


def test_bad_entries_are_named():
    entries = fake_entries()
    entries[3]["audio"] = torch.zeros(4, 10)
    with pytest.raises(ValueError, match=entries[3]["clip_id"]):
        FeatureDataset(entries, ["audio"])
    with pytest.raises(ValueError, match="has no 'video'"):
        FeatureDataset(fake_entries(), ["video"])
