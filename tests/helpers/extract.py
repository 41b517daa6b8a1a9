"""The tiny RAVDESS extraction settings of the extraction tests (the clips are the fixtures
of tests/extraction/conftest.py)."""
from __future__ import annotations

from mmer.config import config_from_dict

BAD = "01-01-03-01-01-01-01.mp4"  # a RAVDESS name whose content is not a video


def _raw(dataset, tmp_path) -> dict:
    return {"ravdess": {"root": str(dataset / "Actors")},
            "video": {"n_snippets": 2, "snippet_len": 4, "size": 32, "face_detector": "none"},
            "audio": {"n_mels": 16, "n_segments": 2},
            "backbone": {"video": "r3d_18", "pretrained": "none", "weights_dir": str(tmp_path)},
            "features": {"cache_dir": str(tmp_path / "cache"), "batch_size": 2,
                         "num_workers": 0, "device": "cpu"}}


def _cfg(dataset, tmp_path, *overrides):
    return config_from_dict(_raw(dataset, tmp_path), overrides)
