"""A config whose text encoder is another config's run (``text.stage1``).

``text.stage1: configs/meld_text_finetune.yaml`` means "the text encoder is the
``text_encoder/`` folder that config's run writes". :func:`resolve_stage1` trains that run
first when it is not complete (resumable, in the same ``train.runs_dir``, its folder named by
its own config), then returns the stage-2 config with ``text.model_dir`` set to the folder
and ``text.stage1`` null: that resolved config is what the stage-2 run records, so
evaluate and predict on it never need stage 1 again.

Overrides passed down to stage 1: those of the data and the machine (:data:`PASSED_DOWN`:
the corpus's own section, e.g. ``meld.root``, and ``features.cache_dir``, ``train.runs_dir``,
``train.device``, ``train.num_workers``, ``train.deterministic``). Not ``train.seed`` nor any
other recipe value: one stage-1 run folder serves every stage-2 seed and setting.
"""
from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from pathlib import Path

import yaml

from mmer.config import Config, ConfigError, config_to_dict, load_config
from mmer.run.folder import CONFIG_FILE, TEXT_ENCODER_DIR, fold_dir
from mmer.train import distributed
from mmer.train.loop import config_diff, run_fold

log = logging.getLogger(__name__)
PASSED_DOWN = ("features.cache_dir", "train.runs_dir", "train.device", "train.num_workers",
               "train.deterministic")
# What a finished text_encoder/ holds (save_minilm_folder renames it into place whole).
ENCODER_FILES = ("config.json", "model.safetensors", "tokenizer.json")


def stage1_overrides(cfg: Config, overrides: Sequence[str]) -> list[str]:
    """The ``key=value`` items of `overrides` that concern data or the machine (see above)."""
    keys = (f"{cfg.dataset}.", *PASSED_DOWN)
    return [o for o in overrides if o.split("=", 1)[0].strip().startswith(keys)]


def resolve_stage1(cfg: Config, overrides: Sequence[str] = ()) -> Config:
    """`cfg` with ``text.model_dir`` = its stage-1 run's ``text_encoder/`` (trained first
    unless its ``best.pt`` and ``text_encoder/`` are already there); `cfg` as it is
    without ``text.stage1``. `overrides`: the stage-2 command's ``--set`` items."""
    if cfg.text.stage1 is None:
        return cfg
    stage1 = load_config(cfg.text.stage1, stage1_overrides(cfg, overrides))
    if not (stage1.text.finetune and stage1.text.encoder == "minilm") or stage1.text.stage1:
        raise ConfigError(f"text.stage1 {cfg.text.stage1}: not a fine-tuned MiniLM run (it needs "
                          "text.encoder: minilm, text.finetune: true and no text.stage1 of its own)")
    out = fold_dir(stage1.train.runs_dir, stage1.name, stage1.split.fold)
    encoder = out / TEXT_ENCODER_DIR
    if _complete(out):
        _check_same(stage1, out)
        log.info("stage 1 %s: %s and %s are there; not retrained", cfg.text.stage1, out / "best.pt", encoder)
    else:
        log.info("stage 1 %s -> %s (its text_encoder/ is stage 2's text.model_dir)", cfg.text.stage1, out)
        log.info("stage 1 result: %s", run_fold(stage1, stage1.split.fold, out))
        distributed.barrier()  # rank 0 wrote text_encoder/ before any rank embeds with it
    text = dataclasses.replace(cfg.text, model_dir=str(encoder), stage1=None)
    return dataclasses.replace(cfg, text=text)


def _complete(out: Path) -> bool:
    encoder = out / TEXT_ENCODER_DIR
    return (out / "best.pt").is_file() and all((encoder / f).is_file() for f in ENCODER_FILES)


def _check_same(stage1: Config, out: Path) -> None:
    """Refuse a finished stage-1 run trained with another config (train.world_size aside)."""
    try:
        saved = yaml.safe_load((out / CONFIG_FILE).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(f"{out / CONFIG_FILE}: cannot read the stage-1 run's config ({err})") from None
    wanted = config_to_dict(stage1)
    wanted["train"]["world_size"] = saved.get("train", {}).get("world_size")
    diff = config_diff(saved, wanted)
    if diff:
        raise ConfigError(f"{out} was trained with another config ({', '.join(diff[:5])}); "
                          f"delete it to retrain stage 1, or point text.model_dir at its text_encoder/")
