"""The torch device a stage runs on, from a config value (``auto``, ``cpu`` or ``cuda``)."""
from __future__ import annotations

import logging
import os
from collections.abc import Mapping

import torch

from mmer.errors import ConfigError

log = logging.getLogger(__name__)

# Torch intra-op threads when neither MMER_THREADS nor OMP_NUM_THREADS says otherwise.
# Measured with bench/ on the 2-core shared machine (docs/scaling.md, "Threads"): one thread was
# as fast or faster for the small models, and extraction's decode workers are the
# parallelism there; more threads mostly wait on each other.
DEFAULT_THREADS = 1


def choose_threads(environ: Mapping[str, str] | None = None) -> tuple[int, str]:
    """(torch intra-op thread count, where it came from): ``MMER_THREADS``, then
    ``OMP_NUM_THREADS``, then :data:`DEFAULT_THREADS` (capped at the CPU count)."""
    environ = os.environ if environ is None else environ
    for var in ("MMER_THREADS", "OMP_NUM_THREADS"):
        value = environ.get(var, "").strip()
        if value:
            if not value.isdigit() or int(value) < 1:
                raise ConfigError(f"{var}={value!r}: expected a positive whole number of threads")
            return int(value), var
    return min(DEFAULT_THREADS, os.cpu_count() or 1), "default"


def apply_threads() -> int:
    """Set torch's intra-op thread count by :func:`choose_threads` and log it (at start)."""
    n, source = choose_threads()
    torch.set_num_threads(n)
    log.info("torch threads: %d (%s; set MMER_THREADS to change)", n, source)
    return n


def resolve_device(name: str) -> torch.device:
    """``auto``: CUDA when torch sees a GPU, else the CPU; ``cuda`` without a GPU is refused."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name not in ("cpu", "cuda"):
        raise ConfigError(f"device: expected cpu, cuda or auto, got {name!r}")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device: cuda was asked for but torch sees no CUDA device")
    return torch.device(name)


