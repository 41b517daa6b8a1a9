"""RAVDESS audio-video with the 2D frame encoders as ``backbone.video`` (tiny synthetic set):
the cached video is (S, C, h, w) per encoder, and a fold trains on video + audio."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mmer.config import config_from_dict
from mmer.datasets import get_adapter
from mmer.extraction.job import extract
from mmer.features.backbones import Backbones
from mmer.features.cache import FeatureCache
from mmer.train.data import fold_data
from mmer.train.loop import run_fold

WEIGHTS = Path(__file__).resolve().parents[2] / "resnet"


def _cfg(root, tmp_path, encoder, *overrides):
    raw = {"name": f"rav_{encoder}", "dataset": "ravdess", "ravdess": {"root": str(root)},
           "split": {"n_folds": 3, "n_val_actors": 2},
           "video": {"n_snippets": 2, "snippet_len": 2, "size": 32, "face_detector": "none"},
           "audio": {"n_mels": 16, "n_segments": 2},
           "backbone": {"video": encoder, "audio": "resnet18", "pretrained": "optional",
                        "weights_dir": str(WEIGHTS)},
           "features": {"cache_dir": str(tmp_path / "cache"), "batch_size": 8, "num_workers": 0,
                        "device": "cpu"},
           "model": {"d_model": 32, "n_heads": 2, "embed_dim": 16},
           "train": {"epochs": 1, "batch_size": 6, "m_per_class": 2, "device": "cpu",
                     "runs_dir": str(tmp_path / "runs")}}
    return config_from_dict(raw, list(overrides))


@pytest.mark.parametrize("encoder, shape", [("mobilenet_v2", (1280, 1, 1)),
                                            ("efficientnet_lite0", (1280, 1, 1)),
                                            ("mini_xception", (128, 4, 4))])
def test_frame_encoders_give_snippet_maps(synthetic_ravdess, tmp_path, encoder, shape, one_thread):
    cfg = _cfg(synthetic_ravdess, tmp_path, encoder)
    assert extract(cfg, limit=2, progress=False).done == 2
    record = get_adapter(cfg).records(cfg)[0][0]
    entry = FeatureCache.for_config(cfg).get(record)
    assert entry["video"].shape == (2, *shape) and entry["audio"].shape[0] == 2
    assert entry["meta"]["pretrained"]["video"]["name"] == encoder
    info = entry["meta"]["pretrained"]["video"]
    assert info["status"] == ("loaded" if Path(info["file"]).is_file() else "random")


def test_random_frame_encoder_is_the_same_network_every_time(tmp_path):
    cfg = _cfg(tmp_path, tmp_path, "mobilenet_v2", "backbone.pretrained=none", "backbone.audio=none")
    snippets = torch.randn(2, 3, 2, 32, 32)
    a = Backbones(cfg, torch.device("cpu")).features([{"snippets": snippets}])[0]["video"]
    b = Backbones(cfg, torch.device("cpu")).features([{"snippets": snippets}])[0]["video"]
    assert torch.equal(a, b)


def test_ravdess_av_trains_on_mobilenet_features(synthetic_ravdess, tmp_path, one_thread):
    cfg = _cfg(synthetic_ravdess, tmp_path, "mobilenet_v2", "ravdess.actors=[1,2,3]",
               "split.n_folds=3", "split.n_val_actors=1")
    assert extract(cfg, progress=False).skipped == 0
    result = run_fold(cfg, 0, tmp_path / "runs" / "fold_0")
    best = torch.load(tmp_path / "runs" / "fold_0" / "best.pt", weights_only=True)
    assert best["input_shapes"]["video"] == [2, 1280, 1, 1]   # MobileNetV2's snippet maps
    n_test = len(fold_data(cfg, 0).parts["test"])
    correct = result["test_accuracy"] * n_test   # an accuracy over the test actor's clips
    assert n_test > 0 and abs(correct - round(correct)) < 1e-6
