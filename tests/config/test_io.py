"""mmer.io: atomic writes leave the old file or the new one, never half of one; orphaned
temporaries are removed unless their writer is alive."""
import os
import signal
import stat
import time

import pytest
import torch

from mmer.io import SkipList, atomic_path, atomic_save, atomic_write_json, atomic_write_text, clean_orphans


def test_atomic_write_replaces_and_leaves_no_temp(tmp_path):
    target = tmp_path / "sub" / "a.txt"
    atomic_write_text(target, "one")
    atomic_write_text(target, "two")
    assert target.read_text() == "two"
    assert sorted(p.name for p in target.parent.iterdir()) == ["a.txt"]


class _InterruptsOnSecondWrite:
    """A file that sends this process a Ctrl-C in the middle of torch.save's writes."""

    def __init__(self, fh) -> None:
        self.fh, self.writes = fh, 0

    def write(self, data: bytes) -> int:
        self.writes += 1
        if self.writes == 2:
            os.kill(os.getpid(), signal.SIGINT)
        return self.fh.write(data)

    def flush(self) -> None:
        self.fh.flush()


def test_ctrl_c_during_torch_save_finishes_the_file_then_interrupts(tmp_path):
    target = tmp_path / "last.pt"
    blob = {"w": torch.arange(1000.0)}
    with pytest.raises(KeyboardInterrupt):
        atomic_save(target, lambda fh: torch.save(blob, _InterruptsOnSecondWrite(fh)))
    assert torch.equal(torch.load(target, weights_only=True)["w"], blob["w"])
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]


def test_failed_write_keeps_old_file_and_no_temp(tmp_path):
    target = tmp_path / "a.bin"
    atomic_write_text(target, "old")

    def broken(fh):
        fh.write(b"half")
        raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError):
        atomic_save(target, broken)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.bin"]


def test_written_files_follow_umask_not_private(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write_json(tmp_path / "r.json", {"a": 1})
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "r.json").stat().st_mode) == 0o644


def test_skip_list_round_trip(tmp_path):
    skips = SkipList()
    skips.add(tmp_path / "x.mp4", "no audio\tstream\n here")
    skips.add("y.mp4", "corrupt")
    skips.write(tmp_path / "skipped.tsv")
    back = SkipList.read(tmp_path / "skipped.tsv")
    assert [(s.item, s.reason) for s in back] == [(str(tmp_path / "x.mp4"), "no audio stream here"), ("y.mp4", "corrupt")]


def test_orphaned_temporaries_are_removed_unless_held(tmp_path):
    old = tmp_path / ".entry.pt.abc123.tmp"
    old.write_bytes(b"half")
    os.utime(old, (time.time() - 3600,) * 2)
    with atomic_path(tmp_path / "held.pt") as held:
        os.utime(held, (time.time() - 3600,) * 2)                 # old, but its writer is alive
        assert clean_orphans(tmp_path) == [old]
        assert held.exists()
    assert not old.exists() and (tmp_path / "held.pt").exists()
