"""The emotion model: per-modality encoders -> fusion -> heads, built from the config.

``build_model(cfg, input_shapes, n_classes=...)`` where ``input_shapes`` maps batch keys
to per-item shapes (no batch axis), as :attr:`mmer.inputs.datasets.FeatureDataset.input_shapes`
reports them, e.g. ``{"video": (6, 2048, 4, 4), "audio": (6, 512)}``.
"""
from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmer.config import Config, ConfigError, ModelConfig, input_keys
from mmer.config.keys import (
    AUDIO_TRUNK_KEYS,
    TOKEN_KEYS,
    TRUNK_KEYS,
    uses_audio_trunk,
    uses_tokens,
    uses_trunk,
)
from mmer.errors import BadInput
from mmer.models.attention import make_encoder
from mmer.models.dialogue import DialogueEncoder
from mmer.models.fusion import LateFusion, make_fusion
from mmer.models.heads import EmbeddingHead, LateFusionHead, ModelOutput
from mmer.models.text import TokenTextModel, build_text_encoder, build_top_blocks
from mmer.models.whisper_top import AudioTrunkModel, build_whisper_top_blocks

log = logging.getLogger(__name__)

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
        # Log-mels and the dialogue layer's zero-padded windows are read as they are.
        self.norms = nn.ModuleDict({m: InputStandardizer(shapes[k]) for m, k in self.input_keys.items()
                                    if k != "logmel" and not getattr(encoders[m], "raw_input", False)})
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
            if self.input_keys[modality] in inputs:  # text from token ids comes from the model
                norm.fit(inputs[self.input_keys[modality]])
        for modality, encoder in self.encoders.items():  # those that standardise themselves
            if getattr(encoder, "raw_input", False) and self.input_keys[modality] in inputs:
                encoder.fit(inputs[self.input_keys[modality]])


def _mean_probability_logits(logits: Sequence[Tensor]) -> Tensor:
    """log of the members' mean softmax probability: a softmax of it is that mean."""
    log_p = torch.stack([F.log_softmax(x.float(), dim=1) for x in logits])
    return torch.logsumexp(log_p, dim=0) - math.log(len(logits))


class EnsembleModel(nn.Module):
    """A deep ensemble of EmotionModels with the same config, each initialised on its own.

    They see the same batches in training, where :class:`mmer.losses.EmotionLoss` trains
    each member on its own output (``ModelOutput.members``). The ensemble's output: logits
    whose softmax is the members' mean probability, an embedding that joins the members'
    (each L2-normalised, so the cosine of two joined embeddings is the members' mean
    cosine), and extra-task logits like the logits.
    """

    def __init__(self, members: Sequence[EmotionModel]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, batch: Mapping[str, Tensor]) -> ModelOutput:
        outs = [member(batch) for member in self.members]
        return ModelOutput(
            embedding=F.normalize(torch.cat([o.embedding for o in outs], dim=1), dim=1),
            logits=_mean_probability_logits([o.logits for o in outs]),
            extra_logits={k: _mean_probability_logits([o.extra_logits[k] for o in outs])
                          for k in outs[0].extra_logits},
            members=outs,
        )

    def fit_input_stats(self, inputs: Mapping[str, Tensor]) -> None:
        for member in self.members:
            member.fit_input_stats(inputs)


def build_model(cfg: Config, input_shapes: Mapping[str, Sequence[int]], *, n_classes: int,
                extra_classes: Mapping[str, int] | None = None,
                vocab: tuple[int, int] | None = None) -> nn.Module:
    """The model of ``cfg.model`` for inputs of `input_shapes` and `n_classes` emotions:
    one :class:`EmotionModel`, or an :class:`EnsembleModel` of ``model.ensemble`` of them,
    behind a :class:`TokenTextModel` when the text encoder is trained on token ids.

    `extra_classes`: extra classification tasks on the fused vector, e.g.
    ``{"sentiment": 3}`` for MELD (reported in ``ModelOutput.extra_logits``).
    `vocab`: (vocabulary size, padding id) of the tokenizer, for a trained text encoder.
    """
    m = cfg.model
    if m.ensemble < 1:
        raise ConfigError(f"model.ensemble must be 1 or more, got {m.ensemble}")
    encoder, text_key = None, TOKEN_KEYS[0]
    if "text" in input_keys(m).values() and uses_trunk(cfg):
        encoder, text_key = build_top_blocks(cfg), TRUNK_KEYS[0]
        input_shapes = {**{k: v for k, v in input_shapes.items() if k not in TRUNK_KEYS},
                        "text": [encoder.out_dim]}
    elif "text" in input_keys(m).values() and uses_tokens(cfg.text):
        if vocab is None:
            raise ConfigError("a trained text encoder (text.encoder: scratch or text.finetune) "
                              "needs the tokenizer's vocabulary")
        encoder = build_text_encoder(cfg.text, vocab_size=vocab[0], pad_id=vocab[1], dropout=m.dropout)
        input_shapes = {**{k: v for k, v in input_shapes.items() if k not in TOKEN_KEYS},
                        "text": [encoder.out_dim]}
    audio_top = build_whisper_top_blocks(cfg) if uses_audio_trunk(cfg) else None
    input_shapes = {k: v for k, v in input_shapes.items() if k not in AUDIO_TRUNK_KEYS}
    members = [_emotion_model(m, input_shapes, n_classes, extra_classes, dialogue=cfg.text.dialogue,
                               offline=cfg.text.context_mode == "dialogue")
               for _ in range(m.ensemble)]
    model: nn.Module = members[0] if m.ensemble == 1 else EnsembleModel(members)
    if encoder is not None:
        model = TokenTextModel(encoder, model, text_key)
    if audio_top is not None:
        model = AudioTrunkModel(audio_top, model)
    n_params = sum(p.numel() for p in model.parameters())
    log.info("model: %s%s fusion over %s, %d parameters",
             f"ensemble of {m.ensemble}, " if m.ensemble > 1 else "", m.fusion, m.modalities, n_params)
    return model


def _emotion_model(m: ModelConfig, input_shapes: Mapping[str, Sequence[int]], n_classes: int,
                   extra_classes: Mapping[str, int] | None, *, dialogue: str = "none",
                   offline: bool = False) -> EmotionModel:
    keys = input_keys(m)
    missing = [k for k in keys.values() if k not in input_shapes]
    if missing:
        hint = (" (egemaps: set audio.functionals: egemaps and run python -m mmer.extract)"
                if "egemaps" in missing else "")
        raise BadInput(f"model.modalities {m.modalities} need inputs {missing}, but the data has "
                         f"only {sorted(input_shapes)}{hint}")
    encoders = {}
    for modality, key in keys.items():
        width = m.audio_width if key == "logmel" else None
        if key == "text" and dialogue != "none":
            encoders[modality] = DialogueEncoder(tuple(input_shapes[key]), m.d_model, m.n_heads,
                                                 m.dropout, kind=dialogue, offline=offline)
            continue
        encoders[modality] = make_encoder(input_shapes[key], m.d_model, m.n_heads, m.dropout,
                                          logmel_width=width)
    fusion = make_fusion(m.fusion, modalities=list(keys), dim=m.d_model, n_heads=m.n_heads,
                         dropout=m.dropout)
    if isinstance(fusion, LateFusion):
        head = LateFusionHead(list(keys), m.d_model, m.embed_dim, n_classes, m.dropout,
                              weights=m.late_weights, extra_classes=extra_classes)
    else:
        head = EmbeddingHead(fusion.out_dim, m.embed_dim, n_classes, m.dropout, extra_classes)
    return EmotionModel(keys, input_shapes, encoders, fusion, head, m.embed_dim)
