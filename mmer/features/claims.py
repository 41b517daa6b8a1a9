"""Sharing one feature cache between extraction processes.

- :func:`shard_items` splits the sorted clips by rank (``torchrun ... -m mmer.extract`` or
  ``--shard i/n``): clip k goes to rank k mod n, so no clip is done twice.
- :class:`Claims`: independent processes on one cache claim a clip before decoding it.
  A claim file is written whole under a private name, then hard-linked to its claim name
  (``link`` fails when the name exists: exactly one creator wins, and a claim is never seen
  half-written, even when its writer is killed mid-way). A claim whose owner process is
  dead (same host) or older than the timeout is stale and is taken over.
- :func:`merge_skip_file`: the cache's skip list of a data root (``skipped-<root hash>.tsv``) is the union by item of what every
  process skipped, less clips that now have an entry.
- :func:`record_summary`: every process adds its counts and clip lists to the cache's
  ``summary.json`` (read-modify-write under an ``flock``).
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import socket
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

from mmer.errors import BadInput
from mmer.io import Skip, SkipList, atomic_write_json

log = logging.getLogger(__name__)
T = TypeVar("T")

CLAIM_TIMEOUT_S = 3600.0
LOCKS = ".claims"  # claim and lock files, in a hidden folder beside the cache entries


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/n"`` -> (i, n) with 0 <= i < n; raises BadInput otherwise."""
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise BadInput(f"--shard: expected i/n (e.g. 0/4), got {text!r}") from None
    if not 0 <= i < n:
        raise BadInput(f"--shard {text}: need 0 <= i < n")
    return i, n


def shard_items(items: Sequence[T], index: int, count: int) -> list[T]:
    """Items index, index + count, ... of `items`: the shards of 0..count-1 partition it."""
    return list(items[index::count])


def worker_id(shard_of: tuple[int, int] | None = None) -> str:
    """``rank<i>of<n>`` for a shard, else ``<host>:<pid>``."""
    if shard_of is not None and shard_of[1] > 1:
        return f"rank{shard_of[0]}of{shard_of[1]}"
    return f"{socket.gethostname()}:{os.getpid()}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


class Claims:
    """Claim files ``<folder>/<sha1 of key>.claim`` holding ``{"pid", "host", "time", "key"}``.

    `owner`: the pid written into claims (the extraction's main process, also when a
    DataLoader worker makes the claim). Picklable, so DataLoader workers can use it."""

    def __init__(self, folder: str | Path, *, owner: int | None = None,
                 timeout_s: float = CLAIM_TIMEOUT_S) -> None:
        self.folder = Path(folder)
        self.owner = os.getpid() if owner is None else owner
        self.timeout_s = timeout_s
        self.host = socket.gethostname()

    def path(self, key: str) -> Path:
        return self.folder / f"{hashlib.sha1(key.encode('utf-8', 'surrogateescape')).hexdigest()[:20]}.claim"

    def acquire(self, key: str) -> bool:
        """True when this process now holds `key` (taking over a stale claim), False when
        another live process holds it."""
        self.folder.mkdir(parents=True, exist_ok=True)
        for _ in range(3):
            if self._create(key):
                return True
            if not self._reclaim(key):
                return False
        return False

    def release(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path(key).unlink()

    def _create(self, key: str) -> bool:
        path = self.path(key)
        text = json.dumps({"pid": self.owner, "host": self.host, "time": time.time(), "key": key})
        draft = path.with_suffix(f".new.{os.getpid()}")
        draft.write_text(text, encoding="utf-8")
        try:
            os.link(draft, path)
        except FileExistsError:
            return False
        except OSError:  # a file system without hard links: exclusive create, then write
            return self._create_in_place(path, text)
        finally:
            draft.unlink()
        return True

    @staticmethod
    def _create_in_place(path: Path, text: str) -> bool:
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        return True

    def stale(self, info: dict[str, Any] | None) -> bool:
        """A claim (its contents; None if unreadable) nobody works on."""
        if info is None:
            return True
        if time.time() - float(info.get("time", 0)) > self.timeout_s:
            return True
        if info.get("host") != self.host:
            return False
        pid = int(info.get("pid", -1))
        return pid == self.owner or not _alive(pid)  # our own: left by an interrupted call

    def _reclaim(self, key: str) -> bool:
        """Move a stale claim aside (rename: one process wins); True when one was removed."""
        path = self.path(key)
        if not path.exists():
            return True  # released meanwhile: try creating again
        info = _read_claim(path)  # None: unreadable (claims are never half-written)
        if not self.stale(info):
            return False
        aside = path.with_suffix(f".stale.{os.getpid()}")
        try:
            os.rename(path, aside)
        except FileNotFoundError:
            return True  # someone else moved it; try creating again
        if _read_claim(aside) != info:  # a fresh claim was made in between: put it back
            with contextlib.suppress(FileExistsError):
                os.link(aside, path)
        aside.unlink()
        log.info("took over a stale claim on %s (%s)", key, info)
        return True


def _read_claim(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


@contextlib.contextmanager
def locked(path: str | Path) -> Iterator[None]:
    """An exclusive ``flock`` on `path` (created) for the block."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def merge_skip_file(path: str | Path, skips: SkipList, *, done: set[str] = frozenset()) -> SkipList:
    """Write to `path` the union by item of its skips and `skips` (this run's reason wins),
    less items in `done` (clips that have an entry now). Returns the merged list."""
    path = Path(path)
    with locked(path.parent / LOCKS / f"{path.name}.lock"):
        merged: dict[str, Skip] = {}
        if path.is_file():
            merged.update((s.item, s) for s in SkipList.read(path))
        merged.update((s.item, s) for s in skips)
        out = SkipList()
        out.items = [merged[k] for k in sorted(merged) if k not in done]
        out.write(path)
    return out


def record_summary(folder: str | Path, worker: str, record: dict[str, Any]) -> dict[str, Any]:
    """Add this process's `record` (``started``, ``finished``, counts, clip lists) to
    ``<folder>/summary.json`` and return the file's contents.

    Processes whose run ended before this one started belong to an earlier extraction
    and are dropped; so concurrent workers and the ranks of one sharded run stay together.
    ``total`` sums each count over the processes kept."""
    path = Path(folder) / "summary.json"
    with locked(Path(folder) / LOCKS / "summary.json.lock"):
        old = _read_claim(path) or {}
        procs = {w: r for w, r in (old.get("processes") or {}).items()
                 if w != worker and float(r.get("finished", 0)) >= float(record["started"])}
        procs[worker] = record
        counts = ("clips", "extracted", "cached", "skipped", "claimed_elsewhere")
        summary = {"processes": dict(sorted(procs.items())),
                   "total": {k: sum(int(r.get(f"n_{k}", 0)) for r in procs.values()) for k in counts}}
        atomic_write_json(path, summary)
    return summary
