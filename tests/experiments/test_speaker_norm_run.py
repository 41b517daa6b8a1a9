"""A tiny extract -> ablation -> evaluate run on synthetic speech + AUs with eGeMAPS and
speaker normalisation; such a model refuses to score one clip."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import evaluate
from mmer.cli import ablation
from mmer.evaluation.sets import checkpoint_records, load_entries
from mmer.prediction.predict import predict_clip
from mmer.run.folder import load_checkpoint
from tests.helpers.ablation import make_set

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "ravdess_av_egemaps.yaml"


@pytest.fixture(scope="module")
def spk_run(tmp_path_factory, one_thread):
    root = tmp_path_factory.mktemp("speaker_norm")
    audio, table = make_set(root / "data", range(1, 5), seed=0)
    overrides = [
        f"ravdess.root={audio}", f"visual.table={table}", "ravdess.actors=null",
        "split.n_folds=2", "split.n_val_actors=1", f"features.cache_dir={root / 'cache'}",
        "model.d_model=16", "model.n_heads=2", "model.embed_dim=8", "model.speaker_norm=true",
        "train.epochs=2", "train.batch_size=8", "train.m_per_class=2", "train.warmup_epochs=0",
        f"train.runs_dir={root / 'runs'}", "eval.k=[3]",
    ]
    args = ["--config", str(CONFIG), *[a for o in overrides for a in ("--set", o)]]
    assert ablation.main([*args, "--extract", "--variants", "egemaps,concat"]) == 0
    return root, table


@pytest.mark.slow
def test_egemaps_and_aus_train_with_speaker_norm_and_score_another_root(spk_run):
    root, _ = spk_run
    run = root / "runs" / "ravdess_av_egemaps_ablation"
    table = json.loads((run / "ablation.json").read_text())
    assert [v["variant"] for v in table["variants"]] == ["egemaps", "fused_concat"]
    ckpt = load_checkpoint(run / "fused_concat" / "fold_0" / "best.pt")
    cfg, records = checkpoint_records(ckpt)
    test = load_entries(cfg, records["test"], "test")
    assert {e["speaker"] for e in test} == {"1", "2"}       # fold 0 tests actors 1-2
    for key in ("egemaps", "visual"):
        for speaker in ("1", "2"):    # each test actor standardised on their own clips
            x = torch.stack([e[key] for e in test if e["speaker"] == speaker])
            np.testing.assert_allclose(x.mean(0), 0.0, atol=1e-4)
    other_audio, other_table = make_set(root / "other", range(5, 7), seed=1)
    assert evaluate.main(["--run", str(run / "fused_concat"), "--data-root", str(other_audio),
                          "--data-set", f"visual.table={other_table}", "--extract",
                          "--no-plots"]) == 0
    report = json.loads(next((run / "fused_concat").glob("fold_0/eval_*/report.json")).read_text())
    assert report["n_clips"]["test"] == 2 * 8
    assert "eGeMAPS" in json.dumps(report["backbones"])


@pytest.mark.slow
def test_a_speaker_normalised_model_refuses_to_score_one_clip(spk_run):
    root, _ = spk_run
    clip = next((root / "data" / "Actors" / "Actor_01").glob("*.wav"))
    with pytest.raises(ValueError, match="per speaker"):
        predict_clip(clip, root / "runs" / "ravdess_av_egemaps_ablation" / "egemaps" / "fold_0" / "best.pt")
