"""Model forward passes shared by training, evaluation and prediction: a collated batch
split into model inputs and targets, bf16 autocast on CUDA, and embedding a dataset."""
from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

_NOT_INPUTS = ("label", "index")


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
