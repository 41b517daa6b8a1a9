"""Trainable top blocks of the Whisper audio encoder over its cached trunk states.

With ``finetune.top_blocks: K`` and a Whisper ``backbone.audio`` the blocks h - K + 1 .. h
(1-based; h the highest block of ``backbone.whisper_layers``) train; the states entering
them are cached (:mod:`mmer.features.trunk`). :class:`WhisperTopBlocks` runs those blocks
over the whole window and pools each read block's states into S segments as extraction does
(:func:`mmer.features.whisper.segment_pool`); read blocks at or below the cut keep their
frozen features, taken from the cached ``"audio"`` entry. :class:`AudioTrunkModel` puts it
in front of the EmotionModel, which reads the result as ``"audio"``.
"""
from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

from mmer.config import Config, ConfigError
from mmer.config.keys import AUDIO_TRUNK_KEYS
from mmer.features.backbones import build_whisper
from mmer.features.trunk import whisper_cut
from mmer.features.whisper import segment_pool
from mmer.nets.whisper import WhisperEncoder


class WhisperTopBlocks(nn.Module):
    """Copies of `encoder`'s blocks `cut` .. h - 1 (0-based; h = max(`layers`)) and, when h is
    the last block, its final LayerNorm: (B, T, C) states entering block `cut`, (B,) states
    covering audio and the (B, S, D) frozen features of `layers` -> (B, S, D) with the
    tuned read blocks' pooled states in place of their frozen ones."""

    def __init__(self, encoder: WhisperEncoder, cut: int, layers: Sequence[int], *,
                 n_segments: int, pool: str) -> None:
        super().__init__()
        top, n = max(layers), encoder.cfg.n_layer
        if not 0 <= cut < top <= n:
            raise ConfigError(f"finetune.top_blocks {top - cut}: Whisper blocks {cut + 1}..{top} "
                              f"of {n} (backbone.whisper_layers {list(layers)})")
        self.start, self.layers, self.n_layer = cut, list(layers), n
        self.n_segments, self.pool = n_segments, pool
        self.blocks = copy.deepcopy(encoder.blocks[cut:top])
        self.ln_post = copy.deepcopy(encoder.ln_post) if top == n else None

    def forward(self, states: Tensor, valid: Tensor, frozen: Tensor) -> Tensor:
        x, outs = states.float(), {}
        for n, block in enumerate(self.blocks, start=self.start + 1):
            x = block(x)
            if n in self.layers:
                outs[n] = self.ln_post(x) if n == self.n_layer else x
        width = frozen.shape[-1] // len(self.layers)
        parts = [self._pooled(outs[b], valid) if b in outs else frozen[..., i * width:(i + 1) * width].float()
                 for i, b in enumerate(self.layers)]
        return torch.cat(parts, dim=-1)

    def _pooled(self, x: Tensor, valid: Tensor) -> Tensor:
        """(B, T, C) -> (B, S, C | 2C) over each clip's states covering audio."""
        return torch.stack([segment_pool(st, int(v), self.n_segments, self.pool)
                            for st, v in zip(x, valid, strict=True)])


class AudioTrunkModel(nn.Module):
    """WhisperTopBlocks + EmotionModel: batch with ``whisper_states`` (B, T, C),
    ``whisper_valid`` (B,) and the frozen ``audio`` (B, S, D) (plus any other modality keys)
    -> the EmotionModel's ModelOutput."""

    def __init__(self, audio_encoder: WhisperTopBlocks, model: nn.Module) -> None:
        super().__init__()
        self.audio_encoder = audio_encoder
        self.model = model

    def forward(self, batch: Mapping[str, Tensor]):
        batch = dict(batch)
        states, valid = (batch.pop(k) for k in AUDIO_TRUNK_KEYS)
        batch["audio"] = self.audio_encoder(states, valid, batch["audio"])
        return self.model(batch)

    def fit_input_stats(self, inputs: Mapping[str, Tensor]) -> None:
        """Fit the inner model's standardisers: ``audio`` holds the frozen features, the
        tuned blocks' output before any training step."""
        self.model.fit_input_stats(inputs)


def build_whisper_top_blocks(cfg: Config) -> WhisperTopBlocks:
    """The trainable top ``finetune.top_blocks`` blocks of ``backbone.audio`` (its weights as
    loaded; the frozen trunk below them is cached, :mod:`mmer.features.trunk`)."""
    encoder, _ = build_whisper(cfg.backbone)
    return WhisperTopBlocks(encoder, whisper_cut(cfg), cfg.backbone.whisper_layers,
                            n_segments=cfg.audio.n_segments, pool=cfg.backbone.audio_pool)
