"""Helpers shared by the networks ported from other frameworks' checkpoints (the 2D frame
encoders, MTCNN, the Whisper encoder).

- Strict state loading that names every missing, unexpected and shape-mismatched key
  (:func:`load_state_strict`). Unlike :mod:`mmer.nets.pretrained` it tolerates nothing:
  converters must produce every tensor the module has, BatchNorm counters included.
- TensorFlow's ``'same'`` padding (:func:`pad_same`): for a stride-2 window TF pads the
  bottom/right side more than the top/left one, which PyTorch's symmetric ``padding=``
  cannot express, and the amount depends on the input size, so it is computed per call.

This module reads no files and depends only on :mod:`mmer.errors`.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmer.errors import BadInput

log = logging.getLogger(__name__)

_LIST_AT_MOST = 12


class FrameWeightError(BadInput):
    """A weight file that cannot be loaded as given; the message names the file and the problem."""


class MissingFrameWeightsError(FrameWeightError):
    """A required weight file is not on disk."""


POLICIES = ("required", "optional", "none")


def random_reason(path: Path, policy: str, *, missing: type[BadInput], fix: str) -> str | None:
    """Why a network stays randomly initialised under ``backbone.pretrained`` `policy` (None:
    load `path`). ``required`` with no file raises `missing`, saying where the file goes and
    `fix` (how to get it); ``optional`` with no file warns. Every backbone loader asks this."""
    if policy not in POLICIES:
        raise BadInput(f"unknown pretrained policy {policy!r}; choices: {', '.join(POLICIES)}")
    if policy == "none":
        return "backbone.pretrained is none: random initialisation on purpose"
    if path.is_file():
        return None
    if policy == "required":
        raise missing(f"{path}: weight file not found. Put '{path.name}' into '{path.parent}/' "
                      f"({fix}), or set backbone.pretrained to optional or none to run with "
                      f"random weights")
    log.warning("%s: weight file not found; using RANDOM initialisation "
                "(backbone.pretrained is optional; %s)", path, fix)
    return "weight file not found (backbone.pretrained: optional)"


def state_problems(module: nn.Module, state: Mapping[str, Tensor]) -> dict[str, list[str]]:
    """Keys of `state` that do not fit `module`: ``missing``, ``unexpected``, ``mismatched``."""
    expected = module.state_dict()
    return {
        "missing": [k for k in expected if k not in state],
        "unexpected": sorted(k for k in state if k not in expected),
        "mismatched": [f"{k}: file {tuple(state[k].shape)} vs model {tuple(v.shape)}"
                       for k, v in expected.items() if k in state and state[k].shape != v.shape],
    }


def load_state_strict(module: nn.Module, state: Mapping[str, Tensor], source: str, *,
                      error: type[BadInput] = FrameWeightError,
                      unmatched: Sequence[str] = ()) -> dict[str, int]:
    """Copy `state` into `module` after checking that keys and shapes match exactly.

    Raises `error` (each network's own :class:`~mmer.errors.BadInput` type) naming `source`
    and listing every missing, unexpected and shape-mismatched key; `unmatched`: names in the
    file a converter could not map to any key, listed as unexpected too. Returns
    ``{"tensors": number copied}``.
    """
    problems = state_problems(module, state)
    problems["unexpected"] += list(unmatched)
    found = [f"{name} ({len(keys)}): {clip_keys(keys)}" for name, keys in problems.items() if keys]
    if found:
        raise error(f"{source}: weights do not match {type(module).__name__}; " + "; ".join(found))
    module.load_state_dict(dict(state), strict=True)
    log.info("%s: loaded %d tensors into %s", source, len(state), type(module).__name__)
    return {"tensors": len(state)}


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """(before, after) padding of TF ``'same'`` along one axis: output ceil(size / stride)."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def pad_same(x: Tensor, kernel: int, stride: int, value: float = 0.0) -> Tensor:
    """Pad (N, C, H, W) `x` as TF ``'same'`` would before a `kernel` x `kernel` window.

    `value` fills the border: 0 for convolutions, ``-inf`` for max pooling (TF's max
    pool ignores padded cells, which -inf reproduces).
    """
    top, bottom = same_padding(x.shape[-2], kernel, stride)
    left, right = same_padding(x.shape[-1], kernel, stride)
    if top == bottom == left == right == 0:
        return x
    return F.pad(x, (left, right, top, bottom), value=value)


def zero_counter() -> Tensor:
    """A BatchNorm ``num_batches_tracked`` value for checkpoints that do not store one."""
    return torch.tensor(0, dtype=torch.long)


def clip_keys(keys: list[str], at_most: int = _LIST_AT_MOST) -> str:
    """At most `at_most` of `keys`, then how many more: error messages stay one readable line."""
    more = len(keys) - at_most
    return ", ".join(keys[:at_most]) + (f", ... and {more} more" if more > 0 else "")
