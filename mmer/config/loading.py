"""Loading YAML configs into the schema with strict checking.

Unknown keys are refused with their full path and a "did you mean" suggestion, wrong
types are refused with the expected type, and ``--set a.b=value`` overrides any leaf
from the command line.
"""
from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, Union

import yaml

from mmer.config.keys import trunk_modality
from mmer.config.schema import WHISPER_AUDIO, Config
from mmer.errors import ConfigError
from mmer.io import atomic_write_text

# Keys of older configs and what replaced them: a config still giving one is refused
# with this hint instead of the generic "unknown key".
MOVED = {
    "video.face_crop": "video.face_detector: none (no face crop), or leave it out (haar)",
    "ravdess.visual_table": "visual.table",
    "ravdess.visual_key": "visual.key",
    "ravdess.visual_columns": "visual.columns",
    "ravdess.visual_frames": "visual.frames",
    "ravdess.visual_steps": "visual.steps",
}


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is list:
        (inner,) = typing.get_args(tp)
        return f"list of {_type_name(inner)}"
    if tp is type(None):
        return "null"
    return getattr(tp, "__name__", str(tp))


def _coerce(tp: Any, value: Any, where: str) -> Any:
    """Check `value` against the annotation `tp`; return it (ints widen to float)."""
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping (section), got {value!r}")
        return _build(tp, value, where)
    if origin in (Union, types.UnionType):
        for arg in typing.get_args(tp):
            try:
                return _coerce(arg, value, where)
            except ConfigError:
                continue
        raise ConfigError(f"{where}: expected {_type_name(tp)}, got {value!r}")
    if origin is Literal:
        if value in typing.get_args(tp):
            return value
        raise ConfigError(f"{where}: expected {_type_name(tp)}, got {value!r}")
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected {_type_name(tp)}, got {value!r}")
        (inner,) = typing.get_args(tp)
        return [_coerce(inner, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if tp is type(None):
        if value is None:
            return None
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str) and "e" in value.lower():  # YAML 1.1 reads 1e-3 as a string
            try:
                return float(value)
            except ValueError:
                pass
    elif tp in (int, str, bool):
        if isinstance(value, tp) and not (tp is int and isinstance(value, bool)):
            return value
    else:  # pragma: no cover - an annotation this loader does not know
        raise ConfigError(f"{where}: unsupported annotation {tp!r}")
    raise ConfigError(f"{where}: expected {_type_name(tp)}, got {value!r}")


def _build(cls: type, data: dict, prefix: str) -> Any:
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in data.items():
        where = f"{prefix}.{key}" if prefix else str(key)
        if key not in names and where in MOVED:
            raise ConfigError(f"'{where}' is replaced: use {MOVED[where]}")
        if key not in names:
            close = difflib.get_close_matches(str(key), names, n=1, cutoff=0.5)
            hint = f"; did you mean '{prefix + '.' if prefix else ''}{close[0]}'?" if close else ""
            raise ConfigError(f"unknown key '{where}'{hint} (valid: {', '.join(names)})")
        kwargs[key] = _coerce(hints[key], value, where)
    return cls(**kwargs)


def _apply_override(data: dict, item: str) -> None:
    """Apply one ``a.b.c=value`` override to the raw nested dict (value parsed as YAML)."""
    if "=" not in item:
        raise ConfigError(f"override '{item}': expected key.path=value")
    key, raw = item.split("=", 1)
    parts = key.strip().split(".")
    node = data
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"override '{item}': '{part}' is not a section")
        node = child
    try:
        node[parts[-1]] = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as err:
        problem = " ".join(str(getattr(err, "problem", None) or err).split())
        raise ConfigError(f"override '{item}': the value of {key.strip()} is not valid YAML "
                          f"({problem}); quote it or fix it") from None


def config_from_dict(data: dict, overrides: Sequence[str] = (), source: str = "<dict>") -> Config:
    """Build a checked :class:`Config` from a raw nested dict plus overrides."""
    data = _deepcopy(data)
    for item in overrides:
        _apply_override(data, item)
    try:
        cfg = _build(Config, data, "")
        check_values(cfg)
        return cfg
    except ConfigError as err:
        raise ConfigError(f"{source}: {err}") from None


def check_values(cfg: Config) -> None:
    """Value checks the types cannot express (ranges, keys that only work together)."""
    t = cfg.text
    if t.context < 0:
        raise ConfigError(f"text.context must be 0 or more past utterances, got {t.context}")
    if t.dialogue != "none" and (t.encoder == "scratch" or t.finetune or t.context < 1):
        raise ConfigError(f"text.dialogue: {t.dialogue} runs over frozen MiniLM / MPNet utterance "
                          "embeddings: it needs text.encoder: minilm or mpnet, text.finetune: false and "
                          f"text.context >= 1 (got {t.encoder}, {t.finetune}, {t.context})")
    if t.context_mode == "dialogue" and t.dialogue == "none":
        raise ConfigError("text.context_mode: dialogue (past and future utterances) needs a "
                          "dialogue layer: text.dialogue: gru | attention")
    if isinstance(t.model_dir, list) and (not t.model_dir or t.encoder == "scratch" or t.finetune):
        raise ConfigError("text.model_dir: a list of folders joins frozen MiniLM embeddings: it "
                          "needs one folder or more, text.encoder: minilm and text.finetune: false "
                          f"(got {t.model_dir}, {t.encoder}, {t.finetune}); give one folder to "
                          "fine-tune or tokenise")
    if t.stage1 is not None and t.model_dir is not None:
        raise ConfigError(f"text.stage1 ({t.stage1}) and text.model_dir ({t.model_dir}) both name the "
                          "text encoder: give one (stage1: train that config's run and read its "
                          "text_encoder/; model_dir: a folder you have)")
    if not 0.0 < t.layer_decay <= 1.0:
        raise ConfigError(f"text.layer_decay must be in (0, 1], got {t.layer_decay}")
    if t.freeze_epochs < 0:
        raise ConfigError(f"text.freeze_epochs must be 0 or more, got {t.freeze_epochs}")
    _check_finetune(cfg)
    _check_audio_views(cfg)
    if cfg.loss.focal_gamma < 0:
        raise ConfigError(f"loss.focal_gamma must be 0 or more, got {cfg.loss.focal_gamma}")
    if not math.isfinite(cfg.train.lr) or cfg.train.lr <= 0:
        raise ConfigError(f"train.lr: expected a positive learning rate, got {cfg.train.lr!r}")
    for key, least in AT_LEAST.items():
        value = _leaf(cfg, key)
        if value < least:
            raise ConfigError(f"{key} must be {least} or more, got {value}")


# Counts that make no sense below a bound (0 epochs would train nothing and write no best.pt).
AT_LEAST = {"train.epochs": 1, "train.batch_size": 1, "train.m_per_class": 1,
            "train.warmup_epochs": 0, "train.num_workers": 0, "features.batch_size": 1,
            "features.num_workers": 0, "model.ensemble": 1, "model.speaker_norm_min_clips": 1,
            "backbone.audio_views": 0}


def _check_audio_views(cfg: Config) -> None:
    """``backbone.audio_views``: speed-changed copies of the Whisper encoder's input."""
    bb = cfg.backbone
    if not bb.audio_views:
        return
    if bb.audio not in WHISPER_AUDIO:
        raise ConfigError(f"backbone.audio_views: training views of the audio are made for the Whisper "
                          f"encoders only (backbone.audio whisper_tiny | whisper_base, got {bb.audio})")
    if not 0.0 < bb.audio_view_speed < 0.5:
        raise ConfigError(f"backbone.audio_view_speed must be in (0, 0.5), got {bb.audio_view_speed}")
    if trunk_modality(cfg) == "audio":
        raise ConfigError("backbone.audio_views: finetune.top_blocks on Whisper reads the cached states "
                          "of the unchanged audio only; set one of them off")


def _check_finetune(cfg: Config) -> None:
    """``finetune``: the text encoder's or the Whisper encoder's top blocks, settings in range."""
    f, t = cfg.finetune, cfg.text
    if (isinstance(f.top_blocks, int) and f.top_blocks < 0) or not 0.0 < f.layer_decay <= 1.0 \
            or f.warmup_epochs < 0:
        raise ConfigError(f"finetune: top_blocks must be 0 or more (or all), layer_decay in (0, 1] "
                          f"and warmup_epochs 0 or more (got {f.top_blocks}, {f.layer_decay}, "
                          f"{f.warmup_epochs})")
    whose = trunk_modality(cfg)
    if whose == "text" and (t.encoder == "scratch" or t.finetune or t.dialogue != "none"
                            or isinstance(t.model_dir, list)):
        raise ConfigError("finetune.top_blocks trains the top blocks of the pretrained text "
                          "encoder: it needs text.encoder minilm or mpnet, text.finetune: false, "
                          "text.dialogue: none and one text.model_dir folder at most")
    top, a = max(cfg.backbone.whisper_layers, default=0), cfg.train.augment
    if whose == "audio" and f.top_blocks != "all" and f.top_blocks > top:
        raise ConfigError(f"finetune.top_blocks {f.top_blocks}: the highest Whisper block the model "
                          f"reads (backbone.whisper_layers {cfg.backbone.whisper_layers}) is {top}")
    if whose == "audio" and cfg.model.speaker_norm:
        raise ConfigError("finetune.top_blocks on Whisper: model.speaker_norm would standardise the "
                          "frozen audio features only, not the tuned blocks' output; set it off")
    if whose == "audio" and (a.time_masks or a.freq_masks or a.random_crop or a.mixup_alpha):
        raise ConfigError("finetune.top_blocks on Whisper reads cached states from below the cut: "
                          "input augmentation (train.augment masks, random_crop, mixup_alpha) "
                          "cannot reach them; set them off")


def ignored_settings(cfg: Config, *, fixed_split: bool) -> list[str]:
    """The keys set to a non-default value that this config never reads: the fine-tuning
    settings of ``text.*`` without ``text.finetune``, ``split.*`` for a corpus with a
    `fixed_split`."""
    keys = [] if cfg.text.finetune else [f"text.{k}" for k in ("finetune_lr", "layer_decay", "freeze_epochs")]
    if fixed_split:
        keys += [f"split.{f.name}" for f in dataclasses.fields(cfg.split)]
    defaults = Config()
    return [k for k in keys if _leaf(cfg, k) != _leaf(defaults, k)]


def _leaf(cfg: Config, key: str) -> Any:
    section, name = key.split(".")
    return getattr(getattr(cfg, section), name)


def load_config(path: str | Path, overrides: Sequence[str] = ()) -> Config:
    """Load a YAML config file, apply ``key=value`` overrides, check every key and type."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"{path}: cannot read config file ({err.strerror})") from None
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: config file is not UTF-8 text (byte {err.start}: "
                          f"{err.object[err.start:err.start + 1]!r})") from None
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({' '.join(str(err).split())})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping")
    return config_from_dict(data, overrides, source=str(path))


def saved_config(data: dict) -> dict:
    """A resolved config saved by a checkpoint, with the :data:`MOVED` keys in their current
    place: ``video.face_crop: false`` is ``video.face_detector: none`` (true keeps the
    detector), ``ravdess.visual_<k>`` is ``visual.<k>``. A config file gets no such mapping."""
    data = _deepcopy(data)
    video, ravdess = data.get("video") or {}, data.get("ravdess") or {}
    if video.pop("face_crop", True) is False:
        video["face_detector"] = "none"
    for key in [k for k in ravdess if k.startswith("visual_")]:
        data.setdefault("visual", {})[key.removeprefix("visual_")] = ravdess.pop(key)
    return data


def config_to_dict(cfg: Config) -> dict:
    return dataclasses.asdict(cfg)


def save_config(cfg: Config, path: str | Path) -> None:
    """Write the fully resolved config (every key, defaults included) as YAML, atomically."""
    atomic_write_text(path, yaml.safe_dump(config_to_dict(cfg), sort_keys=False))


def _deepcopy(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: _deepcopy(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_deepcopy(v) for v in data]
    return data
