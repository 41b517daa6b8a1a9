"""Per-speaker standardisation of model inputs (``model.speaker_norm``).

Each speaker's inputs are standardised with the mean and standard deviation of that
speaker's own clips, per feature channel: the mel band of a log-mel, the feature of a
vector or a sequence of vectors, the channel of a feature map. It removes what is
constant in a speaker (voice timbre, habitual loudness, a resting face) and keeps how
each clip departs from that speaker's average.

This is *transductive*: a test speaker is normalised with statistics of their own
(unlabelled) test clips, so a deployed model needs several clips of a new speaker
before it can score one. No label is read, and no statistic crosses speakers; each side
(training, validation, test) is normalised on its own clips only. That keeps test
statistics out of training only where a speaker belongs to one side: the corpus adapter
says when speakers cross the parts (``speakers_cross_parts``, MELD), and the config is
then refused at load. Results with it must be reported as such.

Normalising by a speaker's mean assumes that speaker's clips are balanced over the
emotions; a speaker with few clips (``model.speaker_norm_min_clips``) gets unreliable
statistics (one clip: a zero std, so it is only centred) and is named in a warning, or
refused with ``model.speaker_norm_few_clips: refuse``.
"""
from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from mmer.errors import BadInput

log = logging.getLogger(__name__)

STD_FLOOR = 1e-4


def channel_dim(key: str, shape: Sequence[int]) -> int:
    """The channel axis of one item of input `key` with per-item `shape` (no batch axis):
    mel bands of ``logmel`` (S, 1, M, T), the last axis of (D,) and (S, D), C of (S, C, h, w)."""
    if key == "logmel":
        return 2
    if len(shape) in (1, 2):
        return len(shape) - 1
    if len(shape) == 4:
        return 1
    raise BadInput(f"speaker_norm: no channel axis for input {key!r} of shape {tuple(shape)}")


def speaker_normalise(entries: Sequence[Mapping[str, Any]], keys: Sequence[str], *,
                      min_clips: int = 1, refuse_few: bool = False) -> list[dict[str, Any]]:
    """Copies of `entries` whose inputs `keys` are standardised per ``entry["speaker"]``.

    Statistics are taken over all of a speaker's clips and every position of each item
    except the channel axis (:func:`channel_dim`); a channel that is constant for a
    speaker is only centred. Cached training views of an input (``"<key>_views"``, K
    items stacked) are standardised with the statistics of the speaker's own items, so
    a view and its centred item stay comparable. Entries without a speaker raise
    ``BadInput``; so do speakers with fewer than `min_clips` clips when `refuse_few`
    (else a warning names them).
    """
    groups: dict[str, list[int]] = defaultdict(list)
    for i, e in enumerate(entries):
        speaker = e.get("speaker")
        if speaker in (None, ""):
            raise BadInput(f"speaker_norm: clip {e.get('clip_id')} has no speaker")
        groups[str(speaker)].append(i)
    _check_counts(groups, min_clips, refuse_few)
    out = [dict(e) for e in entries]
    for key in keys:
        views = f"{key}_views"
        for members in groups.values():
            items = torch.stack([torch.as_tensor(entries[i][key]).float() for i in members])
            axis = channel_dim(key, items.shape[1:]) + 1
            mean, std = _stats(items, axis)
            for j, i in enumerate(members):
                out[i][key] = (items[j] - mean[0]) / std[0]
                if entries[i].get(views) is not None:  # (K, *item): same statistics
                    out[i][views] = (torch.as_tensor(entries[i][views]).float() - mean) / std
    return out


def _check_counts(groups: Mapping[str, Sequence[int]], min_clips: int, refuse: bool) -> None:
    few = sorted(s for s, members in groups.items() if len(members) < min_clips)
    if not few:
        return
    named = ", ".join(f"{s} ({len(groups[s])})" for s in few[:10]) + (" ..." if len(few) > 10 else "")
    message = (f"speaker_norm: {len(few)} of {len(groups)} speakers have fewer than {min_clips} "
               f"clips, so their statistics are unreliable (one clip is only centred): {named}")
    if refuse:
        raise BadInput(message + "; lower model.speaker_norm_min_clips or add clips")
    log.warning("%s", message)


def _stats(x: Tensor, axis: int) -> tuple[Tensor, Tensor]:
    """Mean and floored std of `x` over every axis but `axis`, kept broadcastable."""
    dims = [d for d in range(x.ndim) if d != axis]
    mean = x.mean(dim=dims, keepdim=True)
    std = x.std(dim=dims, keepdim=True, unbiased=False)
    return mean, torch.where(std < STD_FLOOR, torch.ones_like(std), std)
