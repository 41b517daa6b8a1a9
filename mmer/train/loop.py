"""Training of one fold: data from the feature cache, epochs, checkpoints, resume.

:func:`fold_data` reads the records, splits them (RAVDESS by actor with
``fold_split``/``split_records``; MELD by its own train/dev/test) and loads the cached
features; :func:`train_fold` trains with checkpoints in the fold folder. Rerunning the
same command resumes from ``last.pt``; every epoch reseeds from ``(seed, epoch)``, so a
resumed run ends with the same weights as an uninterrupted one.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml
from tqdm import tqdm

from mmer.config import Config, config_to_dict, save_config
from mmer.data.dataset import FeatureDataset, eval_loader, label_names, train_loader
from mmer.engine import embed, train_one_epoch
from mmer.eval.metrics import SCALAR_METRICS, classification_metrics
from mmer.io import SkipList, atomic_write_json
from mmer.losses import build_loss
from mmer.models.build import build_model, input_keys
from mmer.runs import git_info, load_checkpoint, read_metrics, save_checkpoint, write_metrics
from mmer.seed import derive_seed, seed_everything, set_deterministic

log = logging.getLogger(__name__)
PARTS = ("train", "val", "test")


class CacheIncompleteError(RuntimeError):
    """Clips without cached features: run the extractor first."""


@dataclass
class FoldData:
    """The datasets of one fold and what a checkpoint must remember about them."""

    parts: dict[str, FeatureDataset | None]
    split: dict[str, Any]
    label_names: list[str]
    extra_classes: dict[str, int]
    skips: SkipList


def extra_label_names(dataset: str) -> dict[str, list[str]]:
    """{task: label names} of the dataset's extra classification tasks: MELD's sentiment."""
    if dataset == "meld":
        from mmer.data.meld import MELD_SENTIMENTS
        return {"sentiment": list(MELD_SENTIMENTS)}
    return {}


def extra_tasks(cfg: Config) -> dict[str, int]:
    """Extra classification tasks of the dataset: MELD's sentiment (3 classes)."""
    return {task: len(names) for task, names in extra_label_names(cfg.dataset).items()}


def selection_metric(cfg: Config) -> str:
    """The validation score ``best.pt`` maximises: MELD's benchmark metric is the
    (support-)weighted F1 of the emotion head, RAVDESS's the UAR."""
    return "weighted_f1" if cfg.dataset == "meld" else "uar"


def split_parts(cfg: Config, records: list, fold: int) -> tuple[dict[str, list], dict[str, Any]]:
    """({part: records}, split description) for `fold`."""
    if cfg.dataset == "meld":
        parts = {"train": [], "val": [], "test": []}
        names = {"train": "train", "dev": "val", "test": "test"}
        for r in records:
            parts[names[r.clip_id.split("/", 1)[0]]].append(r)
        clips = {p: [r.clip_id for r in parts[p]] for p in PARTS}
        return parts, {"rule": "MELD train / dev (validation) / test", "clips": clips}
    from mmer.data.splits import fold_split, record_actors, split_records, split_to_json
    split = fold_split(record_actors(records), cfg.split, fold)
    parts = split_records(records, split)
    return {p: list(parts.get(p, [])) for p in PARTS}, split_to_json(split, parts)


def fold_data(cfg: Config, fold: int, *, merge_val: bool = False) -> FoldData:
    """Records -> split -> cached entries -> datasets. Raises CacheIncompleteError when
    clips have no cache entry and were not skipped by the extractor. `merge_val`: the
    validation clips join the training clips (a refit; no validation part).

    A text-only MELD model needs no clips: its entries are the CSV records themselves.
    A ``"text"`` input is the clip's frozen sentence embedding, joined by clip."""
    from mmer.extract import collect_records, needs_clips
    from mmer.features.cache import FeatureCache
    records, skips = collect_records(cfg)
    cache = FeatureCache.for_config(cfg)
    clips = needs_clips(cfg)
    usable = _cached_records(records, cache, skips, cfg) if clips else records
    keys = list(input_keys(cfg.model).values())
    return _fold_datasets(cfg, usable, skips, fold, keys, cache, clips, merge_val)


def _cached_records(records: list, cache, skips: SkipList, cfg: Config) -> list:
    """The records with a cache entry; extraction skips are listed, other misses raise."""
    skipped_before = {s.item for s in SkipList.read(cache.skip_file)} if cache.skip_file.is_file() else set()
    usable, missing = [], []
    for r in records:
        if cache.has(r):
            usable.append(r)
        elif str(r.path) in skipped_before or r.clip_id in skipped_before:
            skips.add(r.clip_id, "skipped by feature extraction (see the cache's skipped.tsv)")
        else:
            missing.append(r)
    if missing:
        raise CacheIncompleteError(
            f"{len(missing)} of {len(records)} clips have no cached features in {cache.dir} "
            f"(first: {missing[0].clip_id}); run: python -m mmer.extract --config <this config>")
    if not usable:
        raise CacheIncompleteError(f"no clips with cached features for {cfg.dataset} in {cache.dir}")
    return usable


def _fold_datasets(cfg: Config, usable: list, skips: SkipList, fold: int, keys: list[str], cache,
                   clips: bool, merge_val: bool = False) -> FoldData:
    visual = None
    if "visual" in keys:  # precomputed table: clips without a row and unused rows are listed
        from mmer.data.visual_table import visual_features
        visual, listing = visual_features(cfg.ravdess, usable)
        skips.extend(listing)
        usable = [r for r in usable if r.clip_id in visual]
    parts, split = split_parts(cfg, usable, fold)
    if merge_val:
        parts, split = _merge_val(parts, split)
    tasks = list(extra_tasks(cfg))
    from mmer.extract import record_entry
    datasets: dict[str, FeatureDataset | None] = {}
    truncated = {}
    for p in PARTS:
        entries = [cache.get(r) for r in parts[p]] if clips else [record_entry(r) for r in parts[p]]
        truncated[p] = sum(bool((e.get("meta") or {}).get("truncated")) for e in entries)
        if "text" in keys:
            from mmer.features.text import with_text
            entries = with_text(entries, cfg)
        if visual is not None:
            from mmer.data.visual_table import with_visual
            entries = with_visual(entries, visual)
        if cfg.model.speaker_norm and entries:  # each side's speakers are its own
            from mmer.data.speaker_norm import speaker_normalise
            entries = speaker_normalise(entries, keys)
        datasets[p] = FeatureDataset(entries, keys, augment=cfg.train.augment, seed=cfg.train.seed,
                                     extra_targets=tasks) if entries else None
    if datasets["train"] is None:
        raise ValueError(f"fold {fold}: no training clips")
    if cfg.dataset == "meld" and clips:
        log.info("clips truncated at meld.max_seconds = %g s: %s", cfg.meld.max_seconds, truncated)
    return FoldData(datasets, split, label_names(cfg.dataset), extra_tasks(cfg), skips)


def _merge_val(parts: dict[str, list], split: dict[str, Any]) -> tuple[dict[str, list], dict[str, Any]]:
    """The validation part moved into the training part, in the records and in the split
    description (which records what was merged under ``"refit"``)."""
    split = dict(split, refit={"val_actors": list((split.get("actors") or {}).get("val", [])),
                               "val_clips": len(parts["val"])})
    for side in ("actors", "clips"):
        if side in split:
            split[side] = dict(split[side], train=list(split[side]["train"]) + list(split[side]["val"]),
                               val=[])
    return dict(parts, train=parts["train"] + parts["val"], val=[]), split


def lr_lambda(total_steps: int, warmup_steps: int):
    """Linear warm-up to 1 over `warmup_steps`, then cosine decay to 0 at `total_steps`."""
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(total_steps - warmup_steps, 1)
        return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))
    return factor


def make_optimizer(cfg: Config, model: torch.nn.Module) -> torch.optim.Optimizer:
    t = cfg.train
    if t.optimizer == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=t.lr, weight_decay=t.weight_decay)
    if t.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=t.lr, momentum=0.9, weight_decay=t.weight_decay,
                               nesterov=True)
    raise ValueError(f"unknown train.optimizer {t.optimizer!r}; valid: adamw, sgd")


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
    ``select_test_*``.
    """
    data = fold_data(cfg, fold)
    if not cfg.train.refit:
        return train_fold(cfg, data, out_dir)
    if data.parts["val"] is None:
        raise ValueError(f"fold {fold}: train.refit needs validation clips to choose the epoch count "
                         f"(split.n_val_actors is 0)")
    selected = train_fold(cfg, data, Path(out_dir) / "select")
    result = train_fold(cfg, fold_data(cfg, fold, merge_val=True), out_dir, stop_after=selected["epoch"])
    result.update({k: v for k, v in selected.items() if k.startswith("val_")})
    result.update({f"select_{k}": v for k, v in selected.items() if k.startswith("test_")})
    result["selected_by"] = f"refit on train + val for the epochs chosen by {selected['selected_by']}"
    return result


def train_fold(cfg: Config, data: FoldData, out_dir: str | Path, *,
               stop_after: int | None = None) -> dict[str, Any]:
    """Train one fold into `out_dir` (resuming from its ``last.pt``); returns the fold result:
    best epoch and its validation scores, and the test scores of ``best.pt``.

    `stop_after`: stop after that many of the ``train.epochs`` epochs (the learning-rate
    schedule still spans all of them). Without validation clips the last epoch is best."""
    out_dir = Path(out_dir)
    t = cfg.train
    from mmer.extract import resolve_device
    device = resolve_device(t.device)
    set_deterministic(t.deterministic)
    seed_everything(t.seed)
    train_set = data.parts["train"]
    model = build_model(cfg, train_set.input_shapes, n_classes=len(data.label_names),
                        extra_classes=data.extra_classes)
    model.fit_input_stats(train_set.inputs)
    model = model.to(device)
    loss_fn = build_loss(cfg.loss, data.label_names, train_labels=train_set.labels.tolist(),
                         extra_weights={k: cfg.loss.sentiment_weight for k in data.extra_classes},
                         extra_train_labels={k: (train_set.targets[k].tolist(), n)
                                             for k, n in data.extra_classes.items()}).to(device)
    optimizer = make_optimizer(cfg, model)
    steps = len(train_loader(train_set, t, seed=t.seed, epoch=0))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lr_lambda(steps * t.epochs, steps * t.warmup_epochs))
    state = {"config": config_to_dict(cfg), "split": data.split, "label_names": data.label_names,
             "input_shapes": {k: list(v) for k, v in train_set.input_shapes.items()},
             "extra_classes": data.extra_classes, "git": git_info(Path(__file__).parent)}
    start, best = _start(out_dir, state, model, optimizer, scheduler)
    key, extra_names = selection_metric(cfg), extra_label_names(cfg.dataset)
    _announce(cfg, out_dir, state, data)
    rows = [r for r in read_metrics(out_dir / "metrics.jsonl") if r["epoch"] <= start]
    from torch.utils.tensorboard import SummaryWriter
    writer = SummaryWriter(str(out_dir), purge_step=start + 1)
    end = t.epochs if stop_after is None else min(stop_after, t.epochs)
    try:
        for epoch in tqdm(range(start, end), desc="epochs", initial=start, total=end):
            seed_everything(derive_seed(t.seed, epoch))
            loader = train_loader(train_set, t, seed=t.seed, epoch=epoch)
            lr = optimizer.param_groups[0]["lr"]
            train_m = train_one_epoch(model, loader, loss_fn, optimizer, device=device, epoch=epoch + 1,
                                      grad_clip=t.grad_clip, mixup_alpha=t.augment.mixup_alpha,
                                      step_fn=scheduler.step)
            val_m = score(model, data.parts["val"], data.label_names, device, t.batch_size, extra_names)
            row = {"epoch": epoch + 1, "lr": lr, **{f"train_{k}": v for k, v in train_m.items()},
                   **{f"val_{k}": v for k, v in val_m.items()}}
            rows.append(row)
            for k, v in row.items():
                if k != "epoch":
                    writer.add_scalar(k.replace("_", "/", 1), v, epoch + 1)
            log.info("epoch %d: %s", epoch + 1, {k: round(v, 4) for k, v in row.items()})
            state.update(epoch=epoch + 1, model=model.state_dict(), optimizer=optimizer.state_dict(),
                         scheduler=scheduler.state_dict(), metrics=row)
            # Without validation actors the last epoch counts as the best.
            if best is None or not val_m or val_m[key] > best.get(f"val_{key}", -1.0):
                best = {"epoch": epoch + 1, "selected_by": f"val_{key}" if val_m else "last epoch (no validation)",
                        "val_uar": -1.0,
                        "val_accuracy": None, **{f"val_{k}": v for k, v in val_m.items()}}
                save_checkpoint(out_dir / "best.pt", dict(state, best=best))
            write_metrics(out_dir / "metrics.jsonl", rows)
            save_checkpoint(out_dir / "last.pt", dict(state, best=best))
    finally:
        writer.close()
    return _result(cfg, data, out_dir, best, device)


def _start(out_dir: Path, state: dict, model, optimizer, scheduler) -> tuple[int, dict | None]:
    """(epochs already done, best so far) from ``last.pt``, after loading its states."""
    last = out_dir / "last.pt"
    if not last.is_file():
        return 0, None
    ckpt = load_checkpoint(last)
    if ckpt["config"] != state["config"]:
        diff = _diff(ckpt["config"], state["config"])
        raise ValueError(f"{last} was trained with another config ({', '.join(diff[:5])}); "
                         f"use --run-name for a new run or delete {out_dir}")
    model.load_state_dict(ckpt["model"])
    optimizer.load_state_dict(ckpt["optimizer"])
    scheduler.load_state_dict(ckpt["scheduler"])
    log.info("resuming %s after epoch %d", out_dir, ckpt["epoch"])
    return int(ckpt["epoch"]), ckpt.get("best")


def _announce(cfg: Config, out_dir: Path, state: dict, data: FoldData) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    g = state["git"]
    log.info("git %s%s", g["sha"], " (dirty: uncommitted changes)" if g["dirty"] else "")
    log.info("config:\n%s", yaml.safe_dump(state["config"], sort_keys=False))
    save_config(cfg, out_dir / "config.yaml")
    atomic_write_json(out_dir / "split.json", data.split)
    data.skips.write(out_dir / "skipped.tsv")
    sizes = {p: (len(d) if d is not None else 0) for p, d in data.parts.items()}
    log.info("clips per part: %s", sizes)


def _result(cfg: Config, data: FoldData, out_dir: Path, best: dict | None, device) -> dict[str, Any]:
    result: dict[str, Any] = dict(best or {})
    if (out_dir / "best.pt").is_file() and data.parts["test"] is not None:
        from mmer.runs import model_from_checkpoint
        model, _ = model_from_checkpoint(load_checkpoint(out_dir / "best.pt"))
        test = score(model.to(device), data.parts["test"], data.label_names, device, cfg.train.batch_size,
                     extra_label_names(cfg.dataset))
        result.update({f"test_{k}": v for k, v in test.items()})
    return result


def _diff(a: Any, b: Any, prefix: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            out += _diff(a.get(k), b.get(k), f"{prefix}{k}.")
        return out
    return [] if a == b else [f"{prefix.rstrip('.')}: {a!r} -> {b!r}"]

