"""Seeding of every random source a training run touches.

A run is made reproducible, and resumable to the same result, by reseeding at the
start of every epoch from ``(seed, epoch)`` rather than by saving generator states:
epoch ``e`` then draws the same numbers whether the run got there in one go or was
resumed from ``last.pt``. Python's ``random``, numpy's global generator (used by
pytorch-metric-learning's samplers and miners) and torch's are all covered.
"""
from __future__ import annotations

import logging
import os
import random

import numpy as np
import torch

log = logging.getLogger(__name__)

# Large odd constant: spreads (seed, stream) pairs over the 32-bit seed space.
_MIX = 0x9E3779B1


def derive_seed(seed: int, *stream: int) -> int:
    """A 32-bit seed for sub-stream `stream` of `seed` (e.g. ``derive_seed(seed, epoch)``)."""
    value = int(seed) & 0xFFFFFFFF
    for part in stream:
        value = (value * _MIX + int(part) + 1) & 0xFFFFFFFF
        value ^= value >> 16
    return value


def seed_everything(seed: int) -> None:
    """Seed ``random``, numpy's global generator and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed & 0xFFFFFFFF)
    torch.manual_seed(seed)


def set_deterministic(enabled: bool) -> None:
    """Ask torch for deterministic kernels (slower; errors on ops that have none).

    cuBLAS needs ``CUBLAS_WORKSPACE_CONFIG`` set for deterministic matmuls.
    """
    if enabled:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(enabled, warn_only=False)
    torch.backends.cudnn.deterministic = enabled
    torch.backends.cudnn.benchmark = not enabled


def worker_init_fn(worker_id: int) -> None:
    """DataLoader worker seeding: derive numpy/random seeds from torch's per-worker seed."""
    base = torch.initial_seed() & 0xFFFFFFFF
    random.seed(base)
    np.random.seed(base)


def make_generator(seed: int) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded with `seed` (for DataLoaders and samplers)."""
    gen = torch.Generator()
    gen.manual_seed(seed)
    return gen
