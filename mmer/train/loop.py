"""The one training loop, for every model (audio, video, tables, text, any fusion).

:func:`mmer.train.data.fold_data` gives the fold's datasets; :func:`train_fold` trains
with checkpoints in the fold folder. Rerunning the same command resumes from ``last.pt``
(model, optimizer, scheduler; every epoch reseeds from ``(seed, epoch)``), so a resumed
run ends with the same weights as an uninterrupted one.

Under ``torchrun`` (:mod:`mmer.train.distributed`) the model is wrapped in DDP, each rank
trains on its part of the same global batches, the loss covers every rank's clips, and
rank 0 alone writes the run folder; ``train.world_size`` records the number of processes.
"""
from __future__ import annotations

import dataclasses
import logging
import math
from pathlib import Path
from typing import Any

import torch
import yaml
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from mmer.config import Config, ConfigError, config_to_dict
from mmer.datasets import get_adapter
from mmer.device import resolve_device
from mmer.inputs.datasets import FeatureDataset, eval_loader, train_loader
from mmer.io import clean_orphans, writable_folder
from mmer.losses import build_loss
from mmer.metrics.scores import SCALAR_METRICS, classification_metrics
from mmer.models.build import build_model
from mmer.models.forward import embed
from mmer.models.whisper_top import WhisperTopBlocks
from mmer.nets.minilm import MiniLMEncoder, minilm_dir, save_minilm_folder
from mmer.nets.sentence_net import TopBlocks
from mmer.run.folder import (
    TEXT_ENCODER_DIR,
    git_info,
    load_checkpoint,
    model_from_checkpoint,
    read_metrics,
    save_checkpoint,
    write_fold_start,
    write_metrics,
    write_reference,
)
from mmer.seed import derive_seed, seed_everything, set_deterministic
from mmer.train import distributed
from mmer.train.data import FoldData, fold_data
from mmer.train.engine import train_one_epoch
from mmer.train.probe import train_fold_probe

log = logging.getLogger(__name__)
PARTS = ("train", "val", "test")


def lr_lambda(total_steps: int, warmup_steps: int):
    """Linear warm-up to 1 over `warmup_steps`, then cosine decay to 0 at `total_steps`."""
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(total_steps - warmup_steps, 1)
        return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))
    return factor


def param_groups(cfg: Config, model: torch.nn.Module) -> list[dict[str, Any]]:
    """One group at ``train.lr``; a fine-tuned pretrained MiniLM's weights in groups at
    ``text.finetune_lr`` (they would be wrecked at the head's rate), one per depth with
    layer-wise decay: depth d of L (embeddings 0, transformer layer i at i + 1, the rest
    at L) gets ``finetune_lr * text.layer_decay ** (L - d)``."""
    encoder = getattr(model, "text_encoder", None)
    if isinstance(encoder, TopBlocks):
        return top_block_groups(cfg, model, encoder)
    if isinstance(getattr(model, "audio_encoder", None), WhisperTopBlocks):
        return top_block_groups(cfg, model, model.audio_encoder)
    slow = dict(encoder.named_parameters()) if isinstance(encoder, MiniLMEncoder) else {}
    slow_ids = {id(p) for p in slow.values()}
    groups: list[dict[str, Any]] = [{"params": [p for p in model.parameters() if id(p) not in slow_ids]}]
    if slow:
        n_layers = int(encoder.transformer.config.num_hidden_layers)
        by_depth: dict[int, list[torch.nn.Parameter]] = {}
        for name, p in slow.items():
            by_depth.setdefault(minilm_depth(name, n_layers), []).append(p)
        for depth in sorted(by_depth):
            lr = cfg.text.finetune_lr * cfg.text.layer_decay ** (n_layers + 1 - depth)
            groups.append({"params": by_depth[depth], "lr": lr})
    return groups


def top_block_groups(cfg: Config, model: torch.nn.Module,
                     top: TopBlocks | WhisperTopBlocks) -> list[dict[str, Any]]:
    """``train.lr`` for the model above the encoder; the tuned block d places below the
    top at ``finetune.lr * finetune.layer_decay ** d`` (MPNet's shared relative bias with
    the lowest tuned block, Whisper's final LayerNorm with the top one), each group marked
    ``tuned`` for its own warm-up."""
    tuned = {id(p) for p in top.parameters()}
    groups: list[dict[str, Any]] = [{"params": [p for p in model.parameters() if id(p) not in tuned]}]
    n = len(top.blocks)
    rel, ln_post = getattr(top, "rel", None), getattr(top, "ln_post", None)
    for i, block in enumerate(top.blocks):
        params = list(block.parameters()) + (list(rel.parameters()) if i == 0 and rel else [])
        params += list(ln_post.parameters()) if i == n - 1 and ln_post else []
        groups.append({"params": params, "lr": cfg.finetune.lr * cfg.finetune.layer_decay ** (n - 1 - i),
                       "tuned": True})
    return groups


def make_scheduler(cfg: Config, optimizer: torch.optim.Optimizer, steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Warm-up + cosine per group: ``train.warmup_epochs`` for the model, and
    ``finetune.warmup_epochs`` for tuned encoder blocks (groups marked ``tuned``)."""
    t = cfg.train
    total = steps * t.epochs
    return torch.optim.lr_scheduler.LambdaLR(optimizer, [
        lr_lambda(total, steps * (cfg.finetune.warmup_epochs if g.get("tuned") else t.warmup_epochs))
        for g in optimizer.param_groups])


def minilm_depth(name: str, n_layers: int) -> int:
    """Depth of a MiniLMEncoder parameter (its name): 0 embeddings, i + 1 for
    ``encoder.layer.i``, n_layers + 1 for anything above (the pooler)."""
    parts = name.split(".")
    if "embeddings" in parts:
        return 0
    if "layer" in parts:
        index = parts[parts.index("layer") + 1]
        if index.isdigit():
            return int(index) + 1
    return n_layers + 1


def freeze_text_encoder(model: torch.nn.Module, frozen: bool) -> None:
    """Stop (or restart) training a fine-tuned MiniLM (``text.freeze_epochs``): frozen
    weights get no gradient, so AdamW leaves them and their moments untouched."""
    encoder = getattr(model, "text_encoder", None)
    if isinstance(encoder, MiniLMEncoder):
        for p in encoder.parameters():
            p.requires_grad_(not frozen)


def make_optimizer(cfg: Config, model: torch.nn.Module) -> torch.optim.Optimizer:
    t = cfg.train
    groups = param_groups(cfg, model)
    if t.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=t.lr, weight_decay=t.weight_decay)
    if t.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=t.lr, momentum=0.9, weight_decay=t.weight_decay, nesterov=True)
    raise ConfigError(f"unknown train.optimizer {t.optimizer!r}; valid: adamw, sgd")


def score(model, dataset: FeatureDataset | None, names: list[str], device, batch_size: int,
          extra_names: dict[str, list[str]] | None = None) -> dict:
    """Softmax-head accuracy, UAR, macro and weighted F1 on `dataset` ({} when there is
    none), and the same of each extra head as ``<task>_<metric>`` (e.g. ``sentiment_weighted_f1``)."""
    if dataset is None:
        return {}
    tasks = [t for t in dataset.targets if extra_names and t in extra_names]
    out = embed(model, eval_loader(dataset, batch_size), device=device, tasks=tasks)
    metrics = classification_metrics(out["labels"], out["logits"].argmax(1), names)
    result = {k: metrics[k] for k in SCALAR_METRICS}
    for task in tasks:
        m = classification_metrics(dataset.targets[task].numpy(), out[f"extra_logits/{task}"].argmax(1),
                                   extra_names[task])
        result.update({f"{task}_{k}": m[k] for k in SCALAR_METRICS})
    return result


def run_fold(cfg: Config, fold: int, out_dir: str | Path) -> dict[str, Any]:
    """Train fold `fold` into `out_dir` (resumable); returns the fold result.

    With ``train.refit`` the validation actors first choose the epoch count E in
    ``out_dir/select/`` (its own best.pt); then a model trained on training + validation
    actors for E epochs, on the same learning-rate schedule, becomes ``out_dir/best.pt``.
    The result keeps the selection's validation scores and its test scores as
    ``select_test_*``. With ``eval.probe`` the linear probe of the fold's data (train,
    C on val, test; :func:`mmer.train.probe.train_fold_probe`) is written to
    ``out_dir/linear_probe.json`` and its scores join the result as ``probe_<part>_<metric>``.
    """
    data = fold_data(cfg, fold)
    if not cfg.train.refit:
        result = train_fold(cfg, data, out_dir)
    elif data.parts["val"] is None:
        raise ConfigError(f"fold {fold}: train.refit needs validation clips to choose the epoch count "
                         f"(split.n_val_actors is 0)")
    else:
        selected = train_fold(cfg, data, Path(out_dir) / "select")
        result = train_fold(cfg, fold_data(cfg, fold, merge_val=True), out_dir, stop_after=selected["epoch"])
        result.update({k: v for k, v in selected.items() if k.startswith("val_")})
        result.update({f"select_{k}": v for k, v in selected.items() if k.startswith("test_")})
        result["selected_by"] = f"refit on train + val for the epochs chosen by {selected['selected_by']}"
    if cfg.eval.probe and distributed.context().is_main:  # the fold's own split, C on validation
        result.update(train_fold_probe(data, get_adapter(cfg).selection_metric, out_dir))
    return result


def train_fold(cfg: Config, data: FoldData, out_dir: str | Path, *,
               stop_after: int | None = None) -> dict[str, Any]:
    """Train one fold into `out_dir` (resuming from its ``last.pt``); returns the fold result:
    best epoch and its validation scores, and the test scores of ``best.pt``.

    `stop_after`: stop after that many of the ``train.epochs`` epochs (the learning-rate
    schedule still spans all of them). Without validation clips the last epoch is best."""
    out_dir = Path(out_dir)
    ctx = distributed.context()
    cfg = with_world_size(cfg, ctx.world_size)
    t = cfg.train
    device = distributed.local_device(resolve_device(t.device))
    set_deterministic(t.deterministic)
    threads = torch.get_num_threads()
    if t.deterministic:  # CPU kernels split reductions by thread count: fix it for the math
        torch.set_num_threads(1)
        log.info("train.deterministic: torch held to 1 thread for this fold (was %d)", threads)
    seed_everything(t.seed)
    train_set, tok = data.parts["train"], data.tokenizer
    model, loss_fn = _model_and_loss(cfg, data, device)
    optimizer = make_optimizer(cfg, model)
    steps = len(train_loader(train_set, t, seed=t.seed, epoch=0))
    scheduler = make_scheduler(cfg, optimizer, steps)
    state = {"config": config_to_dict(cfg), "split": data.split, "label_names": data.label_names,
             "input_shapes": {k: list(v) for k, v in train_set.input_shapes.items()},
             "extra_classes": data.extra_classes, "git": git_info(Path(__file__).parent),
             "tokenizer": tok.state() if tok is not None else None}
    start, best = _start(out_dir, state, model, optimizer, scheduler)
    net, loss_fn = distributed.wrap_model(model, device), distributed.GatheredLoss(loss_fn)
    adapter = get_adapter(cfg)
    key, extra_names = adapter.selection_metric, adapter.extra_tasks
    if ctx.is_main:
        _announce(cfg, out_dir, state, data)
    rows = [r for r in read_metrics(out_dir / "metrics.jsonl") if r["epoch"] <= start]
    writer = SummaryWriter(str(out_dir), purge_step=start + 1) if ctx.is_main else None
    end = t.epochs if stop_after is None else min(stop_after, t.epochs)
    try:
        for epoch in tqdm(range(start, end), desc="epochs", initial=start, total=end):
            seed_everything(derive_seed(t.seed, epoch))
            loader = distributed.shard_loader(train_loader(train_set, t, seed=t.seed, epoch=epoch), ctx)
            freeze_text_encoder(model, epoch < cfg.text.freeze_epochs)
            lr = optimizer.param_groups[0]["lr"]
            train_m = train_one_epoch(net, loader, loss_fn, optimizer, device=device, epoch=epoch + 1,
                                      grad_clip=t.grad_clip, mixup_alpha=t.augment.mixup_alpha,
                                      step_fn=scheduler.step)
            val_m = score(model, data.parts["val"], data.label_names, device, t.batch_size, extra_names)
            row = {"epoch": epoch + 1, "lr": lr, **{f"train_{k}": v for k, v in train_m.items()},
                   **{f"val_{k}": v for k, v in val_m.items()}}
            rows.append(row)
            if writer is not None:
                _log_row(writer, row)
            state.update(epoch=epoch + 1, model=model.state_dict(), optimizer=optimizer.state_dict(),
                         scheduler=scheduler.state_dict(), metrics=row)
            if _improves(best, val_m, key):
                # Without validation clips the val_* scores are None: never measured.
                best = {"epoch": epoch + 1, "selected_by": f"val_{key}" if val_m else "last epoch (no validation)",
                        "val_uar": None, "val_accuracy": None, **{f"val_{k}": v for k, v in val_m.items()}}
                if ctx.is_main:
                    save_checkpoint(out_dir / "best.pt", dict(state, best=best))
            if ctx.is_main:
                write_metrics(out_dir / "metrics.jsonl", rows)
                save_checkpoint(out_dir / "last.pt", dict(state, best=best))
    finally:
        if writer is not None:
            writer.close()
    distributed.barrier()  # best.pt is on disk before any rank scores the test part
    try:
        return dict(_result(cfg, data, out_dir, best, device), world_size=ctx.world_size)
    finally:
        torch.set_num_threads(threads)


def with_world_size(cfg: Config, world_size: int) -> Config:
    """`cfg` with ``train.world_size`` resolved to the launched number of processes; a
    config that names another number is refused (its batches would not be the ones asked for)."""
    asked = cfg.train.world_size
    if asked not in (0, world_size):
        raise ConfigError(f"train.world_size is {asked} but {world_size} process(es) were launched; "
                          f"launch torchrun with {asked} processes or set train.world_size=0")
    return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, world_size=world_size))


def _model_and_loss(cfg: Config, data: FoldData, device: torch.device) -> tuple[torch.nn.Module, Any]:
    """The model (input standardisers fitted on the training clips) and its loss, on `device`."""
    train_set, tok = data.parts["train"], data.tokenizer
    model = build_model(cfg, train_set.input_shapes, n_classes=len(data.label_names),
                        extra_classes=data.extra_classes,
                        vocab=(tok.vocab_size, tok.pad_id) if tok is not None else None)
    model.fit_input_stats(train_set.inputs)
    loss_fn = build_loss(cfg.loss, data.label_names, train_labels=train_set.labels.tolist(),
                         extra_weights={k: cfg.loss.sentiment_weight for k in data.extra_classes},
                         extra_train_labels={k: (train_set.targets[k].tolist(), n)
                                             for k, n in data.extra_classes.items()})
    return model.to(device), loss_fn.to(device)


def _log_row(writer: SummaryWriter, row: dict[str, Any]) -> None:
    for k, v in row.items():
        if k != "epoch":
            writer.add_scalar(k.replace("_", "/", 1), v, row["epoch"])
    log.info("epoch %d: %s", row["epoch"], {k: round(v, 4) for k, v in row.items()})


def _improves(best: dict | None, val_m: dict[str, float], key: str) -> bool:
    """Whether this epoch becomes best.pt: a higher validation `key`, or any epoch without
    validation clips (then the last epoch counts as the best)."""
    return best is None or not val_m or val_m[key] > best.get(f"val_{key}", -1.0)


def _start(out_dir: Path, state: dict, model, optimizer, scheduler) -> tuple[int, dict | None]:
    """(epochs already done, best so far) from ``last.pt``, after loading its states."""
    last = out_dir / "last.pt"
    if not last.is_file():
        return 0, None
    ckpt = load_checkpoint(last)
    ckpt["config"].setdefault("train", {}).setdefault("world_size", 1)  # runs from before torchrun
    if ckpt["config"] != state["config"]:
        diff = config_diff(ckpt["config"], state["config"])
        raise ConfigError(f"{last} was trained with another config ({', '.join(diff[:5])}); "
                         f"use --run-name for a new run or delete {out_dir}")
    model.load_state_dict(ckpt["model"])
    optimizer.load_state_dict(ckpt["optimizer"])
    scheduler.load_state_dict(ckpt["scheduler"])
    log.info("resuming %s after epoch %d", out_dir, ckpt["epoch"])
    return int(ckpt["epoch"]), ckpt.get("best")


def _announce(cfg: Config, out_dir: Path, state: dict, data: FoldData) -> None:
    writable_folder(out_dir)
    clean_orphans(out_dir)  # temporary files of a killed run (last.pt, config.yaml, ...)
    g = state["git"]
    log.info("git %s%s", g["sha"], " (dirty: uncommitted changes)" if g["dirty"] else "")
    log.info("config:\n%s", yaml.safe_dump(state["config"], sort_keys=False))
    write_fold_start(out_dir, cfg, data.split, data.skips)
    sizes = {p: (len(d) if d is not None else 0) for p, d in data.parts.items()}
    log.info("clips per part: %s", sizes)


def _result(cfg: Config, data: FoldData, out_dir: Path, best: dict | None, device) -> dict[str, Any]:
    """The fold result: `best`, and from best.pt (read once) the run folder's
    reference.pt and text_encoder/ (rank 0) and the test scores."""
    result: dict[str, Any] = dict(best or {})
    is_main = distributed.context().is_main
    if not (out_dir / "best.pt").is_file() or not (is_main or data.parts["test"] is not None):
        return result
    model, ckpt = model_from_checkpoint(load_checkpoint(out_dir / "best.pt"))
    model = model.to(device)
    if is_main:
        _write_reference(cfg, data, out_dir, model, ckpt.get("epoch"), device)
        if cfg.text.finetune and cfg.text.encoder == "minilm":  # for text.model_dir
            save_minilm_folder(model.text_encoder, minilm_dir(cfg.text), out_dir / TEXT_ENCODER_DIR)
    if data.parts["test"] is not None:
        test = score(model, data.parts["test"], data.label_names, device, cfg.train.batch_size,
                     get_adapter(cfg).extra_tasks)
        result.update({f"test_{k}": v for k, v in test.items()})
    return result


def _write_reference(cfg: Config, data: FoldData, out_dir: Path, model: torch.nn.Module, epoch: Any,
                     device) -> None:
    """``reference.pt``: best.pt's (`model`'s) training embeddings and a probe clip, for predict."""
    train = data.parts["train"]
    out = embed(model, eval_loader(train, cfg.train.batch_size), device=device)
    first = train.clip_ids[0]
    probe = {"clip_id": first, "path": (data.train_paths or {}).get(first),
             "features": {k: v[0].clone() for k, v in train.inputs.items()}}
    write_reference(out_dir, "best.pt", epoch, out, train.clip_ids, train.speakers, probe)


def config_diff(a: Any, b: Any, prefix: str = "") -> list[str]:
    """The leaves where config dicts `a` and `b` differ, as ``"key.path: a -> b"``."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            out += config_diff(a.get(k), b.get(k), f"{prefix}{k}.")
        return out
    return [] if a == b else [f"{prefix.rstrip('.')}: {a!r} -> {b!r}"]

