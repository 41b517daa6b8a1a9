"""python -m mmer.predict on a synthetic clip of a tiny trained run, and on broken clips."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from mmer.cli.predict import main
from mmer.datasets import get_adapter
from mmer.evaluation.sets import checkpoint_records, embed_entries, load_entries, model_keys
from mmer.prediction.predict import featurise, predict_clip
from mmer.run.folder import load_checkpoint, model_from_checkpoint

pytestmark = pytest.mark.slow
CLIP_ID = "01-01-05-01-02-01-01"  # angry, actor 1: a test actor of fold 0
CLIP = f"Actor_01/{CLIP_ID}.mp4"


def test_predict_json(tiny_run, capsys):
    clip = tiny_run.actors_root / CLIP
    assert main([str(clip), "--run", str(tiny_run.run_dir), "--k", "4", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["true_label"] == "angry" and out["checkpoint"].endswith("fold_0/best.pt")
    assert sum(out["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
    assert len(out["probabilities"]) == 8 and out["prediction"] == next(iter(out["probabilities"]))
    neighbours = out["knn"]["neighbours"]
    assert len(neighbours) == 4
    # Neighbours are fold 0's training clips (actors 4-6), nearest first.
    assert {n["speaker"] for n in neighbours} <= {"4", "5", "6"}
    sims = [n["similarity"] for n in neighbours]
    assert sims == sorted(sims, reverse=True)
    assert all(n["distance"] == pytest.approx(1 - n["similarity"]) for n in neighbours)
    assert out["backbones"]["random"] is True


def test_predict_uses_the_extractor_code_path(tiny_run):
    """The clip is featurised as extraction does it: its raw log-mel segments (no backbone
    involved) equal the cached ones exactly, and when the backbone features agree with the
    cache (feature_check ok) so do the probabilities."""
    ckpt_path = tiny_run.run_dir / "fold_0" / "best.pt"
    model, ckpt = model_from_checkpoint(load_checkpoint(ckpt_path))
    cfg, records = checkpoint_records(ckpt)
    record = next(r for r in records["test"] if r.clip_id == CLIP_ID)
    (cached,) = load_entries(cfg, [record], "test")
    (fresh,) = featurise([get_adapter("ravdess").record_for_file(tiny_run.actors_root / CLIP)], cfg, torch.device("cpu"))
    assert fresh["clip_id"] == CLIP_ID and fresh["label"] == cached["label"] == 4
    assert torch.equal(fresh["logmel"], cached["logmel"])
    assert fresh["video"].shape == cached["video"].shape and fresh["audio"].shape == cached["audio"].shape

    keys = model_keys(cfg)
    result = predict_clip(tiny_run.actors_root / CLIP, ckpt_path, k=3)
    expected = embed_entries(model, [cached], keys, device=torch.device("cpu"))
    same = np.allclose([result["probabilities"][n] for n in ckpt["label_names"]],
                       torch.softmax(torch.from_numpy(expected.logits[0]), 0).numpy(), atol=1e-4)
    assert result["feature_check"]["ok"] and same


def test_random_backbone_features_are_reproducible(tiny_run):
    result = predict_clip(tiny_run.actors_root / CLIP, tiny_run.run_dir / "fold_0" / "best.pt", k=3)
    assert result["feature_check"]["ok"], result["feature_check"]


def test_predict_text_output(tiny_run, capsys):
    clip = tiny_run.actors_root / CLIP
    assert main([str(clip), "--run", str(tiny_run.run_dir), "--fold", "1"]) == 0
    text = capsys.readouterr().out
    assert "softmax head:" in text and "(file name says: angry)" in text
    assert "nearest training clips" in text and "randomly initialised" in text


@pytest.mark.parametrize("content", [b"\x00\x00\x00\x18ftypmp42 not really a video", b""])
def test_broken_clip_fails_cleanly(tiny_run, tmp_path, capsys, content):
    bad = tmp_path / "01-01-05-01-02-01-01.mp4"
    bad.write_bytes(content)
    assert main([str(bad), "--run", str(tiny_run.run_dir)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: cannot use clip:") and str(bad) in err[0]


def test_missing_clip_and_run(tiny_run, tmp_path, capsys):
    assert main([str(tmp_path / "nope.mp4"), "--run", str(tiny_run.run_dir)]) == 1
    assert main([str(tiny_run.actors_root / CLIP), "--run", str(tmp_path)]) == 2
    assert "no fold_<k>/best.pt" in capsys.readouterr().err
