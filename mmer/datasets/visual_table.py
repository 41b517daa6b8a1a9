"""A precomputed visual feature table (e.g. OpenFace Action Units) as the ``"visual"`` input.

The table (config section ``visual``) is a CSV file with a header, one row per clip or
one row per frame, keyed by a clip id in column ``visual.key`` (with or without an
extension). Rows and clips are matched by a join key, a function of the name that the
corpus's adapter gives (``visual_join_key``): the clip id itself by default; for RAVDESS
the **trial**, the six name parts after the modality digit, so the row of a full
audio-video clip (``01-...``) joins the audio-only file of the same trial (``03-...``).

- Columns: ``visual.columns`` lists column names; an entry ending in ``*`` is
  a prefix (``AU*``). None: every column but the key. Every selected value must be a
  finite number, else :class:`VisualTableError` names the file, row and column.
- Several rows with the same key are frames of one clip: ``visual.frames: mean``
  averages them into one (D,) vector; ``sequence`` keeps ``visual.steps`` evenly spaced
  frames as (steps, D) (a clip with fewer frames repeats its frames in order).
- Two row keys with the same join key (e.g. a RAVDESS ``01-`` and ``02-`` row of one
  trial) are ambiguous: an error.

:func:`visual_features` joins the table to clip records and lists, in a
:class:`mmer.io.SkipList`, the clips without a row (they cannot be used) and the rows
without a clip (unused); nothing is dropped silently. The values are not standardised
here: the model standardises every input with statistics of the training clips only
(:meth:`mmer.models.build.EmotionModel.fit_input_stats`).
"""
from __future__ import annotations

import csv
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mmer.config import VisualConfig
from mmer.datasets.records import ClipRecord
from mmer.errors import BadInput
from mmer.io import SkipList

log = logging.getLogger(__name__)


class VisualTableError(BadInput):
    """A visual feature table that cannot be used; the message names the file and the problem."""


@dataclass
class VisualTable:
    """Features per join key: ``rows[k]`` is (n_frames, D) float32; ``keys[k]`` the row key;
    ``join`` the name -> join key function the rows were grouped by."""

    path: Path
    columns: list[str]
    rows: dict[str, np.ndarray]
    keys: dict[str, str]
    join: Callable[[str], str]


def same_name(name: str) -> str:
    """The default join key: the clip id itself."""
    return name


def select_columns(header: Sequence[str], key: str, wanted: Sequence[str] | None, path: Path) -> list[str]:
    """The feature columns of `header`: `wanted` names / ``prefix*`` entries in header order."""
    candidates = [c for c in header if c != key]
    if wanted is None:
        chosen = candidates
    else:
        chosen = []
        for entry in wanted:
            hits = ([c for c in candidates if c.startswith(entry[:-1])] if entry.endswith("*")
                    else [c for c in candidates if c == entry])
            if not hits:
                raise VisualTableError(f"{path}: no column matches {entry!r} of visual.columns "
                                       f"(columns: {', '.join(candidates)})")
            chosen += [c for c in hits if c not in chosen]
    if not chosen:
        raise VisualTableError(f"{path}: no feature columns besides the key column {key!r}")
    return chosen


def _join_key(join: Callable[[str], str], key: str, path: Path, line: int) -> str:
    try:
        return join(key.strip())
    except BadInput as err:
        raise VisualTableError(f"{path}, line {line}: key {key.strip()!r} is not a clip id of "
                               f"this corpus ({err})") from None


def _number(text: str, path: Path, line: int, column: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise VisualTableError(f"{path}, line {line}, column {column!r}: value {text!r} is not a "
                               "finite number")
    return value


def read_visual_table(path: str | Path, *, key: str = "name", columns: Sequence[str] | None = None,
                      join: Callable[[str], str] = same_name) -> VisualTable:
    """Read the CSV table at `path`; rows grouped by ``join(row key)`` (see the module docstring)."""
    path = Path(path)
    try:
        handle = path.open(newline="", encoding="utf-8")
    except OSError as err:
        raise VisualTableError(f"{path}: cannot read visual feature table ({err.strerror})") from None
    with handle:
        reader = csv.reader(handle)
        header = [h.strip() for h in next(reader, [])]
        if key not in header:
            raise VisualTableError(f"{path}: no key column {key!r} (visual.key); "
                                   f"header: {', '.join(header) or '(empty file)'}")
        chosen = select_columns(header, key, columns, path)
        index = {c: header.index(c) for c in [key, *chosen]}
        frames: dict[str, list[list[float]]] = {}
        keys: dict[str, str] = {}
        for line, row in enumerate(reader, start=2):
            if not row:
                continue
            if len(row) != len(header):
                raise VisualTableError(f"{path}, line {line}: {len(row)} fields, the header has "
                                       f"{len(header)}")
            clip = row[index[key]].strip()
            stem = Path(clip).name.partition(".")[0]
            trial = _join_key(join, stem, path, line)
            if keys.setdefault(trial, stem) != stem:
                raise VisualTableError(f"{path}, line {line}: {stem} and {keys[trial]} are the same "
                                       f"trial {trial}; keep one modality per table")
            frames.setdefault(trial, []).append(
                [_number(row[index[c]], path, line, c) for c in chosen])
    if not frames:
        raise VisualTableError(f"{path}: no data rows")
    rows = {t: np.asarray(v, dtype=np.float32) for t, v in frames.items()}
    log.info("%s: %d trials, %d feature columns, %d rows", path, len(rows), len(chosen),
             sum(len(v) for v in rows.values()))
    return VisualTable(path, chosen, rows, keys, join)


def clip_vector(frames: np.ndarray, mode: str, steps: int) -> torch.Tensor:
    """One clip's (n_frames, D) rows -> (D,) mean (`mode` ``mean``) or (steps, D) (``sequence``)."""
    if mode == "mean":
        return torch.from_numpy(frames.mean(axis=0))
    if mode == "sequence":
        if steps < 1:
            raise BadInput(f"visual.steps must be positive, got {steps}")
        picks = np.floor((np.arange(steps) + 0.5) * len(frames) / steps).astype(int)
        return torch.from_numpy(np.ascontiguousarray(frames[picks]))
    raise BadInput(f"unknown visual.frames {mode!r}; valid: mean, sequence")


def join_table(records: Sequence[ClipRecord], table: VisualTable, cfg: VisualConfig, *,
               list_unused: bool = True) -> tuple[dict[str, torch.Tensor], SkipList]:
    """({clip_id: visual tensor} for the clips with a row, listing of what did not match).

    The listing holds each clip without a row (item: the clip id) and, with
    `list_unused`, each row whose trial matches no clip (item: ``<table>:<row key>``;
    off where `records` are on purpose a subset, e.g. one part of a split).
    """
    found: dict[str, torch.Tensor] = {}
    listing = SkipList(log_each=False)  # one summary line below; the items go to skipped.tsv
    trials = set()
    for r in records:
        trial = table.join(r.clip_id)
        trials.add(trial)
        if trial in table.rows:
            found[r.clip_id] = clip_vector(table.rows[trial], cfg.frames, cfg.steps)
        else:
            listing.add(r.clip_id, f"no row of trial {trial} in the visual table {table.path}")
    unused = sorted(t for t in table.rows if t not in trials) if list_unused else []
    for trial in unused:
        listing.add(f"{table.path}:{table.keys[trial]}",
                    "visual table row matches no clip of the data (other actors, or the clip is missing)")
    if len(listing):
        log.warning("visual table %s: %d of %d clips without a row, %d rows without a clip",
                    table.path, len(records) - len(found), len(records), len(unused))
    return found, listing


def visual_features(cfg: VisualConfig, records: Sequence[ClipRecord], *,
                    join: Callable[[str], str] = same_name, list_unused: bool = True
                    ) -> tuple[dict[str, torch.Tensor], SkipList]:
    """Read ``cfg.table`` and join it to `records` by `join` (see :func:`join_table`)."""
    if not cfg.table:
        raise VisualTableError("model.modalities has 'visual' but visual.table is not set")
    table = read_visual_table(cfg.table, key=cfg.key, columns=cfg.columns, join=join)
    return join_table(records, table, cfg, list_unused=list_unused)


def with_visual(entries: Sequence[Mapping[str, Any]], features: Mapping[str, torch.Tensor]
                ) -> list[dict[str, Any]]:
    """Copies of cache `entries` with ``"visual"`` from `features` by clip id."""
    return [dict(e, visual=features[str(e["clip_id"])]) for e in entries]
