"""A tiny synthetic MELD root (CSVs only), a tiny random MiniLM and a small stage-1 config
for the text training tests."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import yaml

from mmer.config import TextConfig
from mmer.nets.minilm import minilm_dir
from mmer.synth.meld import meld_rows, write_meld_csv


def _meld_root(root: Path, n_train: int, n_dev: int, *, test: bool = False) -> Path:
    write_meld_csv(root / "train_sent_emo.csv", meld_rows(n_train, seed=1))
    write_meld_csv(root / "dev_sent_emo.csv", meld_rows(n_dev, seed=2))
    if test:
        write_meld_csv(root / "test_sent_emo.csv", meld_rows(n_dev, seed=3))
    return root


def tiny_minilm(out: Path, *, pooler: bool = True) -> Path:
    """A random 1-layer, 32-d BERT in a sentence-transformers folder with MiniLM's tokenizer
    (`pooler`: with the pooler weights the packaged MiniLM has)."""
    import transformers  # optional dependency (text weights): slow to import
    source = minilm_dir(TextConfig())
    shutil.copytree(source, out, ignore=lambda folder, names: [  # the weights and their shape
        n for n in names if Path(folder) == source and n in ("model.safetensors", "config.json")])
    transformers.set_seed(0)
    bert = transformers.BertModel(transformers.BertConfig(
        vocab_size=30522, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=128), add_pooling_layer=pooler)
    bert.save_pretrained(str(out), safe_serialization=True)
    pooling = out / "1_Pooling" / "config.json"
    pooling.write_text(json.dumps(dict(json.loads(pooling.read_text()), word_embedding_dimension=32)))
    return out


def stage1_config(tmp_path: Path, small: dict) -> Path:
    """configs/meld_text_finetune.yaml with the `small` values ("section.key": value),
    fine-tuning the tiny MiniLM, named s1."""
    data = yaml.safe_load(Path("configs/meld_text_finetune.yaml").read_text())
    data["name"] = "s1"
    data["text"]["model_dir"] = str(tiny_minilm(tmp_path / "tiny_minilm"))
    for key, value in small.items():
        section, leaf = key.split(".")
        data[section][leaf] = value
    path = tmp_path / "stage1.yaml"
    path.write_text(yaml.safe_dump(data))
    return path
