"""Training data over cached feature entries: datasets, samplers, log-mel augmentation.

Entries are the cache dicts of docs/design.md, held in memory. Randomness is drawn
from generators seeded by ``(seed, epoch, index)``, so an item looks the same in an
uninterrupted run and in one resumed from a checkpoint, with or without workers.
Augmentation (SpecAugment-style masks, random time crop) touches only ``"logmel"`` and
only in training mode; cached views (``"video_views"``, ``features.train_views``;
``"audio_views"``, ``backbone.audio_views``) replace ``"video"`` / ``"audio"`` by one of the
clip's 1 + K views per epoch in training mode only; mixup (:func:`mixup_batch`) mixes whole batches in the engine.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from pytorch_metric_learning.samplers import MPerClassSampler
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, default_collate

from mmer.config import AugmentConfig, TrainConfig
from mmer.errors import BadInput
from mmer.seed import derive_seed, make_generator, worker_init_fn

log = logging.getLogger(__name__)

# The generator streams of the per-epoch view draws (derive_seed's last argument).
_VIEW_STREAM = {"video": 2, "audio": 3}


class FeatureDataset(Dataset):
    """Cache entries as training items: ``{key: float32 tensor, "label", "index", task...}``.

    `keys`: the batch keys the model reads (e.g. ``["video", "audio"]``); every entry
    must have them with one shape per key. `extra_targets`: names of integer targets
    read from ``entry["extra"]`` (e.g. ``"sentiment"``).
    """

    def __init__(self, entries: Sequence[Mapping[str, Any]], keys: Sequence[str], *,
                 augment: AugmentConfig | None = None, seed: int = 0,
                 extra_targets: Sequence[str] = ()) -> None:
        if not entries:
            raise BadInput("FeatureDataset: no entries")
        self.keys = list(keys)
        self.inputs = {k: _stack(entries, k) for k in self.keys}
        self.labels = torch.tensor([int(e["label"]) for e in entries], dtype=torch.long)
        self.targets = {t: torch.tensor([int(e["extra"][t]) for e in entries], dtype=torch.long)
                        for t in extra_targets}
        # Cached training views of the video (K, S, C, h, w) and of the audio (K, S, D) per
        # entry, when all entries have them.
        self.views, self.audio_views = (
            _stack(entries, f"{k}_views") if k in self.keys and all(e.get(f"{k}_views") is not None for e in entries)
            else None for k in ("video", "audio"))
        self.clip_ids = [str(e["clip_id"]) for e in entries]
        self.speakers = [str(e["speaker"]) for e in entries]
        self.augment = augment
        self.seed = seed
        self.epoch = 0
        self.training = False

    def train(self, mode: bool = True) -> FeatureDataset:
        self.training = mode
        return self

    def eval(self) -> FeatureDataset:
        return self.train(False)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def view_of(self, index: int, key: str = "video") -> int:
        """The view of input `key` (video or audio) item `index` reads this epoch in training:
        0 the unchanged one, k the k-th cached view; uniform over the 1 + K, seeded by
        (seed, epoch, index) and the key."""
        views = self.views if key == "video" else self.audio_views
        if views is None:
            return 0
        gen = make_generator(derive_seed(self.seed, self.epoch, index, _VIEW_STREAM[key]))
        return int(torch.randint(views.shape[1] + 1, (1,), generator=gen))

    @property
    def input_shapes(self) -> dict[str, tuple[int, ...]]:
        """{key: per-item shape}, e.g. ``{"video": (6, 2048, 4, 4), "audio": (6, 512)}``."""
        return {k: tuple(v.shape[1:]) for k, v in self.inputs.items()}

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict[str, Any]:
        # Features as float32; token ids and masks keep their integer or bool type.
        item: dict[str, Any] = {k: (v[index].float() if v.is_floating_point() else v[index])
                                for k, v in self.inputs.items()}
        for key, views in (("video", self.views), ("audio", self.audio_views)):
            view = self.view_of(index, key) if self.training and views is not None else 0
            if view:
                item[key] = views[index, view - 1].float()
        if self.training and self.augment is not None and "logmel" in item:
            gen = make_generator(derive_seed(self.seed, self.epoch, index))
            item["logmel"] = augment_logmel(item["logmel"], self.augment, gen)
        item["label"] = self.labels[index]
        item["index"] = index
        for task, values in self.targets.items():
            item[task] = values[index]
        return item


class TripletDataset(Dataset):
    """(anchor, positive, negative) items by class, drawn from `base` alone.

    `base` holds only the training actors' clips, so positives and negatives never come
    from validation or test actors. Item i has anchor i, a random other clip of its class
    (itself when it is its class's only clip) and a random clip of another class, from a
    generator seeded by ``(seed, epoch, i)``.
    """

    def __init__(self, base: FeatureDataset, seed: int = 0) -> None:
        self.base = base
        self.seed = seed
        self.by_class = {int(c): torch.nonzero(base.labels == c).flatten() for c in base.labels.unique()}
        if len(self.by_class) < 2:
            raise BadInput("TripletDataset needs at least two classes in the training set")

    def set_epoch(self, epoch: int) -> None:
        self.base.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.base)

    def triplet(self, index: int) -> tuple[int, int, int]:
        gen = make_generator(derive_seed(self.seed, self.base.epoch, index, 1))
        label = int(self.base.labels[index])
        same = self.by_class[label]
        others = same[same != index]
        pos = int(others[torch.randint(len(others), (1,), generator=gen)]) if len(others) else index
        negatives = torch.nonzero(self.base.labels != label).flatten()
        neg = int(negatives[torch.randint(len(negatives), (1,), generator=gen)])
        return index, pos, neg

    def __getitem__(self, index: int) -> dict[str, dict[str, Any]]:
        a, p, n = self.triplet(index)
        return {"anchor": self.base[a], "positive": self.base[p], "negative": self.base[n]}


def augment_logmel(x: Tensor, cfg: AugmentConfig, gen: torch.Generator) -> Tensor:
    """Random time crop then SpecAugment masks on (S, 1, M, T) segments; same shape out."""
    if cfg.random_crop and cfg.crop_fraction > 0:
        x = random_time_crop(x, cfg.crop_fraction, gen)
    if cfg.time_masks or cfg.freq_masks:
        x = spec_augment(x, cfg, gen)
    return x


def spec_augment(x: Tensor, cfg: AugmentConfig, gen: torch.Generator) -> Tensor:
    """Per segment, ``time_masks`` time and ``freq_masks`` mel bands of width
    U[0, width] set to 0, the per-clip mean of the normalised log-mel. (S, 1, M, T)."""
    x = x.clone()
    s, _, n_mels, n_frames = x.shape
    for seg in range(s):
        for count, width, size, axis in ((cfg.time_masks, cfg.time_mask_width, n_frames, 3),
                                         (cfg.freq_masks, cfg.freq_mask_width, n_mels, 2)):
            for _ in range(count):
                w = int(torch.randint(0, min(width, size) + 1, (1,), generator=gen))
                start = int(torch.randint(0, size - w + 1, (1,), generator=gen))
                x[seg].narrow(axis - 1, start, w).zero_()
    return x


def random_time_crop(x: Tensor, fraction: float, gen: torch.Generator) -> Tensor:
    """Pad each (1, M, T) segment by ``round(fraction*T)`` frames of its minimum on both
    sides and cut T frames at a random offset (a random time shift). (S, 1, M, T)."""
    s, _, _, n_frames = x.shape
    pad = int(round(fraction * n_frames))
    if pad == 0:
        return x
    out = torch.empty_like(x)
    for seg in range(s):
        floor = x[seg].min()
        padded = torch.nn.functional.pad(x[seg], (pad, pad), value=float(floor))
        start = int(torch.randint(0, 2 * pad + 1, (1,), generator=gen))
        out[seg] = padded[..., start:start + n_frames]
    return out


def mixup_batch(inputs: dict[str, Tensor], alpha: float) -> tuple[dict[str, Tensor], float, Tensor]:
    """Mix every input tensor of a batch with a shuffled copy: lam*x + (1-lam)*x[perm].

    lam ~ Beta(alpha, alpha) folded to lam >= 0.5 so the original item stays dominant
    (its label is the one the metric loss uses). Draws from torch's global generator,
    which training reseeds every epoch. Returns (mixed inputs, lam, perm).
    """
    first = next(iter(inputs.values()))
    lam = float(torch.distributions.Beta(alpha, alpha).sample())
    lam = max(lam, 1.0 - lam)
    perm = torch.randperm(first.shape[0]).to(first.device)
    mixed = {k: lam * v + (1.0 - lam) * v[perm] for k, v in inputs.items()}
    return mixed, lam, perm


def train_loader(dataset: FeatureDataset, cfg: TrainConfig, *, seed: int, epoch: int) -> DataLoader:
    """The training DataLoader of epoch `epoch`, sampler per ``train.sampler``.

    ``m_per_class``: PML's MPerClassSampler (m clips of each of batch_size/m classes per
    batch; the loss's online miner picks triplets). ``triplet``: TripletDataset items in
    a shuffled order. ``shuffle``: the clips in a shuffled order (natural class
    proportions). ``length``: shuffled batches of texts of similar token count
    (:class:`LengthBatches`; a trained text encoder pads far less). All draw from
    generators seeded by (seed, epoch).
    """
    dataset.train().set_epoch(epoch)
    epoch_seed = derive_seed(seed, epoch)
    common = {"num_workers": cfg.num_workers, "worker_init_fn": worker_init_fn,
              "generator": make_generator(epoch_seed), "drop_last": False, "collate_fn": trim_collate}
    if cfg.sampler == "triplet":
        triplets = TripletDataset(dataset, seed=seed)
        triplets.set_epoch(epoch)
        return DataLoader(triplets, batch_size=cfg.batch_size, shuffle=True, **common)
    if cfg.sampler == "m_per_class":
        sampler = _m_per_class(dataset, cfg, epoch_seed)
        return DataLoader(dataset, batch_size=cfg.batch_size, sampler=sampler, **common)
    if cfg.sampler == "shuffle":
        return DataLoader(dataset, batch_size=cfg.batch_size, shuffle=True, **common)
    if cfg.sampler == "length":
        batches = LengthBatches(token_lengths(dataset), cfg.batch_size, seed=epoch_seed)
        del common["generator"], common["drop_last"]
        return DataLoader(dataset, batch_sampler=batches, **common)
    raise BadInput(f"unknown train.sampler {cfg.sampler!r}; valid: triplet, m_per_class, shuffle, "
                   "length")


def token_lengths(dataset: FeatureDataset) -> Tensor:
    """Real tokens of each item (the ``length`` sampler needs token inputs)."""
    mask = dataset.inputs.get("attention_mask")
    if mask is None:
        raise BadInput("train.sampler length groups texts by token count; this model reads no "
                       "tokens (text.finetune or text.encoder scratch); use shuffle")
    return mask.sum(1)


class LengthBatches:
    """Shuffled batches of items of similar length, so a padded batch wastes little.

    The items in a random order, cut into pools of ``pool_batches`` x `batch_size`; each
    pool sorted by length and cut into batches; then the batches in a random order. Every
    item once; the order is a function of `seed` alone (the loader makes one sampler per
    epoch from the (seed, epoch) seed).
    """

    def __init__(self, lengths: Tensor, batch_size: int, *, seed: int, pool_batches: int = 50) -> None:
        lengths = torch.as_tensor(lengths)
        gen = make_generator(seed)
        order = torch.randperm(len(lengths), generator=gen)
        pool_size = batch_size * pool_batches
        batches: list[list[int]] = []
        for start in range(0, len(order), pool_size):
            pool = order[start:start + pool_size]
            pool = pool[torch.argsort(lengths[pool], stable=True)]
            batches += [pool[i:i + batch_size].tolist() for i in range(0, len(pool), batch_size)]
        self.batches = [batches[i] for i in torch.randperm(len(batches), generator=gen).tolist()]

    def __iter__(self):
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


def eval_loader(dataset: FeatureDataset, batch_size: int, num_workers: int = 0) -> DataLoader:
    """In-order, unaugmented batches of `dataset` (put in eval mode)."""
    dataset.eval()
    return DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers,
                      worker_init_fn=worker_init_fn, generator=make_generator(0),
                      collate_fn=trim_collate)


def trim_collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Default collation; token inputs are then cut to the batch's longest text (B, T_batch)."""
    batch = default_collate(items)
    if "attention_mask" in batch:
        width = max(int(batch["attention_mask"].sum(1).max()), 1)
        for key in ("input_ids", "attention_mask", "trunk_states"):
            if key in batch:
                batch[key] = batch[key][:, :width]
    return batch


class SeededMPerClassSampler(MPerClassSampler):
    """PML's MPerClassSampler drawing from its own seed instead of numpy's global state.

    PML draws from ``numpy.random``'s global generator; here that generator is seeded
    with `seed` for the draw and restored afterwards, so the order is a function of
    the seed alone.
    """

    def __init__(self, labels, m: int, *, batch_size: int, length: int, seed: int) -> None:
        super().__init__(labels, m, batch_size=batch_size, length_before_new_iter=length)
        self.seed = seed

    def __iter__(self):
        saved = np.random.get_state()
        np.random.seed(self.seed)
        try:
            order = list(super().__iter__())
        finally:
            np.random.set_state(saved)
        return iter(order)


def _m_per_class(dataset: FeatureDataset, cfg: TrainConfig, seed: int) -> SeededMPerClassSampler:
    n_classes = len(dataset.labels.unique())
    m, batch = cfg.m_per_class, cfg.batch_size
    if batch % m or m * n_classes < batch:
        raise BadInput(f"train.sampler m_per_class: batch_size {batch} must be a multiple of "
                         f"m_per_class {m} and at most m_per_class x {n_classes} training classes")
    return SeededMPerClassSampler(dataset.labels.numpy(), m, batch_size=batch,
                                  length=max(len(dataset), batch), seed=seed)


def _stack(entries: Sequence[Mapping[str, Any]], key: str) -> Tensor:
    shape = None
    tensors = []
    for e in entries:
        if key not in e or e[key] is None:
            raise BadInput(f"cache entry {e.get('clip_id')} has no {key!r} features")
        t = torch.as_tensor(e[key])
        if shape is None:
            shape = t.shape
        elif t.shape != shape:
            raise BadInput(f"cache entry {e.get('clip_id')}: {key!r} has shape {tuple(t.shape)}, "
                             f"the others {tuple(shape)}")
        tensors.append(t)
    return torch.stack(tensors)
