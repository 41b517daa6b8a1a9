"""The emotion model: per-modality encoders -> fusion -> heads, built from the config.

``build_model(cfg, input_shapes, n_classes=...)`` where ``input_shapes`` maps batch keys
to per-item shapes (no batch axis), as :attr:`mmer.data.dataset.FeatureDataset.input_shapes`
reports them, e.g. ``{"video": (6, 2048, 4, 4), "audio": (6, 512)}``.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

from mmer.config import Config, ModelConfig
from mmer.models.attention import make_encoder
from mmer.models.fusion import LateFusion, make_fusion
from mmer.models.heads import EmbeddingHead, LateFusionHead, ModelOutput

log = logging.getLogger(__name__)

MODALITIES = ("audio", "video", "visual", "text", "egemaps")


def input_keys(model_cfg: ModelConfig) -> dict[str, str]:
    """{modality: batch key} for ``model.modalities``.

    Audio is read from ``"logmel"`` when ``model.audio_encoder == "resnet18"`` (the model
    holds the ResNet-18), else from the cached ``"audio"`` features. The ``"egemaps"``
    modality is the clip's cached openSMILE eGeMAPS functionals (``audio.functionals``).
    """
    mods = list(model_cfg.modalities)
    unknown = [m for m in mods if m not in MODALITIES]
    if unknown or not mods:
        raise ValueError(f"model.modalities {mods}: unknown or empty; valid: {', '.join(MODALITIES)}")
    if len(set(mods)) != len(mods):
        raise ValueError(f"model.modalities {mods} lists a modality twice")
    keys = {m: m for m in mods}
    if "audio" in keys and model_cfg.audio_encoder == "resnet18":
        keys["audio"] = "logmel"
    return keys


class InputStandardizer(nn.Module):
    """Per-channel (x - mean) / std with statistics fitted on the training clips.

    Backbone features share a large common component that would swamp the
    clip-to-clip differences after projection; standardising each channel removes it.
    The statistics are buffers, so checkpoints carry them to evaluation. Channels: C of
    (B, S, C, h, w), D of (B, S, D) and (B, D). Identity until :meth:`fit` is called.
    """

    def __init__(self, shape: Sequence[int]) -> None:
        super().__init__()
        self.ndim = len(shape)
        channels = shape[1] if self.ndim == 4 else shape[-1]
        self.register_buffer("mean", torch.zeros(channels))
        self.register_buffer("std", torch.ones(channels))

    def _view(self, t: Tensor) -> Tensor:
        return t.view(-1, 1, 1) if self.ndim == 4 else t

    @torch.no_grad()
    def fit(self, x: Tensor, eps: float = 1e-5) -> None:
        """Statistics of `x` (N, *shape), the training clips' inputs."""
        x = x.float()
        dims = [d for d in range(x.ndim) if d != (2 if self.ndim == 4 else x.ndim - 1)]
        self.mean.copy_(x.mean(dim=dims))
        self.std.copy_(x.std(dim=dims).clamp_min(eps))

    def forward(self, x: Tensor) -> Tensor:
        return (x - self._view(self.mean)) / self._view(self.std)


class EmotionModel(nn.Module):
    """forward(batch) -> ModelOutput; batch holds one tensor per key of ``input_keys``.

    Shapes per key: (B, S, C, h, w), (B, S, D), (B, D) or, for ``logmel``,
    (B, S, 1, M, T). Output: embedding (B, E) L2-normalised, logits (B, K),
    extra_logits {task: (B, K_task)}.
    """

    def __init__(self, keys: Mapping[str, str], shapes: Mapping[str, Sequence[int]],
                 encoders: Mapping[str, nn.Module], fusion: nn.Module, head: nn.Module,
                 embed_dim: int) -> None:
        super().__init__()
        self.input_keys = dict(keys)
        self.modalities = list(keys)
        self.encoders = nn.ModuleDict(dict(encoders))
        self.norms = nn.ModuleDict({m: InputStandardizer(shapes[k]) for m, k in self.input_keys.items()
                                    if k != "logmel"})
        self.fusion = fusion
        self.head = head
        self.embed_dim = embed_dim

    def forward(self, batch: Mapping[str, Tensor]) -> ModelOutput:
        tokens = {}
        for modality, key in self.input_keys.items():
            if key not in batch:
                raise KeyError(f"batch has no {key!r} for modality {modality!r} "
                               f"(batch keys: {sorted(batch)})")
            x = batch[key].float()
            if modality in self.norms:
                x = self.norms[modality](x)
            tokens[modality] = self.encoders[modality](x)
        return self.head(self.fusion(tokens))

    def fit_input_stats(self, inputs: Mapping[str, Tensor]) -> None:
        """Fit the input standardisers on the training clips' inputs {key: (N, *shape)}.

        Log-mels are left alone: they are normalised per clip and the ResNet has BatchNorm.
        """
        for modality, norm in self.norms.items():
            norm.fit(inputs[self.input_keys[modality]])


def build_model(cfg: Config, input_shapes: Mapping[str, Sequence[int]], *, n_classes: int,
                extra_classes: Mapping[str, int] | None = None) -> EmotionModel:
    """The model of ``cfg.model`` for inputs of `input_shapes` and `n_classes` emotions.

    `extra_classes`: extra classification tasks on the fused vector, e.g.
    ``{"sentiment": 3}`` for MELD (reported in ``ModelOutput.extra_logits``).
    """
    m = cfg.model
    keys = input_keys(m)
    missing = [k for k in keys.values() if k not in input_shapes]
    if missing:
        hint = (" (egemaps: set audio.functionals: egemaps and run python -m mmer.extract)"
                if "egemaps" in missing else "")
        raise ValueError(f"model.modalities {m.modalities} need inputs {missing}, but the data has "
                         f"only {sorted(input_shapes)}{hint}")
    encoders = {}
    for modality, key in keys.items():
        width = m.audio_width if key == "logmel" else None
        encoders[modality] = make_encoder(input_shapes[key], m.d_model, m.n_heads, m.dropout,
                                          logmel_width=width)
    fusion = make_fusion(m.fusion, modalities=list(keys), dim=m.d_model, n_heads=m.n_heads,
                         dropout=m.dropout)
    if isinstance(fusion, LateFusion):
        head = LateFusionHead(list(keys), m.d_model, m.embed_dim, n_classes, m.dropout,
                              weights=m.late_weights, extra_classes=extra_classes)
    else:
        head = EmbeddingHead(fusion.out_dim, m.embed_dim, n_classes, m.dropout, extra_classes)
    model = EmotionModel(keys, input_shapes, encoders, fusion, head, m.embed_dim)
    n_params = sum(p.numel() for p in model.parameters())
    log.info("model: %s fusion over %s, %d parameters", m.fusion, list(keys), n_params)
    return model
