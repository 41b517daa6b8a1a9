"""Ask a trained run about one clip: emotion probabilities and the nearest training clips.

(``python -m mmer.predict``, see :mod:`mmer.cli.predict`.)

The clip is decoded and featurised exactly as ``python -m mmer.extract`` does it, with the
run's config from the checkpoint (same item builder, same backbones and weight policy);
the model is rebuilt from the checkpoint. The neighbours are the fold's training clips
(their features come from the cache). Exit codes: 0 done (what extraction would flag about
the clip is printed with the answer and listed under "flags"), 1 the clip cannot be used,
2 bad run, checkpoint or cache, or a folder given as the clip.
"""
from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mmer.config import Config, config_from_dict
from mmer.datasets import get_adapter
from mmer.datasets.records import ClipRecord
from mmer.errors import BadInput
from mmer.evaluation.sets import (
    EmbeddedSet,
    backbone_status,
    checkpoint_records,
    embed_entries,
    load_entries,
    model_keys,
)
from mmer.features.backbones import Backbones
from mmer.features.cache import make_entry
from mmer.features.clips import ClipDataset
from mmer.inputs.builder import finish_entries
from mmer.metrics.knn import knn_predict
from mmer.run.folder import (
    checkpoint_tokenizer,
    fold_checkpoints,
    load_checkpoint,
    model_from_checkpoint,
    read_reference,
)

log = logging.getLogger("mmer.prediction.predict")


class ClipError(BadInput):
    """The clip asked about cannot be decoded or featurised."""


def featurise(records: Sequence[ClipRecord], cfg: Config, device: torch.device) -> list[dict[str, Any]]:
    """The cache entries (docs/design.md) extraction would write for `records`, by its code."""
    for record in records:
        if record.path is not None and Path(record.path).is_dir():
            raise BadInput(f"{record.path}: is a folder; predict takes one clip (score a folder "
                           "with python evaluate.py --run RUN --data-root DIR --extract)")
        if record.path is None or not Path(record.path).is_file():
            raise ClipError(f"{record.path}: no such file")
    # Training views are for the cache's training clips; a query needs the centred view only.
    cfg = dataclasses.replace(cfg, features=dataclasses.replace(cfg.features, train_views=0),
                              backbone=dataclasses.replace(cfg.backbone, audio_views=0))
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
    clip, dev = Path(clip), torch.device(device)
    model, ckpt = model_from_checkpoint(load_checkpoint(checkpoint))
    cfg = config_from_dict(ckpt["config"], source="checkpoint config")
    if cfg.model.speaker_norm:
        raise BadInput(f"{checkpoint}: the model standardises its inputs per speaker "
                         "(model.speaker_norm), so one clip alone cannot be scored; score a folder "
                         "with several clips of each speaker: python evaluate.py --run RUN --data-root DIR")
    names, keys = list(ckpt["label_names"]), model_keys(cfg)
    record = get_adapter(cfg).record_for_file(clip)
    ref, probe = _reference(Path(checkpoint), ckpt, model, cfg, keys, dev)
    if probe is not None and probe["path"] and Path(probe["path"]).is_file():
        # The clip, plus one training clip to check that features made now match the cache.
        raw, fresh = featurise([record, _probe_record(cfg, probe)], cfg, dev)
        check = feature_check(fresh, {**probe["features"], "clip_id": probe["clip_id"]}, keys)
    else:
        (raw,) = featurise([record], cfg, dev)
        check = {"clip_id": probe["clip_id"] if probe else None, "ok": True, "skipped": True,
                 "max_abs_diff": 0.0, "max_abs_cached": 0.0}
        log.info("feature check skipped: the training clip it re-makes is not at its path")
    entry = _one_entry(cfg, raw, record, ckpt)
    if not check["ok"]:
        log.warning("features made now differ from the cached ones of %s (max |diff| %.3g): the "
                    "cache was extracted with other backbone weights; the neighbours and "
                    "probabilities below are unreliable", check["clip_id"], check["max_abs_diff"])
    flags = list(entry["meta"].get("flags", []))  # raised by extraction's code (prepare_clip)
    for flag in flags:
        log.warning("%s: %s", clip, flag)
    query = embed_entries(model, [entry], keys, device=dev)
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
        "flags": flags,
        "meta": {**{k: v for k, v in entry["meta"].items() if k != "pretrained"},
                 "n_snippets": cfg.video.n_snippets if get_adapter(cfg).streams(cfg)[0] else 0},
    }


def _probe_record(cfg: Config, probe: dict[str, Any]) -> ClipRecord:
    record = get_adapter(cfg).record_for_file(Path(probe["path"]))
    return ClipRecord(probe["clip_id"], record.path, record.label, record.speaker, record.group, record.extra)


def _reference(checkpoint: Path, ckpt: dict[str, Any], model: torch.nn.Module, cfg: Config,
               keys: Sequence[str], dev: torch.device) -> tuple[EmbeddedSet, dict[str, Any] | None]:
    """(the training clips as kNN reference, the feature-check probe) from the fold's
    ``reference.pt`` (written by training and evaluation); without one, from the training
    data and its cache, which must then be where the run was trained."""
    stored = read_reference(checkpoint.parent / "reference.pt") or {}
    mine = stored.get("checkpoints", {}).get(checkpoint.name)
    if mine is not None and mine.get("epoch") == ckpt.get("epoch"):
        ref = EmbeddedSet(mine["embedding"].numpy(), np.zeros((len(mine["labels"]), 1), np.float32),
                          mine["labels"].numpy(), mine["clip_ids"], mine["speakers"])
        return ref, stored.get("probe")
    try:
        train_records = checkpoint_records(ckpt)[1]["train"]
        train_entries = load_entries(cfg, train_records, "train", ckpt)
    except BadInput as err:
        raise BadInput(f"{checkpoint.parent}: no reference.pt for {checkpoint.name} and the training "
                       f"data cannot be read ({err}); run python evaluate.py --checkpoint {checkpoint} "
                       f"once where the data is (it writes reference.pt), then copy the fold folder") from None
    ref = embed_entries(model, train_entries, keys, device=dev)
    first = train_entries[0]
    probe = {"clip_id": first["clip_id"], "path": str(train_records[0].path),
             "features": {k: first[k] for k in keys if k in first}}
    return ref, probe


def _one_entry(cfg: Config, raw: dict[str, Any], record: ClipRecord, ckpt: dict[str, Any]) -> dict[str, Any]:
    """The clip's model input entry by the input builder (text, visual table row, ...)."""
    entries = finish_entries(cfg, [raw], [record], "evaluation", tokenizer=checkpoint_tokenizer(ckpt))
    if not entries:
        raise ClipError(f"{record.path}: no row for this clip in the visual table "
                        f"{cfg.visual.table} (the model reads it)")
    return entries[0]


def render_text(result: dict[str, Any]) -> str:
    lines = [f"clip: {result['clip']}", f"model: {result['checkpoint']}"]
    if result["backbones"]["random"]:
        lines.append("NOTE: backbones randomly initialised (no pretrained weights)")
    if not result["feature_check"]["ok"]:
        lines.append("WARNING: features made now differ from the cached training features "
                     f"(max |diff| {result['feature_check']['max_abs_diff']:.3g}); results are unreliable")
    lines += [f"WARNING: {flag}" for flag in result.get("flags", [])]
    misses, snippets = result["meta"].get("face_misses", 0), result["meta"].get("n_snippets", 0)
    if misses:
        lines.append(f"NOTE: no face found in {misses} of {snippets} video snippets"
                     + (" (none at all: the centre of the frame was used)" if misses >= snippets else
                        " (those reuse another snippet's face box)"))
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
    found = fold_checkpoints(run, which)
    if fold is None:
        if len(found) > 1:
            log.info("run has %d folds; using %s (choose with --fold)", len(found), found[0])
        return found[0]
    path = run / f"fold_{fold}" / f"{which}.pt"
    if not path.is_file():
        raise BadInput(f"{path}: no such checkpoint (folds with one: "
                                f"{', '.join(p.parent.name for p in found)})")
    return path
