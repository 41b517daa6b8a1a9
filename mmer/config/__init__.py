"""Configuration: the dataclass schema (:mod:`.schema`) and strict YAML loading (:mod:`.loading`)."""
from mmer.config.keys import MODALITIES, input_keys
from mmer.config.loading import config_from_dict, config_to_dict, load_config, save_config
from mmer.config.schema import (
    AudioConfig,
    AugmentConfig,
    BackboneConfig,
    Config,
    CremaDConfig,
    EvalConfig,
    FeatureConfig,
    FinetuneConfig,
    LossConfig,
    MeadConfig,
    MeldConfig,
    ModelConfig,
    RavdessConfig,
    SplitConfig,
    TextConfig,
    TrainConfig,
    VideoConfig,
    VisualConfig,
)
from mmer.errors import ConfigError

__all__ = [
    "MODALITIES", "AudioConfig", "AugmentConfig", "BackboneConfig", "Config", "ConfigError",
    "CremaDConfig", "EvalConfig", "FeatureConfig", "LossConfig", "MeadConfig", "MeldConfig", "ModelConfig",
    "FinetuneConfig", "RavdessConfig", "SplitConfig", "TextConfig", "TrainConfig", "VideoConfig", "VisualConfig", "config_from_dict",
    "config_to_dict", "input_keys", "load_config", "save_config",
]
