"""Ask a trained run about one clip: emotion probabilities and the nearest training clips.

    python -m mmer.predict CLIP.mp4 --run runs/NAME [--fold K] [--which best|last] [--k 5] [--json]
    python -m mmer.predict CLIP.mp4 --checkpoint runs/NAME/fold_0/best.pt [...]

The clip is decoded and featurised exactly as ``python -m mmer.extract`` does it, with the
run's config from the checkpoint (same item builder, same backbones and weight policy);
the model is rebuilt from the checkpoint. The neighbours are the fold's training clips
(their features come from the cache). Exit codes: 0 done, 1 the clip cannot be used,
2 bad run, checkpoint or cache.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mmer.config import Config, ConfigError, config_from_dict
from mmer.data.records import ClipRecord

log = logging.getLogger("mmer.predict")


class ClipError(ValueError):
    """The clip asked about cannot be decoded or featurised."""


def clip_record(path: Path, dataset: str) -> ClipRecord:
    """A record for an arbitrary clip; for RAVDESS runs a RAVDESS name gives the true emotion."""
    from mmer.data.ravdess import MalformedName, parse_name

    if dataset != "ravdess":
        return ClipRecord(path.stem, path, 0, "?", path.stem, {"known": False})
    try:
        name = parse_name(path.name)
        return ClipRecord(path.stem, path, name.label, str(name.actor), name.trial_id, {"known": True})
    except MalformedName:
        return ClipRecord(path.stem, path, 0, "?", path.stem, {"known": False})


def featurise(records: Sequence[ClipRecord], cfg: Config, device: torch.device) -> list[dict[str, Any]]:
    """The cache entries (docs/design.md) extraction would write for `records`, by its code."""
    from mmer.extract import ClipDataset, make_entry
    from mmer.features.backbones import Backbones

    for record in records:
        if record.path is None or not Path(record.path).is_file():
            raise ClipError(f"{record.path}: no such file")
    items = [ClipDataset(records, cfg)[i] for i in range(len(records))]
    for item in items:
        if "error" in item:
            raise ClipError(item["error"])
    nets = Backbones(cfg, device)
    with torch.inference_mode():
        feats = nets.features(items)
    return [make_entry(r, it, f, nets.pretrained) for r, it, f in zip(records, items, feats, strict=True)]


def feature_check(fresh: dict[str, Any], cached: dict[str, Any], keys: Sequence[str]) -> dict[str, Any]:
    """How far features made now are from the cached ones of the same clip (model inputs `keys`).

    A large gap means the cache was made with other backbone weights (for example a
    differently drawn random initialisation), so this clip cannot be compared with the
    cached training clips.
    """
    keys = [k for k in keys if k in fresh and k in cached]
    diff = max((float((fresh[k].float() - cached[k].float()).abs().max()) for k in keys), default=0.0)
    scale = max((float(cached[k].float().abs().max()) for k in keys), default=0.0)
    return {"clip_id": cached["clip_id"], "max_abs_diff": diff, "max_abs_cached": scale,
            "ok": diff <= 1e-2 * max(scale, 1e-6)}


def predict_clip(clip: str | Path, checkpoint: str | Path, *, k: int = 5,
                 device: str = "cpu") -> dict[str, Any]:
    """Probabilities of the softmax head, kNN vote and the `k` nearest training clips.

    Raises :class:`ClipError` for a clip that cannot be used, ``ValueError`` for a bad
    checkpoint or missing cached training features.
    """
    from mmer.eval.knn import knn_predict
    from mmer.eval.sets import backbone_status, checkpoint_records, embed_entries, load_entries, model_keys
    from mmer.runs import load_checkpoint, model_from_checkpoint

    clip, dev = Path(clip), torch.device(device)
    model, ckpt = model_from_checkpoint(load_checkpoint(checkpoint))
    cfg = config_from_dict(ckpt["config"], source="checkpoint config")
    if cfg.model.speaker_norm:
        raise ValueError(f"{checkpoint}: the model standardises its inputs per speaker "
                         "(model.speaker_norm), so one clip alone cannot be scored; score a folder "
                         "with several clips of each speaker: python evaluate.py --run RUN --data-root DIR")
    names, keys = list(ckpt["label_names"]), model_keys(cfg)
    train_records = checkpoint_records(ckpt)[1]["train"]
    train_entries = load_entries(cfg, train_records, "train")
    # The clip, plus one training clip to check that features made now match the cache.
    entry, probe = featurise([clip_record(clip, cfg.dataset), train_records[0]], cfg, dev)
    check = feature_check(probe, train_entries[0], keys)
    if not check["ok"]:
        log.warning("features made now differ from the cached ones of %s (max |diff| %.3g): the "
                    "cache was extracted with other backbone weights; the neighbours and "
                    "probabilities below are unreliable", check["clip_id"], check["max_abs_diff"])
    query = embed_entries(model, [entry], keys, device=dev)
    ref = embed_entries(model, train_entries, keys, device=dev)
    probs = torch.softmax(torch.from_numpy(query.logits), dim=1)[0].numpy()
    knn = knn_predict(ref.embedding, ref.labels, query.embedding, k, len(names),
                      temperature=cfg.eval.knn_temperature)
    neighbours = [{"clip_id": ref.clip_ids[i], "label": names[ref.labels[i]], "speaker": ref.speakers[i],
                   "similarity": float(s), "distance": float(1.0 - s)}
                  for i, s in zip(knn.neighbours[0], knn.similarities[0], strict=True)]
    order = np.argsort(-probs)
    return {
        "clip": str(clip), "checkpoint": str(checkpoint),
        "true_label": names[entry["label"]] if entry["extra"].get("known") else None,
        "prediction": names[int(order[0])],
        "probabilities": {names[i]: float(probs[i]) for i in order},
        "knn": {"k": knn.k, "prediction": names[int(knn.pred[0])],
                "votes": {names[i]: float(knn.probs[0, i]) for i in np.argsort(-knn.probs[0])
                          if knn.probs[0, i] > 0},
                "neighbours": neighbours},
        "backbones": backbone_status([entry], keys),
        "feature_check": check,
        "meta": {k: v for k, v in entry["meta"].items() if k != "pretrained"},
    }


def _text(result: dict[str, Any]) -> str:
    lines = [f"clip: {result['clip']}", f"model: {result['checkpoint']}"]
    if result["backbones"]["random"]:
        lines.append("NOTE: backbones randomly initialised (no pretrained weights)")
    if not result["feature_check"]["ok"]:
        lines.append("WARNING: features made now differ from the cached training features "
                     f"(max |diff| {result['feature_check']['max_abs_diff']:.3g}); results are unreliable")
    truth = f" (file name says: {result['true_label']})" if result["true_label"] else ""
    lines += [f"softmax head: {result['prediction']}{truth}", ""]
    lines += [f"  {name:<10} {p:6.1%}  {'#' * round(30 * p)}" for name, p in result["probabilities"].items()]
    knn = result["knn"]
    lines += ["", f"kNN (k={knn['k']}): {knn['prediction']}; nearest training clips:",
              f"  {'clip':<24} {'label':<10} {'actor':<6} {'cosine':>7} {'distance':>9}"]
    lines += [f"  {n['clip_id']:<24} {n['label']:<10} {n['speaker']:<6} {n['similarity']:7.3f} "
              f"{n['distance']:9.3f}" for n in knn["neighbours"]]
    return "\n".join(lines)


def resolve_checkpoint(run: Path | None, checkpoint: Path | None, fold: int | None, which: str) -> Path:
    """The checkpoint file: given directly, or ``<run>/fold_<k>/<which>.pt`` (first fold by default)."""
    if checkpoint is not None:
        return checkpoint
    from mmer.eval.evaluate import fold_checkpoints

    found = fold_checkpoints(run, which)
    if fold is None:
        if len(found) > 1:
            log.info("run has %d folds; using %s (choose with --fold)", len(found), found[0])
        return found[0]
    path = run / f"fold_{fold}" / f"{which}.pt"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint (folds with one: "
                                f"{', '.join(p.parent.name for p in found)})")
    return path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mmer.predict", description=__doc__.split("\n")[0])
    parser.add_argument("clip", type=Path, help="video (mp4) or audio file, in the run's modality")
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--run", type=Path, help="run folder (runs/NAME)")
    which.add_argument("--checkpoint", type=Path, help="a fold's best.pt or last.pt")
    parser.add_argument("--fold", type=int, default=None, help="fold of the run (default: the first)")
    parser.add_argument("--which", choices=("best", "last"), default="best")
    parser.add_argument("--k", type=int, default=5, help="nearest training clips to list (default 5)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    try:
        ckpt = resolve_checkpoint(args.run, args.checkpoint, args.fold, args.which)
        result = predict_clip(args.clip, ckpt, k=args.k, device=args.device)
    except ClipError as err:
        print(f"error: cannot use clip: {err}", file=sys.stderr)
        return 1
    except (ConfigError, FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2) if args.json else _text(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
