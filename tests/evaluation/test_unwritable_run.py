"""Evaluating a run folder that cannot be written keeps going: reference.pt is skipped with a
warning (the write helpers raise WriteError for a read-only folder, OSError for the rest)."""
from __future__ import annotations

import errno
import logging

import numpy as np
import pytest

from mmer.evaluation import evaluate as ev
from mmer.evaluation.sets import EmbeddedSet
from mmer.io import WriteError


@pytest.mark.parametrize("error", [WriteError("run/fold_0: this folder is not writable"),
                                   OSError(errno.EROFS, "Read-only file system")])
def test_an_unwritable_reference_is_a_warning(tmp_path, monkeypatch, caplog, error):
    def refuse(*args, **kwargs):
        raise error
    monkeypatch.setattr(ev, "write_reference", refuse)
    monkeypatch.setattr(ev, "checkpoint_records", lambda ckpt: (None, {"train": []}))
    train = EmbeddedSet(embedding=np.zeros((2, 3)), logits=np.zeros((2, 2)), labels=np.zeros(2, int),
                        clip_ids=["a", "b"], speakers=["1", "2"])
    with caplog.at_level(logging.WARNING, logger=ev.log.name):
        ev._write_reference(tmp_path / "best.pt", {"epoch": 3}, train, [], [])
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 1 and "cannot write reference.pt" in warned[0], warned
    assert str(tmp_path) in warned[0]
