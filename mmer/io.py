"""Atomic file writes and the skip list used by every batch job.

A write goes to a temporary file in the target's folder and is renamed into
place only when complete, so a run killed at any moment leaves either the old
file or the new one, never half of one.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

# A temporary file whose writer holds no lock on it, and older than this (the instant
# between its creation and its locking in atomic_path), was left by a killed run.
ORPHAN_AGE_S = 0.02


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    # Held while the file is written: clean_orphans leaves a locked temporary file alone,
    # and the kernel drops the lock when the writer dies (kill -9 included).
    fcntl.flock(fd, fcntl.LOCK_EX)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        # mkstemp makes the file private (0600); give it the mode a plain open() would.
        os.chmod(tmp_path, 0o666 & ~_current_umask())
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()
        os.close(fd)


def clean_orphans(folder: str | Path) -> list[Path]:
    """Delete the temporary files (``.<name>.*.tmp``) a killed writer left in `folder`.

    A file counts as an orphan when no live writer holds its lock (see :func:`atomic_path`;
    the kernel drops the lock of a killed process) and it is older than
    :data:`ORPHAN_AGE_S`. Returns the files removed.
    """
    removed = []
    for tmp in sorted(Path(folder).glob(".*.tmp")) if Path(folder).is_dir() else []:
        try:
            if tmp.stat().st_mtime > time.time() - ORPHAN_AGE_S:
                continue
            with open(tmp, "rb") as fh:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                tmp.unlink()
        except (BlockingIOError, FileNotFoundError):
            continue  # being written now, or gone already
        removed.append(tmp)
    if removed:
        log.info("removed %d temporary files left by an interrupted run in %s", len(removed), folder)
    return removed


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())


def atomic_write_text(path: str | Path, text: str) -> None:
    # surrogateescape: a file name that is not UTF-8 (in a report, say) keeps its bytes.
    atomic_write_bytes(path, text.encode("utf-8", "surrogateescape"))


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


def atomic_save(path: str | Path, writer: Callable[[Path], None]) -> None:
    """Run `writer(tmp_path)` (e.g. ``lambda p: torch.save(obj, p)``) and rename atomically."""
    with atomic_path(path) as tmp:
        writer(tmp)


@dataclass(frozen=True)
class Skip:
    """One input a batch job could not use, and why."""

    item: str
    reason: str

    def __str__(self) -> str:
        return f"{self.item}: {self.reason}"


class SkipList:
    """Collects skipped inputs; written as a TSV file (item, reason) at the end of a job."""

    def __init__(self, *, log_each: bool = True) -> None:
        self.items: list[Skip] = []
        self.log_each = log_each  # off where the caller logs one summary line instead

    def add(self, item: str | Path, reason: str) -> None:
        skip = Skip(str(item), " ".join(str(reason).split()))
        if self.log_each:
            log.warning("skipped %s", skip)
        self.items.append(skip)

    def extend(self, skips: SkipList | list[Skip]) -> None:
        for skip in skips.items if isinstance(skips, SkipList) else skips:
            self.items.append(skip)

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[Skip]:
        return iter(self.items)

    def write(self, path: str | Path) -> None:
        lines = ["item\treason"] + [f"{s.item}\t{s.reason}" for s in self.items]
        # surrogateescape: a file name that is not UTF-8 is written back as its own bytes.
        atomic_write_bytes(path, ("\n".join(lines) + "\n").encode("utf-8", "surrogateescape"))

    def write_merged(self, path: str | Path, covered: set[str]) -> None:
        """Write these skips to `path`, keeping the rows of an earlier list there whose item
        this job did not look at (not in `covered` and not skipped again), so a job over
        part of the inputs (``--limit``) does not drop what an earlier one found."""
        mine = {s.item for s in self.items}
        merged = SkipList()
        if Path(path).is_file():
            merged.items = [s for s in SkipList.read(path) if s.item not in covered and s.item not in mine]
        merged.items += self.items
        merged.write(path)

    @staticmethod
    def read(path: str | Path) -> SkipList:
        skips = SkipList()
        rows = Path(path).read_bytes().decode("utf-8", "surrogateescape").splitlines()[1:]
        for row in rows:
            item, _, reason = row.partition("\t")
            skips.items.append(Skip(item, reason))
        return skips
