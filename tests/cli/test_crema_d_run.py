"""CREMA-D end to end: synthetic FLV clips -> extract -> train -> evaluate -> predict.

The corpus is one adapter (mmer/datasets/crema_d.py) and one config (configs/crema_d.yaml);
this runs the shipped config with small backbones on 4 synthetic actors.
"""
from __future__ import annotations

import json

import pytest

from mmer.cli.evaluate import main as evaluate_main
from mmer.cli.extract import main as extract_main
from mmer.cli.predict import main as predict_main
from mmer.cli.train import main as train_main
from mmer.datasets import get_adapter
from mmer.synth.crema_d import CREMA_D_EMOTIONS

pytestmark = pytest.mark.slow
CONFIG = "configs/crema_d.yaml"
ACTORS = (1001, 1002, 1003, 1004)


@pytest.fixture(scope="module")
def crema_run(tmp_path_factory, one_thread):
    """4 actors x 6 emotions x 3 sentences (72 FLV clips), extracted and one fold trained."""
    root = tmp_path_factory.mktemp("crema")
    written = get_adapter("crema_d").write_synthetic(
        root / "CREMA-D", actors=ACTORS, sentences=("DFA", "ITS", "TSI"), levels=("XX",),
        size=(64, 48), fps=15.0, seconds=1.2, audio=False)
    assert len(written) == 72 and all(p.suffix == ".flv" for p in written)
    overrides = [
        f"crema_d.root={root / 'CREMA-D'}", "split.n_folds=4", "split.n_val_actors=1",
        "video.n_snippets=3", "video.snippet_len=4", "video.size=32", "video.face_detector=none",
        "audio.n_segments=3", "audio.n_mels=32", "backbone.video=r3d_18", "backbone.pretrained=none",
        f"features.cache_dir={root / 'cache'}", "features.device=cpu", "features.num_workers=0",
        "model.d_model=32", "model.n_heads=2", "model.embed_dim=16", "train.epochs=15",
        "train.lr=0.003", "train.batch_size=24", "train.m_per_class=4", "train.warmup_epochs=1",
        f"train.runs_dir={root / 'runs'}", "train.device=cpu",
    ]
    sets = [arg for o in overrides for arg in ("--set", o)]
    assert extract_main(["--config", CONFIG, *sets]) == 0
    assert train_main(["--config", CONFIG, *sets, "--fold", "0", "--run-name", "crema"]) == 0
    return root


def test_crema_d_trains_on_speaker_independent_folds(crema_run):
    fold = crema_run / "runs" / "crema" / "fold_0"
    split = json.loads((fold / "split.json").read_text())
    assert split["actors"] == {"train": [1003, 1004], "val": [1002], "test": [1001]}
    assert not set(split["clips"]["train"]) & set(split["clips"]["test"])
    assert evaluate_main(["--run", str(fold.parent), "--no-plots"]) == 0
    report = json.loads((fold / "report.json").read_text())
    assert report["label_names"] == list(CREMA_D_EMOTIONS)
    assert report["n_clips"] == {"train": 36, "val": 18, "test": 18}
    # 6 emotions: chance 1/6; the synthetic faces and tones make them learnable.
    assert report["results"]["test"]["softmax"]["accuracy"] > 0.4


def test_predict_one_crema_d_clip(crema_run, capsys):
    clip = crema_run / "CREMA-D" / "VideoFlash" / "1001_DFA_ANG_XX.flv"
    assert predict_main([str(clip), "--run", str(crema_run / "runs" / "crema"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["true_label"] == "angry" and set(out["probabilities"]) == set(CREMA_D_EMOTIONS)
    assert abs(sum(out["probabilities"].values()) - 1.0) < 1e-4
