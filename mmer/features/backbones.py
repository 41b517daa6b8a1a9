"""The frozen video/audio backbones of feature extraction, built once per job.

Used by :mod:`mmer.features.pipeline` (the cache) and :mod:`mmer.eval.predict` (features of a new clip made
by the same code).

Audio backbones (``backbone.audio``):

- ``resnet18``: a 2D ResNet-18 on each log-mel segment (S, 1, M, Ts) -> (S, 512) or its map.
- ``whisper_tiny``: the Whisper tiny.en encoder on the clip's Whisper log-mel window
  (:func:`mmer.features.whisper.whisper_window`, item key ``whisper_mel`` (80, T) and
  ``whisper_valid``), states of block ``backbone.whisper_layers`` (joined) pooled over S equal parts of
  the states covering audio (:func:`mmer.features.whisper.segment_pool`) -> (S, 384 | 768).
- ``mobilenet_v2`` / ``efficientnet_lite0``: the ImageNet CNN on each segment as a 3-channel
  image (log-mel, delta, delta-delta, each standardised, resized to
  ``backbone.audio_image_size``) -> (S, 1280) or its map (:class:`LogMelImages`).
"""
from __future__ import annotations

import logging
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchaudio.functional import compute_deltas

from mmer.config import BackboneConfig, Config
from mmer.errors import BadInput
from mmer.features.whisper import segment_pool
from mmer.nets.audio_resnet import AudioResNet18
from mmer.nets.frame_encoders import build_frame_encoder
from mmer.nets.pretrained import MissingWeightsError, load_backbone_weights, weight_file
from mmer.nets.resnet3d import build_video_backbone
from mmer.nets.whisper import WhisperEncoder, load_whisper_encoder

log = logging.getLogger(__name__)

BACKBONE_INIT_SEED = 0


class Backbones:
    """The configured video/audio backbones on `device`, and where their weights came from."""

    def __init__(self, cfg: Config, device: torch.device) -> None:
        bb, self.device = cfg.backbone, device
        self.cuda = device.type == "cuda"
        self.chunk = cfg.features.batch_size
        self.video: nn.Module | None = None
        self.audio: nn.Module | None = None
        self.pretrained: dict[str, dict[str, Any]] = {}
        if self.cuda:  # fixed input shapes: let cuDNN pick its fastest kernels once
            torch.backends.cudnn.benchmark = True
        # Randomly initialised backbones (no weight file) must be the same network in every
        # run, or predict and a resumed extraction would featurise with a different one than
        # the cache: build them from a fixed seed, leaving the global RNG as it was.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(BACKBONE_INIT_SEED)
            video = build_video_backbone(bb.video) if bb.video != "none" else None
            audio = AudioResNet18(output=bb.audio_feature) if bb.audio == "resnet18" else None
        if video is not None:
            self.video = self._load("video", video, bb.video, bb)
        if audio is not None:
            self.audio = self._load("audio", audio, bb.audio, bb)
        self.audio_input = "logmel"  # the item key the audio backbone reads
        self.n_segments = cfg.audio.n_segments
        if bb.audio not in ("resnet18", "none"):
            self._load_audio_encoder(bb)

    def _load(self, part: str, module: nn.Module, name: str, bb: BackboneConfig) -> nn.Module:
        meta = load_backbone_weights(module, weight_file(bb, part), layout=module.weight_layout,
                                     policy=bb.pretrained)
        self.pretrained[part] = {"name": name, **meta}
        log.info("%s backbone %s: %s (%s)", part, name, meta["status"], meta["file"])
        module = module.eval().to(self.device)
        if self.cuda:  # channels-last kernels are the fast ones for bf16 convolutions
            fmt = torch.channels_last_3d if part == "video" else torch.channels_last
            module = module.to(memory_format=fmt)
        return module

    def _load_audio_encoder(self, bb: BackboneConfig) -> None:
        """The pretrained audio encoders (whisper_tiny, mobilenet_v2, efficientnet_lite0)."""
        if bb.audio == "whisper_tiny":
            module, meta = build_whisper(bb)
            self.audio_input = "whisper_mel"
        else:
            encoder, meta = build_frame_encoder(bb.audio, bb.weights_dir, pretrained=bb.pretrained)
            module = LogMelImages(encoder, bb.audio_image_size, bb.audio_feature)
        self.pretrained["audio"] = meta
        self.whisper_layers = list(bb.whisper_layers)
        self.audio_pool = bb.audio_pool
        log.info("audio backbone %s: %s (%s)", bb.audio, meta["status"], meta["file"])
        module = module.eval().to(self.device)
        self.audio = module.to(memory_format=torch.channels_last) if self.cuda and bb.audio != "whisper_tiny" else module

    def features(self, items: list[dict[str, Any]]) -> list[dict[str, Tensor]]:
        """Per clip ``{"video": (S, C, h, w), "audio": (S, D) | (S, C, h, w)}`` fp16 on CPU."""
        feats: list[dict[str, Tensor]] = [{} for _ in items]
        for key, module, inputs in (("video", self.video, "snippets"), ("audio", self.audio, self.audio_input)):
            if module is None or not items or inputs not in items[0]:
                continue
            if inputs == "whisper_mel":
                outs = self.whisper_segments(items)
            else:
                outs = self.run(module, [it[inputs] for it in items])
            for f, out in zip(feats, outs, strict=True):
                f[key] = out
        return feats

    def _pool_blocks(self, states: Tensor, n_valid: int, n_blocks: int) -> Tensor:
        """(T, 384 * n_blocks) -> (S, D) fp16: each block's states pooled on its own."""
        return torch.cat([segment_pool(st, n_valid, self.n_segments, self.audio_pool)
                          for st in states.chunk(n_blocks, dim=1)], dim=1).to(torch.float16)

    @torch.inference_mode()
    def whisper_segments(self, items: list[dict[str, Any]]) -> list[Tensor]:
        """Each clip's ``whisper_mel`` (80, T) -> pooled segment states (S, D) fp16 on CPU,
        clips of one window length batched ``features.batch_size // S`` at a time."""
        per_pass = max(1, self.chunk // max(1, self.n_segments))
        outs: list[Tensor] = []
        for start in range(0, len(items), per_pass):
            part = items[start:start + per_pass]
            mel = torch.stack([it["whisper_mel"] for it in part]).to(self.device, non_blocking=True)
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.cuda):
                blocks = self.audio.block_states(mel, self.whisper_layers)
            states = torch.cat(blocks, dim=2).float().cpu()  # (B, T, 384 * blocks)
            outs += [self._pool_blocks(st, int(it["whisper_valid"]), len(blocks))
                     for st, it in zip(states, part, strict=True)]
        return outs

    def run(self, module: nn.Module, inputs: list[Tensor]) -> list[Tensor]:
        """Forward each clip's (S_i, ...) inputs, batching across clips; fp16 CPU outputs.

        Clips whose inputs differ in shape (audio of other lengths) go in separate batches.
        """
        outputs: list[Tensor | None] = [None] * len(inputs)
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, x in enumerate(inputs):
            groups.setdefault(tuple(x.shape[1:]), []).append(i)
        for members in groups.values():
            stacked = torch.cat([inputs[i] for i in members])
            feats = torch.cat([self._forward(module, part)
                               for part in stacked.split(self.chunk)])
            for i, out in zip(members, feats.split([len(inputs[i]) for i in members]), strict=True):
                outputs[i] = out
        return outputs  # type: ignore[return-value]

    def _forward(self, module: nn.Module, x: Tensor) -> Tensor:
        x = x.to(self.device, non_blocking=True)
        if self.cuda:
            fmt = torch.channels_last_3d if x.ndim == 5 else torch.channels_last
            with torch.autocast("cuda", dtype=torch.bfloat16):
                return module(x.contiguous(memory_format=fmt)).to("cpu", torch.float16)
        return module(x).to(torch.float16)


def build_whisper(bb: BackboneConfig) -> tuple[WhisperEncoder, dict[str, Any]]:
    """The Whisper tiny.en encoder of ``backbone.weights_dir`` and where its weights came from
    (``backbone.pretrained`` as for every backbone; random weights from a fixed seed)."""
    path = weight_file(bb, "audio")
    meta: dict[str, Any] = {"name": bb.audio, "file": str(path), "policy": bb.pretrained,
                            "status": "random", "reason": None}
    if bb.pretrained == "none":
        meta["reason"] = "backbone.pretrained is none: random initialisation on purpose"
    elif not path.is_file():
        if bb.pretrained == "required":
            raise MissingWeightsError(f"{path}: weight file not found; run `python -m mmer.weights "
                                      "fetch whisper_tiny_en` or set backbone.pretrained to optional")
        log.warning("%s: weight file not found; using RANDOM initialisation "
                    "(backbone.pretrained is optional)", path)
        meta["reason"] = "weight file not found (backbone.pretrained: optional)"
    else:
        encoder = load_whisper_encoder(path.parent)
        meta["status"] = "loaded"
    if meta["status"] == "random":
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(BACKBONE_INIT_SEED)
            encoder = WhisperEncoder()
    if not bb.whisper_layers or any(not 1 <= b <= encoder.cfg.n_layer for b in bb.whisper_layers):
        raise BadInput(f"backbone.whisper_layers must be blocks in 1..{encoder.cfg.n_layer}, "
                       f"got {bb.whisper_layers}")
    return encoder, meta


class LogMelImages(nn.Module):
    """An ImageNet CNN on log-mel segments as 3-channel images.

    (N, 1, M, T) log-mel segments -> channels log-mel, delta, delta-delta (over time), each
    standardised per image (so every channel has ImageNet-like scale whatever
    ``audio.normalise``), resized to `size` x `size` -> the CNN's map (N, C, h, w), or its
    spatial mean (N, C) when `output` is ``"pooled"``.
    """

    def __init__(self, encoder: nn.Module, size: int, output: str) -> None:
        super().__init__()
        self.encoder, self.size, self.output = encoder, size, output

    def forward(self, x: Tensor) -> Tensor:
        d1 = compute_deltas(x)
        img = torch.cat([x, d1, compute_deltas(d1)], dim=1)
        img = (img - img.mean(dim=(2, 3), keepdim=True)) / img.std(dim=(2, 3), keepdim=True).clamp_min(1e-3)
        img = F.interpolate(img, size=(self.size, self.size), mode="bilinear", align_corners=False)
        fmap = self.encoder(img)
        return fmap if self.output == "map" else fmap.mean(dim=(2, 3))
