"""The run folder, read and written by training and evaluation alike: git provenance,
checkpoints (atomic), the metrics log, fold summaries and ``reference.pt``.

Layout (docs/design.md): ``runs/<name>/fold_<k>/`` with ``config.yaml``, ``split.json``,
``skipped.tsv`` (:func:`write_fold_start`), ``metrics.jsonl``, ``linear_probe.json``, ``last.pt``, ``best.pt``, ``reference.pt``, ``text_encoder/`` (a
fine-tuned MiniLM), TensorBoard events; ``runs/<name>/summary.md`` and ``summary.json``
after ``--folds all``.

A checkpoint is a dict (format :data:`CHECKPOINT_FORMAT`)::

    {"format", "epoch" (epochs completed), "model", "optimizer", "scheduler",
     "best": {"epoch", "val_uar"}, "metrics" (that epoch's), "config" (resolved dict),
     "split": {"train", "val", "test"}, "label_names", "input_shapes", "extra_classes",
     "git": {"sha", "date", "dirty"}, "tokenizer": state of a trained text encoder's tokenizer or None}

so :func:`model_from_checkpoint` rebuilds the model without the command line.
"""
from __future__ import annotations

import json
import logging
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mmer.config import Config, config_from_dict, save_config
from mmer.config.loading import saved_config
from mmer.errors import BadInput
from mmer.features.tokenizer import Tokenizer, tokenizer_from_state
from mmer.io import SkipList, atomic_save, atomic_write_json, atomic_write_text
from mmer.models.build import build_model

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = 1
# A fine-tuned MiniLM run writes its best encoder here (fold folder), for text.model_dir.
TEXT_ENCODER_DIR = "text_encoder"
CONFIG_FILE = "config.yaml"  # the resolved config of a fold
SPLIT_FILE = "split.json"
SKIPPED_FILE = "skipped.tsv"
PROBE_FILE = "linear_probe.json"  # a fold's linear probe (mmer.train.probe)


def git_info(repo: str | Path = ".") -> dict[str, Any]:
    """{"sha": HEAD commit, "date": its commit date (ISO 8601), "dirty": uncommitted changes
    to tracked files}; each None outside a git checkout."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True,
                              check=True, timeout=20).stdout.strip()
    try:
        sha, date = git("log", "-1", "--format=%H %cI").split()
        status = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError, ValueError):
        return {"sha": None, "date": None, "dirty": None}
    return {"sha": sha, "date": date, "dirty": bool(status)}


def fold_checkpoints(run_dir: str | Path, which: str = "best") -> list[Path]:
    """``<run>/fold_<k>/<which>.pt`` of every fold that has one, by fold number."""
    run_dir = Path(run_dir)
    found = [d / f"{which}.pt" for d in run_dir.glob("fold_*") if (d / f"{which}.pt").is_file()
             and d.name.split("_", 1)[1].isdigit()]
    if not found:
        raise BadInput(f"{run_dir}: no fold_<k>/{which}.pt found (train the run first)")
    return sorted(found, key=lambda p: int(p.parent.name.split("_", 1)[1]))


def fold_dir(runs_dir: str | Path, name: str, fold: int) -> Path:
    return Path(runs_dir) / name / f"fold_{fold}"


def write_fold_start(out_dir: str | Path, cfg: Config, split: Mapping[str, Any], skips: SkipList) -> None:
    """The files a fold folder gets before its first epoch: the resolved config, the split
    and the clips the reader skipped."""
    out_dir = Path(out_dir)
    save_config(cfg, out_dir / CONFIG_FILE)
    atomic_write_json(out_dir / SPLIT_FILE, split)
    skips.write(out_dir / SKIPPED_FILE)


def save_checkpoint(path: str | Path, state: Mapping[str, Any]) -> None:
    """``torch.save`` `state` atomically (a kill mid-write leaves the previous file)."""
    atomic_save(path, lambda fh: torch.save(dict(state, format=CHECKPOINT_FORMAT), fh))


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint` (tensors on CPU)."""
    path = Path(path)
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a damaged file fails in many ways
        raise BadInput(f"{path}: not a readable mmer checkpoint ({type(err).__name__})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise BadInput(f"{path}: not an mmer checkpoint of format {CHECKPOINT_FORMAT}")
    ckpt["config"] = saved_config(ckpt["config"])
    return ckpt


def model_from_checkpoint(ckpt: Mapping[str, Any] | str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """(model with the checkpoint's weights, in eval mode, checkpoint dict).

    The model is rebuilt from the config, input shapes, label names and extra tasks
    stored in the checkpoint, never from the command line.
    """
    if not isinstance(ckpt, Mapping):
        ckpt = load_checkpoint(ckpt)
    cfg = config_from_dict(ckpt["config"], source="checkpoint config")
    tok = checkpoint_tokenizer(ckpt)
    model = build_model(cfg, {k: tuple(v) for k, v in ckpt["input_shapes"].items()},
                        n_classes=len(ckpt["label_names"]), extra_classes=ckpt.get("extra_classes"),
                        vocab=(tok.vocab_size, tok.pad_id) if tok is not None else None)
    model.load_state_dict(ckpt["model"])
    return model.eval(), dict(ckpt)


def checkpoint_tokenizer(ckpt: Mapping[str, Any]) -> Tokenizer | None:
    """The tokenizer a trained text encoder was fitted with (None for other models)."""
    state = ckpt.get("tokenizer")
    return tokenizer_from_state(state) if state else None


def write_metrics(path: str | Path, rows: Sequence[Mapping[str, Any]]) -> None:
    """Write all epoch rows as JSON lines (atomically: the whole small file each time)."""
    atomic_write_text(path, "".join(json.dumps(dict(r), default=float) + "\n" for r in rows))


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    path = Path(path)
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def summarise_folds(results: Mapping[int, Mapping[str, float]], keys: Sequence[str]) -> dict[str, Any]:
    """Per-fold values of `keys`, their mean and sample std (ddof=1; None for one fold)."""
    folds = sorted(results)
    summary: dict[str, Any] = {"folds": {str(f): {k: results[f].get(k) for k in keys} for f in folds}}
    for k in keys:
        vals = np.array([results[f][k] for f in folds if results[f].get(k) is not None], dtype=float)
        summary[k] = {"mean": float(vals.mean()) if len(vals) else None,
                      "std": float(vals.std(ddof=1)) if len(vals) > 1 else None}
    return summary


def write_summary(root: str | Path, summary: Mapping[str, Any], keys: Sequence[str]) -> str:
    """Write ``summary.json`` and ``summary.md`` (per-fold table, mean +- std) to `root`;
    `summary`'s ``"linear_probe"`` (:func:`summarise_folds` of the probe's scores) adds its row."""
    root = Path(root)
    atomic_write_json(root / "summary.json", summary)
    lines = ["| fold | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
    for fold, vals in summary["folds"].items():
        lines.append(f"| {fold} | " + " | ".join(_fmt(vals.get(k), k) for k in keys) + " |")
    cells = [_mean_std(summary[k], k) for k in keys]
    lines.append("| mean ± std | " + " | ".join(cells) + " |")
    if "linear_probe" in summary:
        lines.append("| linear probe (mean ± std) | " + " | ".join(_mean_std(summary["linear_probe"][k], k)
                                                            for k in keys) + " |")
    text = "\n".join(lines) + "\n"
    atomic_write_text(root / "summary.md", text)
    return text


def _mean_std(s: Mapping[str, Any], key: str) -> str:
    return _fmt(s["mean"], key) + ("" if s["std"] is None else f" ± {s['std']:.4f}")


def _fmt(value: Any, key: str = "") -> str:
    """A score to 4 places; a missing one as "no validation" (val_*) or "-"."""
    if value is None:
        return "no validation" if key.startswith("val_") else "-"
    return f"{float(value):.4f}"


REFERENCE_FORMAT = 1


def write_reference(out_dir: str | Path, checkpoint: str, epoch: Any, out: Mapping[str, Any],
                    clip_ids: Sequence[str], speakers: Sequence[str],
                    probe: Mapping[str, Any] | None) -> Path:
    """Add `checkpoint`'s training-clip embeddings to ``<out_dir>/reference.pt`` (atomically).

    What ``python -m mmer.predict`` needs besides the checkpoint, so a copied run folder
    works without the training data: per checkpoint file name its ``epoch`` (to tell a
    stale reference), embedding (N, E), labels (N,), clip ids and speakers; and `probe`,
    one training clip's path and cached features, for predict's check that features made
    now match the cache when that clip is at hand.
    """
    path = Path(out_dir) / "reference.pt"
    ref = read_reference(path) or {"format": REFERENCE_FORMAT, "checkpoints": {}}
    ref["checkpoints"][checkpoint] = {
        "epoch": epoch, "embedding": torch.as_tensor(out["embedding"]),
        "labels": torch.as_tensor(out["labels"]), "clip_ids": list(clip_ids), "speakers": list(speakers)}
    if probe is not None:
        ref["probe"] = dict(probe)
    atomic_save(path, lambda fh: torch.save(ref, fh))
    return path


def read_reference(path: str | Path) -> dict[str, Any] | None:
    """The ``reference.pt`` of a fold folder, or None when absent or unreadable (logged)."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        ref = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a damaged file fails in many ways
        log.warning("%s: unreadable (%s); it is rewritten by the next evaluation", path, type(err).__name__)
        return None
    return ref if isinstance(ref, dict) and ref.get("format") == REFERENCE_FORMAT else None


def read_fold_probe(fold_dir: str | Path) -> dict[str, Any] | None:
    """The fold's ``linear_probe.json`` (None when training wrote none)."""
    path = Path(fold_dir) / PROBE_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise BadInput(f"{path}: not a readable linear-probe file ({type(err).__name__})") from None
