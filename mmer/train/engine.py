"""One training epoch, and embedding a dataset with a trained model."""
from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from tqdm import tqdm

from mmer.errors import TrainingStopped
from mmer.inputs.datasets import mixup_batch
from mmer.losses import EmotionLoss

log = logging.getLogger(__name__)

_NOT_INPUTS = ("label", "index")


class NonFiniteLossError(TrainingStopped):
    """The loss became NaN or infinite; training stops instead of writing garbage."""


def autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA, nothing elsewhere."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def split_batch(batch: Mapping[str, Any], device: torch.device,
                tasks: Iterable[str] = ()) -> tuple[dict[str, Tensor], dict[str, Tensor], Tensor | None]:
    """(model inputs, targets, triplet indices) of a collated batch, on `device`.

    A TripletDataset batch ``{"anchor", "positive", "negative"}`` (B each) becomes one
    batch of 3B with indices (0..B-1, B..2B-1, 2B..3B-1) for the triplet loss.
    """
    tasks = list(tasks)
    if "anchor" in batch:
        parts = [batch[k] for k in ("anchor", "positive", "negative")]
        b = len(parts[0]["label"])
        merged = {k: torch.cat([p[k] for p in parts]) for k in parts[0] if k != "index"}
        idx = torch.arange(b, device=device)
        inputs, targets, _ = split_batch(merged, device, tasks)
        return inputs, targets, (idx, idx + b, idx + 2 * b)
    targets = {"label": batch["label"].to(device)}
    for task in tasks:
        targets[task] = batch[task].to(device)
    skip = set(_NOT_INPUTS) | set(tasks)
    inputs = {k: v.to(device, non_blocking=True) for k, v in batch.items() if k not in skip}
    return inputs, targets, None


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


@torch.no_grad()
def embed(model: nn.Module, loader: Iterable[Mapping[str, Any]], *, device: torch.device,
          tasks: Iterable[str] = ()) -> dict[str, np.ndarray]:
    """Run `model` in eval mode over `loader` (unshuffled): embedding (N, E), logits (N, K),
    labels (N,), and ``extra_logits/<task>`` (N, K_task) for each task the model has."""
    model.eval()
    out: dict[str, list[np.ndarray]] = {"embedding": [], "logits": [], "labels": []}
    tasks = list(tasks)
    for batch in loader:
        inputs, targets, _ = split_batch(batch, device, tasks)
        with autocast(device):
            result = model(inputs)
        out["embedding"].append(result.embedding.float().cpu().numpy())
        out["logits"].append(result.logits.float().cpu().numpy())
        out["labels"].append(targets["label"].cpu().numpy())
        for task, logits in result.extra_logits.items():
            out.setdefault(f"extra_logits/{task}", []).append(logits.float().cpu().numpy())
    return {k: np.concatenate(v) for k, v in out.items()}
