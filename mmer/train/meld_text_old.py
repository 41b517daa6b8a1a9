"""Text-only MELD from the CSVs alone: train on train, select on dev, no clips needed.

    python -m mmer.meld_text --config configs/meld_text.yaml [--set key=value ...]
                             [--run-name NAME]

Records come from :func:`mmer.data.meld.meld_records` with ``require_clips=False``.
Text features, per ``text.encoder`` / ``text.finetune``:

- minilm, frozen: cached 384-d MiniLM sentence embeddings (:mod:`mmer.features.text`)
  as the ``"text"`` input of the shared EmotionModel (``model.modalities: [text]``);
- minilm fine-tuned, or scratch: token ids through :class:`mmer.models.text.TokenTextModel`.

The model projects the text to ``model.d_model`` and has an emotion (7) and a sentiment
(3) head; the loss is the shared :class:`mmer.losses.EmotionLoss`. Batches are drawn in
natural class proportions (weighted F1 rewards the frequent classes; ``loss.class_weights``
re-weights the emotion cross-entropy). ``best.pt`` is the epoch with the highest dev
emotion weighted F1. Writes ``<train.runs_dir>/<NAME>/``: config.yaml, metrics.jsonl,
last.pt, best.pt, skipped.tsv, report.json (dev, and test when its CSV exists).
Exit codes: 0 done, 1 non-finite loss, 2 bad config or data.
"""
from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, default_collate

from mmer.cli import setup_logging
from mmer.config import Config, ConfigError, config_to_dict, load_config, save_config
from mmer.data.class_weights import MELD_TASKS, meld_class_weights, task_labels
from mmer.data.meld import MELD_EMOTIONS, meld_records, split_files
from mmer.data.records import ClipRecord
from mmer.engine import NonFiniteLossError, embed, train_one_epoch
from mmer.eval.metrics import classification_metrics
from mmer.extract import resolve_device
from mmer.io import SkipList, atomic_write_json
from mmer.losses import build_loss
from mmer.models.build import build_model
from mmer.runs import git_info, save_checkpoint, write_metrics
from mmer.seed import derive_seed, make_generator, seed_everything, set_deterministic, worker_init_fn
from mmer.training import lr_lambda

log = logging.getLogger(__name__)
SPLITS = ("train", "dev", "test")
EXTRA_CLASSES = {"sentiment": len(MELD_TASKS["sentiment"])}


@dataclass
class TextSplit:
    """One split's inputs: ``"text"`` (N, D) float, or ``"input_ids"`` and
    ``"attention_mask"`` (N, T); labels (N,) emotion; sentiments (N,)."""

    inputs: dict[str, Tensor]
    labels: Tensor
    sentiments: Tensor
    clip_ids: list[str]


def trim_collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Default collation, then token inputs cut to the batch's longest text (B, T_batch)."""
    batch = default_collate(items)
    if "attention_mask" in batch:
        width = max(int(batch["attention_mask"].sum(1).max()), 1)
        batch["input_ids"] = batch["input_ids"][:, :width]
        batch["attention_mask"] = batch["attention_mask"][:, :width]
    return batch


class TextDataset(Dataset):
    """Item i: each input tensor's row i, ``label``, ``sentiment`` and ``index``."""

    def __init__(self, split: TextSplit) -> None:
        self.split = split

    def __len__(self) -> int:
        return len(self.split.labels)

    def __getitem__(self, index: int) -> dict[str, Any]:
        item: dict[str, Any] = {k: v[index] for k, v in self.split.inputs.items()}
        item.update(label=self.split.labels[index], sentiment=self.split.sentiments[index],
                    index=index)
        return item


def uses_tokens(cfg: Config) -> bool:
    """True when the text encoder is trained (scratch, or fine-tuned MiniLM) on token ids."""
    return cfg.text.encoder == "scratch" or cfg.text.finetune


def read_records(cfg: Config) -> tuple[dict[str, list[ClipRecord]], SkipList]:
    """{split: records} from the CSVs (train and dev required; test when its CSV exists)."""
    parts, skips = {}, SkipList()
    for split in SPLITS:
        if split == "test" and not split_files(cfg.meld, split)[0].is_file():
            log.info("no MELD test CSV at %s; scoring dev only", split_files(cfg.meld, split)[0])
            continue
        parts[split], part_skips = meld_records(cfg.meld, split, require_clips=False)
        skips.extend(part_skips)
        if not parts[split]:
            raise ValueError(f"MELD {split}: no usable rows in {split_files(cfg.meld, split)[0]}")
    return parts, skips


def featurise(cfg: Config, parts: dict[str, list[ClipRecord]]) -> tuple[dict[str, TextSplit], Any]:
    """({split: TextSplit}, tokenizer or None for cached sentence embeddings)."""
    texts = {s: [str(r.extra["text"]) for r in recs] for s, recs in parts.items()}
    tokenizer = None
    if uses_tokens(cfg):
        from mmer.text_tokenizer import make_tokenizer
        tokenizer = make_tokenizer(cfg.text, texts["train"])
        inputs = {}
        for s, t in texts.items():
            batch = tokenizer.encode(t, cfg.text.max_tokens)
            inputs[s] = {"input_ids": batch.ids, "attention_mask": batch.mask}
    else:
        from mmer.features.text import sentence_embeddings
        vectors = sentence_embeddings([t for s in parts for t in texts[s]], cfg)
        chunks = vectors.split([len(texts[s]) for s in parts])
        inputs = {s: {"text": v} for s, v in zip(parts, chunks, strict=True)}
    out = {s: TextSplit(inputs[s], torch.tensor(task_labels(recs, "emotion")),
                        torch.tensor(task_labels(recs, "sentiment")), [r.clip_id for r in recs])
           for s, recs in parts.items()}
    return out, tokenizer


def build_text_model(cfg: Config, tokenizer: Any = None) -> tuple[nn.Module, dict[str, list[int]]]:
    """(model, input shapes of the inner EmotionModel) for a text-only config."""
    if list(cfg.model.modalities) != ["text"]:
        raise ConfigError(f"mmer.meld_text trains text only: set model.modalities to [text] "
                          f"(got {cfg.model.modalities})")
    if tokenizer is None:
        shapes = {"text": [384]}
        return build_model(cfg, shapes, n_classes=len(MELD_EMOTIONS), extra_classes=EXTRA_CLASSES), shapes
    from mmer.models.text import TokenTextModel, build_text_encoder
    encoder = build_text_encoder(cfg.text, vocab_size=tokenizer.vocab_size, pad_id=tokenizer.pad_id,
                                 dropout=cfg.model.dropout)
    shapes = {"text": [encoder.out_dim]}
    inner = build_model(cfg, shapes, n_classes=len(MELD_EMOTIONS), extra_classes=EXTRA_CLASSES)
    return TokenTextModel(encoder, inner), shapes


def make_optimizer(cfg: Config, model: nn.Module) -> torch.optim.Optimizer:
    """AdamW; a fine-tuned MiniLM's weights get ``text.finetune_lr``, the rest ``train.lr``."""
    pretrained = cfg.text.encoder == "minilm" and isinstance(getattr(model, "text_encoder", None), nn.Module)
    slow = list(model.text_encoder.parameters()) if pretrained else []
    slow_ids = {id(p) for p in slow}
    groups = [{"params": [p for p in model.parameters() if id(p) not in slow_ids]}]
    if slow:
        groups.append({"params": slow, "lr": cfg.text.finetune_lr})
    return torch.optim.AdamW(groups, lr=cfg.train.lr, weight_decay=cfg.train.weight_decay)


def score(model: nn.Module, split: TextSplit, device: torch.device, batch_size: int) -> dict[str, dict]:
    """{"emotion": metrics, "sentiment": metrics} of the softmax heads on `split`."""
    loader = DataLoader(TextDataset(split), batch_size=batch_size, shuffle=False, collate_fn=trim_collate)
    out = embed(model, loader, device=device, tasks=["sentiment"])
    preds = {"emotion": out["logits"].argmax(1), "sentiment": out["extra_logits/sentiment"].argmax(1)}
    truth = {"emotion": split.labels.numpy(), "sentiment": split.sentiments.numpy()}
    return {t: classification_metrics(truth[t], preds[t], MELD_TASKS[t]) for t in MELD_TASKS}


def headline(metrics: dict[str, dict]) -> dict[str, float]:
    """Weighted F1, accuracy and macro-F1 of both heads as flat ``emotion_weighted_f1`` keys."""
    return {f"{t}_{k}": metrics[t][k] for t in MELD_TASKS for k in ("weighted_f1", "accuracy", "macro_f1")}


def train_text(cfg: Config, out_dir: str | Path) -> dict[str, Any]:
    """Train into `out_dir`; returns the report (best epoch, dev and test scores of best.pt)."""
    out_dir, t = Path(out_dir), cfg.train
    device = resolve_device(t.device)
    set_deterministic(t.deterministic)
    records, skips = read_records(cfg)
    weights = meld_class_weights(records["train"])
    data, tokenizer = featurise(cfg, records)
    seed_everything(t.seed)
    model, shapes = build_text_model(cfg, tokenizer)
    if tokenizer is None:  # fixed sentence embeddings: standardise them like any cached feature
        model.fit_input_stats(data["train"].inputs)
    model.to(device)
    loss_fn = build_loss(cfg.loss, MELD_EMOTIONS, train_labels=data["train"].labels.tolist(),
                         extra_weights={"sentiment": cfg.loss.sentiment_weight}).to(device)
    optimizer = make_optimizer(cfg, model)
    steps = -(-len(data["train"].labels) // t.batch_size)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(steps * t.epochs,
                                                                       steps * t.warmup_epochs))
    state = {"config": config_to_dict(cfg), "label_names": list(MELD_EMOTIONS), "input_shapes": shapes,
             "extra_classes": EXTRA_CLASSES, "tokenizer": tokenizer.state() if tokenizer else None,
             "git": git_info(Path(__file__).parent)}
    out_dir.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out_dir / "config.yaml")
    skips.write(out_dir / "skipped.tsv")
    log.info("git %s; clips: %s; %s", state["git"], {s: len(d.labels) for s, d in data.items()}, out_dir)
    rows, best, best_state = [], None, None
    for epoch in range(t.epochs):
        seed_everything(derive_seed(t.seed, epoch))
        loader = DataLoader(TextDataset(data["train"]), batch_size=t.batch_size, shuffle=True,
                            generator=make_generator(derive_seed(t.seed, epoch)),
                            num_workers=t.num_workers, worker_init_fn=worker_init_fn,
                            collate_fn=trim_collate)
        train_m = train_one_epoch(model, loader, loss_fn, optimizer, device=device, epoch=epoch + 1,
                                  grad_clip=t.grad_clip, step_fn=scheduler.step)
        dev = headline(score(model, data["dev"], device, t.batch_size))
        rows.append({"epoch": epoch + 1, **{f"train_{k}": v for k, v in train_m.items()},
                     **{f"dev_{k}": v for k, v in dev.items()}})
        log.info("epoch %d: %s", epoch + 1, {k: round(v, 4) for k, v in rows[-1].items()})
        state.update(epoch=epoch + 1, model=model.state_dict(), metrics=rows[-1])
        if best is None or dev["emotion_weighted_f1"] > best["dev_emotion_weighted_f1"]:
            best = {"epoch": epoch + 1, **{f"dev_{k}": v for k, v in dev.items()}}
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            save_checkpoint(out_dir / "best.pt", dict(state, best=best))
        write_metrics(out_dir / "metrics.jsonl", rows)
        save_checkpoint(out_dir / "last.pt", dict(state, best=best))
    model.load_state_dict(best_state)
    report = {"best": best, "class_weights": {k: v.tolist() for k, v in weights.items()},
              "n": {s: len(d.labels) for s, d in data.items()}, "skipped": len(skips),
              "config": state["config"], "git": state["git"]}
    report.update({s: score(model, data[s], device, t.batch_size) for s in ("dev", "test") if s in data})
    atomic_write_json(out_dir / "report.json", report)
    return report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mmer.meld_text", description=__doc__.split("\n")[0])
    parser.add_argument("--config", required=True, help="YAML config file (dataset: meld)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, e.g. --set text.encoder=scratch")
    parser.add_argument("--run-name", default=None, help="run folder name (default: the config's name)")
    args = parser.parse_args(argv)
    setup_logging()
    try:
        cfg = load_config(args.config, args.overrides)
        if cfg.dataset != "meld":
            raise ConfigError(f"{args.config}: mmer.meld_text needs dataset: meld, got {cfg.dataset}")
        out_dir = Path(cfg.train.runs_dir) / (args.run_name or cfg.name)
        report = train_text(cfg, out_dir)
    except ValueError as err:  # ConfigError, MeldError, TextEncoderUnavailable, bad labels
        log.error("%s", err)
        return 2
    except NonFiniteLossError as err:
        log.error("training stopped: %s", err)
        return 1
    for split in ("dev", "test"):
        if split in report:
            log.info("%s (best epoch %d): %s", split, report["best"]["epoch"],
                     {k: round(v, 4) for k, v in headline(report[split]).items()})
    log.info("report: %s", out_dir / "report.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
