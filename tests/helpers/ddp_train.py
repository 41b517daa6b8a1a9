"""Body of each torchrun process started by tests/train/test_distributed.py (not a test module).

    torchrun --nproc_per_node 2 tests/helpers/ddp_train.py OUT SAMPLER[,SAMPLER...] [SLEEP_S]

Trains the tiny fabricated fold of :func:`ddp_cfg` / :func:`ddp_fold` into OUT/<sampler>
for each sampler; `SLEEP_S` pauses after every epoch so a test can kill a rank mid-run.
"""
from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path

import torch

import mmer.train.loop as training
from mmer.config import Config
from mmer.inputs.datasets import FeatureDataset
from mmer.io import SkipList
from mmer.train import distributed
from mmer.train.data import FoldData
from tests.helpers.train import NAMES, entries, tiny_cfg


def ddp_cfg(tmp_path, sampler: str) -> Config:
    """Cached audio vectors through the attention encoder (no batch norm), no dropout and
    no mixup: nothing in the model depends on how a batch is split between ranks."""
    cfg = tiny_cfg(tmp_path, epochs=4, sampler=sampler, batch_size=7 if sampler == "shuffle" else 8)
    cfg.model.audio_encoder = "cached"
    cfg.model.dropout = 0.0
    cfg.train.augment.mixup_alpha = 0.0
    return cfg


def ddp_fold(cfg: Config) -> FoldData:
    def make(actors, seed):
        return FeatureDataset(entries(actors, seed=seed), ["audio"], seed=cfg.train.seed)
    parts = {"train": make([1, 2], 0), "val": make([3], 1), "test": make([4], 2)}
    return FoldData(parts, {"train": [1, 2], "val": [3], "test": [4], "fold": 0}, NAMES, {}, SkipList())


def main(argv: list[str]) -> int:
    torch.set_num_threads(1)
    logging.basicConfig(level=logging.INFO, format=f"%(levelname)s rank {os.environ.get('RANK')} %(name)s: %(message)s")
    out, samplers = Path(argv[0]), argv[1].split(",")
    pause = float(argv[2]) if len(argv) > 2 else 0.0
    real = training.train_one_epoch

    def slow_epoch(*args, **kwargs):
        result = real(*args, **kwargs)
        time.sleep(pause)
        return result

    training.train_one_epoch = slow_epoch
    ctx = distributed.init_from_env("cpu")
    try:
        for sampler in samplers:
            cfg = ddp_cfg(out, sampler)
            result = training.train_fold(cfg, ddp_fold(cfg), out / sampler)
            if ctx.is_main:
                (out / sampler / "result.json").write_text(json.dumps(result))
    finally:
        distributed.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
