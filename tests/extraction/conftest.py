"""Tiny synthetic RAVDESS clips with one corrupt file, for the extraction tests."""
from __future__ import annotations

import shutil

import pytest

from mmer.synth.ravdess import make_ravdess_set
from tests.helpers.extract import BAD


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """4 good clips (actors 1-2, emotions 1-2), 64x48, 15 fps, 1.2 s, H.264 + AAC."""
    root = tmp_path_factory.mktemp("ravdess")
    make_ravdess_set(root, actors=(1, 2), emotions=(1, 2), statements=(1,), repetitions=(1,),
                     intensities=(1,), size=(64, 48), fps=15.0, seconds=1.2, sample_rate=16000)
    return root


@pytest.fixture
def dataset(clips, tmp_path):
    """A private copy of the clips plus one corrupt mp4 with a valid RAVDESS name."""
    root = tmp_path / "data"
    shutil.copytree(clips, root)
    (root / "Actors" / "Actor_01" / BAD).write_bytes(b"\x00\x00\x00\x18ftypmp42 not really")
    return root
