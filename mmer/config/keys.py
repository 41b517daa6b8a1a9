"""Which inputs a model of a config reads: a pure function of the config, used by every stage.

Extraction asks it whether media features are needed at all, the input builder which
entry keys to assemble, and the model builder which encoders to build.
"""
from __future__ import annotations

from mmer.config.schema import WHISPER_AUDIO, Config, ModelConfig, TextConfig
from mmer.errors import ConfigError

MODALITIES = ("audio", "video", "visual", "text", "egemaps")
# Batch keys read from a clip's media (through the feature cache).
MEDIA_KEYS = ("audio", "logmel", "egemaps", "video")
TOKEN_KEYS = ("input_ids", "attention_mask")
# A cached-trunk text encoder (finetune.top_blocks) reads the frozen blocks' states.
TRUNK_KEYS = ("trunk_states", "attention_mask")
# A cached-trunk Whisper encoder reads the window's states entering the first tuned block
# and the count of them covering audio, beside the frozen features (``"audio"``).
AUDIO_TRUNK_KEYS = ("whisper_states", "whisper_valid")


def input_keys(model_cfg: ModelConfig) -> dict[str, str]:
    """{modality: batch key} for ``model.modalities``.

    Audio is read from ``"logmel"`` when ``model.audio_encoder == "resnet18"`` (the model
    holds the ResNet-18), else from the cached ``"audio"`` features. The ``"egemaps"``
    modality is the clip's cached openSMILE eGeMAPS functionals (``audio.functionals``).
    """
    mods = list(model_cfg.modalities)
    unknown = [m for m in mods if m not in MODALITIES]
    if unknown or not mods:
        raise ConfigError(f"model.modalities {mods}: unknown or empty; valid: {', '.join(MODALITIES)}")
    if len(set(mods)) != len(mods):
        raise ConfigError(f"model.modalities {mods} lists a modality twice")
    keys = {m: m for m in mods}
    if "audio" in keys and model_cfg.audio_encoder == "resnet18":
        keys["audio"] = "logmel"
    return keys


def uses_tokens(text_cfg: TextConfig) -> bool:
    """True when the text encoder is trained (scratch, or fine-tuned MiniLM) on token ids."""
    return text_cfg.encoder == "scratch" or text_cfg.finetune


def trunk_modality(cfg: Config) -> str | None:
    """Whose top blocks ``finetune.top_blocks`` trains over cached states: ``"text"`` (the
    pretrained text encoder) when the model reads text, else ``"audio"`` when it reads the
    features of a Whisper ``backbone.audio``, else None (also for top_blocks 0)."""
    if cfg.finetune.top_blocks == 0:
        return None
    keys = input_keys(cfg.model).values()
    if "text" in keys:
        return "text"
    return "audio" if "audio" in keys and cfg.backbone.audio in WHISPER_AUDIO else None


def uses_trunk(cfg: Config) -> bool:
    """True when the top blocks of the pretrained text encoder train over cached states."""
    return trunk_modality(cfg) == "text"


def uses_audio_trunk(cfg: Config) -> bool:
    """True when the top blocks of the Whisper audio encoder train over cached states."""
    return trunk_modality(cfg) == "audio"


def batch_keys(cfg: Config) -> list[str]:
    """The entry keys the whole model of `cfg` reads: ``input_keys`` with ``"text"`` as
    token ids and mask (:data:`TOKEN_KEYS`) when the text encoder is trained, or the
    cached trunk states and mask (:data:`TRUNK_KEYS`) with ``finetune.top_blocks``, and
    ``"audio"`` followed by :data:`AUDIO_TRUNK_KEYS` for a cached-trunk Whisper encoder."""
    keys = []
    for key in input_keys(cfg.model).values():
        if key == "text" and uses_trunk(cfg):
            keys += list(TRUNK_KEYS)
        elif key == "audio" and uses_audio_trunk(cfg):
            keys += [key, *AUDIO_TRUNK_KEYS]
        else:
            keys += list(TOKEN_KEYS) if key == "text" and uses_tokens(cfg.text) else [key]
    return keys


def needs_media(cfg: Config) -> bool:
    """Whether the model reads features of the media files (audio, log-mel, video).

    A text-only MELD model reads the CSVs alone: its records have ``path=None``.
    """
    return any(k in MEDIA_KEYS for k in input_keys(cfg.model).values())
