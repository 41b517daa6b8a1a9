"""Atomic file writes and the skip list used by every batch job.

A write goes to a temporary file in the target's folder and is renamed into
place only when complete, so a run killed at any moment leaves either the old
file or the new one, never half of one.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import signal
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from mmer.errors import BadInput

log = logging.getLogger(__name__)

# A temporary file whose writer holds no lock on it, and older than this (the instant
# between its creation and its locking in atomic_path), was left by a killed run.
ORPHAN_AGE_S = 0.02


def current_umask() -> int:
    """This process's umask (os.umask has no read-only form: it is set and put back)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


# What a write into a full, read-only or misplaced folder raises: the place, not the program.
PLACE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM,
                          errno.ENOTDIR, errno.EEXIST})


class WriteError(BadInput):
    """A file could not be written where it belongs (full disk, read-only folder, a file
    standing where a folder should be); the message names the folder and the cause."""


def _place_error(folder: Path, name: str, err: OSError) -> WriteError:
    return WriteError(f"{folder}: cannot write {name} there "
                      f"({err.strerror or os.strerror(err.errno)}); nothing was half-written")


def writable_folder(folder: str | Path) -> Path:
    """Make `folder` (and its parents) if missing; raise :class:`WriteError` naming it when
    it cannot be made or written into (a file in the way, a read-only place, a full disk)."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        if err.errno not in PLACE_ERRNOS:
            raise
        raise WriteError(f"{folder}: cannot make this folder ({err.strerror}; is a file "
                         "standing where it or a parent folder should be?)") from None
    if not os.access(folder, os.W_OK):
        raise WriteError(f"{folder}: this folder is not writable")
    return folder


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` if the block succeeds.

    A full disk or a read-only or misplaced folder raises :class:`WriteError` (one line
    naming the folder); the temporary file is removed and `path` keeps what it held."""
    path = Path(path)
    writable_folder(path.parent)
    try:
        with _atomic_path(path) as tmp:
            yield tmp
    except Exception as err:
        cause = _place_cause(err)
        if cause is None:
            raise
        raise _place_error(path.parent, path.name, cause) from None


def _place_cause(err: BaseException | None) -> OSError | None:
    """The full-disk or read-only ``OSError`` behind `err`, if any: torch.save turns the
    one its Python file raised into ``RuntimeError: ... unexpected pos``, raised while
    handling it."""
    while err is not None:
        if isinstance(err, OSError) and err.errno in PLACE_ERRNOS:
            return err
        err = err.__cause__ or err.__context__
    return None


@contextlib.contextmanager
def _atomic_path(path: Path) -> Iterator[Path]:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    # Held while the file is written: clean_orphans leaves a locked temporary file alone,
    # and the kernel drops the lock when the writer dies (kill -9 included).
    fcntl.flock(fd, fcntl.LOCK_EX)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        # mkstemp makes the file private (0600); give it the mode a plain open() would.
        os.chmod(tmp_path, 0o666 & ~current_umask())
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
    atomic_save(path, lambda fh: fh.write(data))


def atomic_write_text(path: str | Path, text: str) -> None:
    # surrogateescape: a file name that is not UTF-8 (in a report, say) keeps its bytes.
    atomic_write_bytes(path, text.encode("utf-8", "surrogateescape"))


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


def atomic_save(path: str | Path, writer: Callable[[BinaryIO], Any]) -> None:
    """Run `writer(fh)` on a temporary file open for writing (e.g. ``lambda fh:
    torch.save(obj, fh)``), flush it to disk and rename it onto `path`. Through a Python
    file a full disk raises ``OSError`` (ENOSPC), which :func:`atomic_path` names."""
    with deferred_interrupt(), atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            writer(fh)
            fh.flush()
            os.fsync(fh.fileno())


@contextlib.contextmanager
def deferred_interrupt() -> Iterator[None]:
    """Hold a Ctrl-C (SIGINT) that arrives inside the block until the block has finished.

    A file write then completes and is renamed into place before the interrupt is
    handled. Without this, a KeyboardInterrupt raised inside ``torch.save`` leaves its
    C++ zip writer alive past the file it writes to; the writer's destructor then writes
    to the closed file and aborts the interpreter. Outside the main thread (where
    Python delivers no signal) the block runs as is.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held: list[tuple[int, Any]] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: held.append((signum, frame)))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if held and callable(previous):
        previous(*held[0])


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
