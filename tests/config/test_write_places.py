"""The write helpers on a full disk or where a file stands for a folder: one line naming
the place, the old file kept."""
from __future__ import annotations

import errno
import io
import os

import pytest
import torch

from mmer import io as mio
from mmer.io import WriteError, atomic_save, atomic_write_text

ODD = os.fsdecode(b"data-\xff")


class _FullDisk(io.FileIO):
    """A file that takes two writes, then raises ENOSPC (the disk filled up mid-write)."""

    def __init__(self, path, mode="wb"):
        super().__init__(path, "w")
        self.writes = 0

    def write(self, data):
        self.writes += 1
        if self.writes > 2:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return super().write(data)


def test_a_full_disk_mid_write_is_one_line_and_keeps_the_old_file(tmp_path, monkeypatch):
    folder = tmp_path / ODD
    target = folder / "last.pt"
    folder.mkdir()
    torch.save({"epoch": 1}, target)
    before = target.read_bytes()
    monkeypatch.setattr(mio, "open", _FullDisk, raising=False)
    with pytest.raises(WriteError) as err:
        atomic_save(target, lambda fh: torch.save({"w": torch.ones(50_000)}, fh))
    message = str(err.value)
    assert str(folder) in message and "No space left on device" in message and "\n" not in message
    assert target.read_bytes() == before and sorted(folder.iterdir()) == [target]


def test_a_file_where_the_folder_should_be_is_one_line(tmp_path):
    blocker = tmp_path / ODD
    blocker.write_text("not a folder")
    for path in (blocker / "x.json", blocker / "sub" / "x.json"):
        with pytest.raises(WriteError, match="cannot make this folder"):
            atomic_write_text(path, "{}")
