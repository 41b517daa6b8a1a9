"""One training epoch (batches split and autocast by :mod:`mmer.models.forward`)."""
from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from mmer.errors import TrainingStopped
from mmer.inputs.datasets import mixup_batch
from mmer.losses import EmotionLoss
from mmer.models.forward import autocast, split_batch

log = logging.getLogger(__name__)


class NonFiniteLossError(TrainingStopped):
    """The loss became NaN or infinite; training stops instead of writing garbage."""


def train_one_epoch(model: nn.Module, loader: Iterable[Mapping[str, Any]], loss_fn: EmotionLoss,
                    optimizer: torch.optim.Optimizer, *, device: torch.device, epoch: int,
                    grad_clip: float = 0.0, mixup_alpha: float = 0.0,
                    step_fn: Callable[[], None] | None = None) -> dict[str, float]:
    """Train for one pass over `loader`; returns the mean of each loss part and clips/s.

    `step_fn` (e.g. a per-step LR scheduler's ``step``) runs after every optimizer step.
    Mixup (``mixup_alpha`` > 0) applies to sampled batches, not to given triplets.
    Raises :class:`NonFiniteLossError` on a NaN/inf loss, naming the epoch and step.
    """
    model.train()
    sums: dict[str, float] = {}
    n_items, start = 0, time.perf_counter()
    bar = tqdm(loader, desc=f"epoch {epoch}", leave=False, dynamic_ncols=True)
    tasks = list(loss_fn.extra_weights)
    for step, batch in enumerate(bar):
        inputs, targets, triplets = split_batch(batch, device, tasks)
        mix = None
        if mixup_alpha > 0 and triplets is None:
            inputs, lam, perm = mixup_batch(inputs, mixup_alpha)
            mix = (lam, perm)
        with autocast(device):
            output = model(inputs)
        parts = loss_fn(output, targets, indices_tuple=triplets, mix=mix)
        loss = parts["loss"]
        if not torch.isfinite(loss):
            values = {k: float(v.detach()) for k, v in parts.items()}
            raise NonFiniteLossError(f"non-finite loss at epoch {epoch}, step {step}: {values}; "
                                     f"lower train.lr or check the inputs")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip > 0:
            nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        optimizer.step()
        if step_fn is not None:
            step_fn()
        b = len(targets["label"])
        n_items += b
        for k, v in parts.items():
            sums[k] = sums.get(k, 0.0) + float(v.detach()) * b
        elapsed = time.perf_counter() - start
        bar.set_postfix({"loss": f"{float(loss.detach()):.4f}",
                         "items/s": f"{n_items / elapsed:.1f}" if elapsed > 0 else "-"})
    seconds = time.perf_counter() - start
    means = {k: v / max(n_items, 1) for k, v in sums.items()}
    means["clips_per_s"] = n_items / seconds if seconds > 0 else math.nan
    return means
