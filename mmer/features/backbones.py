"""The frozen video/audio backbones of feature extraction, built once per job.

Video: a 3D ResNet (``r3d_101``, ``r3d_18``) reads whole snippets; a 2D frame encoder
(``mobilenet_v2``, ``efficientnet_lite0``, ``mini_xception``, :mod:`mmer.nets.frame_encoders`)
reads every frame of a snippet and its maps are averaged over the snippet
(:func:`~mmer.nets.frame_encoders.snippet_feature_maps`); either way a clip's ``"video"``
is (S, C, h, w), and its training views (``"views"`` of the item) become
``"video_views"`` (K, S, C, h, w).

Used by :mod:`mmer.extraction.job` (the cache) and :mod:`mmer.prediction.predict` (features of a new clip made
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

from mmer.config import BackboneConfig, Config, ConfigError
from mmer.config.schema import WHISPER_AUDIO
from mmer.errors import BadInput
from mmer.features.whisper import segment_pool
from mmer.nets.audio_resnet import AudioResNet18
from mmer.nets.frame_encoders import (
    ENCODERS,
    build_frame_encoder,
    prepare_frames,
    snippet_feature_maps,
    unnormalise_snippets,
)
from mmer.nets.ported import random_reason
from mmer.nets.pretrained import MissingWeightsError, load_backbone_weights, weight_file
from mmer.nets.resnet3d import build_video_backbone
from mmer.nets.whisper import WHISPER_MODELS, WhisperEncoder, load_whisper_encoder

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
            video = build_video_backbone(bb.video) if bb.video not in ("none", *ENCODERS) else None
            audio = AudioResNet18(output=bb.audio_feature) if bb.audio == "resnet18" else None
        if bb.video in ENCODERS:
            self.video = self._frame_encoder(cfg)
        elif video is not None:
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

    def _frame_encoder(self, cfg: Config) -> nn.Module:
        """The 2D frame encoder of ``backbone.video`` wrapped to read whole snippets."""
        bb = cfg.backbone
        standard = ENCODERS[bb.video].file
        if bb.video_weights not in (None, standard):
            raise ConfigError(f"backbone.video_weights: {bb.video} reads {standard} from "
                              f"backbone.weights_dir; got {bb.video_weights!r}")
        if bb.video_feature != "map" and bb.video != "mini_xception":
            raise ConfigError(f"backbone.video_feature: {bb.video_feature} needs backbone.video "
                              f"mini_xception (the FER classifier), got {bb.video}")
        encoder, info = build_frame_encoder(bb.video, bb.weights_dir, pretrained=bb.pretrained)
        self.pretrained["video"] = {"name": bb.video, "feature": bb.video_feature, **info}
        return SnippetFrameEncoder(encoder, cfg.video.mean, cfg.video.std,
                                   expression=bb.video_feature != "map",
                                   with_std=bb.video_feature == "expression_std").to(self.device)

    def _load_audio_encoder(self, bb: BackboneConfig) -> None:
        """The pretrained audio encoders (whisper_tiny, mobilenet_v2, efficientnet_lite0)."""
        if bb.audio in WHISPER_AUDIO:
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
        self.audio = module.to(memory_format=torch.channels_last) if self.cuda and bb.audio not in WHISPER_AUDIO else module

    def features(self, items: list[dict[str, Any]]) -> list[dict[str, Tensor]]:
        """Per clip ``{"video": (S, C, h, w), "audio": (S, D) | (S, C, h, w)}`` fp16 on CPU,
        plus ``"video_views"`` (K, S, C, h, w) for items with K training ``"views"`` and
        ``"audio_views"`` (K, S, D) for items with K ``"whisper_views"``."""
        feats: list[dict[str, Tensor]] = [{} for _ in items]
        if self.video is not None and items and "snippets" in items[0]:
            for f, out in zip(feats, self.video_features(items), strict=True):
                f.update(out)
        if self.audio is not None and items and self.audio_input in items[0]:
            if self.audio_input == "whisper_mel":
                outs = self.whisper_segments(items)
                for f, views in zip(feats, self.whisper_view_segments(items), strict=True):
                    if views is not None:
                        f["audio_views"] = views
            else:
                outs = self.run(self.audio, [it[self.audio_input] for it in items])
            for f, out in zip(feats, outs, strict=True):
                f["audio"] = out
        return feats

    def whisper_view_segments(self, items: list[dict[str, Any]]) -> list[Tensor | None]:
        """Each clip's ``whisper_views`` (K (mel, valid) pairs) -> (K, S, D) fp16, None
        for a clip without views; all clips' views go through :meth:`whisper_segments` together."""
        flat = [{"whisper_mel": mel, "whisper_valid": valid}
                for it in items for mel, valid in it.get("whisper_views", [])]
        pooled = iter(self.whisper_segments(flat)) if flat else iter(())
        return [torch.stack([next(pooled) for _ in it["whisper_views"]]) if it.get("whisper_views") else None
                for it in items]

    def video_features(self, items: list[dict[str, Any]]) -> list[dict[str, Tensor]]:
        """The video side of :meth:`features`: each clip's centred snippets and its views
        go through the backbone in one batch, then split back apart."""
        inputs = [torch.cat([it["snippets"], *it.get("views", [])]) for it in items]
        out = []
        for it, maps in zip(items, self.run(self.video, inputs), strict=True):
            per_view = maps.view(-1, len(it["snippets"]), *maps.shape[1:])
            entry = {"video": per_view[0]}
            if len(per_view) > 1:
                entry["video_views"] = per_view[1:].clone()
            out.append(entry)
        return out

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
        if self.cuda and isinstance(module, SnippetFrameEncoder):
            with torch.autocast("cuda", dtype=torch.bfloat16):
                return module(x).to("cpu", torch.float16)
        if self.cuda:
            fmt = torch.channels_last_3d if x.ndim == 5 else torch.channels_last
            with torch.autocast("cuda", dtype=torch.bfloat16):
                return module(x.contiguous(memory_format=fmt)).to("cpu", torch.float16)
        return module(x).to(torch.float16)


def build_whisper(bb: BackboneConfig) -> tuple[WhisperEncoder, dict[str, Any]]:
    """The Whisper encoder ``backbone.audio`` (tiny.en or base) of ``backbone.weights_dir``, its
    sizes read from the file, and where its weights came from (``backbone.pretrained`` as for
    every backbone; random weights of that model's sizes from a fixed seed)."""
    path = weight_file(bb, "audio")
    meta: dict[str, Any] = {"name": bb.audio, "file": str(path), "policy": bb.pretrained,
                            "status": "random", "reason": None}
    meta["reason"] = random_reason(path, bb.pretrained, missing=MissingWeightsError,
                                   fix=f"python -m mmer.weights fetch {WHISPER_MODELS[bb.audio].asset}")
    if meta["reason"] is None:
        encoder = load_whisper_encoder(path.parent)
        meta["status"] = "loaded"
    if meta["status"] == "random":
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(BACKBONE_INIT_SEED)
            encoder = WhisperEncoder(WHISPER_MODELS[bb.audio].sizes)
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


class SnippetFrameEncoder(nn.Module):
    """A 2D frame encoder reading mmer snippets: (N, 3, L, H, W) normalised with the
    video config's `mean`/`std` -> (N, C, h, w), every frame encoded, maps averaged over L.

    With `expression` (mini-Xception): (N, 135), the per-frame pooled penultimate features
    (128) and FER softmax (7) averaged over L; with `with_std` as well, their standard
    deviation over the L frames follows: (N, 270)."""

    def __init__(self, encoder: nn.Module, mean: list[float], std: list[float], *,
                 expression: bool = False, with_std: bool = False) -> None:
        super().__init__()
        if with_std and not expression:
            raise ValueError("with_std needs expression features")
        self.encoder = encoder
        self.mean, self.std = list(mean), list(std)
        self.expression, self.with_std = expression, with_std

    def forward(self, snippets: Tensor) -> Tensor:
        if not self.expression:
            return snippet_feature_maps(self.encoder, snippets, mean=self.mean, std=self.std)
        frames = unnormalise_snippets(snippets, self.mean, self.std)    # (N, L, 3, H, W)
        x = prepare_frames(frames.flatten(0, 1), self.encoder.frame_input)
        out = self.encoder.expression(x)
        per_frame = torch.cat([out["features"], out["probs"]], dim=1)    # (N * L, 135)
        per_frame = per_frame.view(*frames.shape[:2], -1)                # (N, L, 135)
        if not self.with_std:
            return per_frame.mean(dim=1)
        # population std: a one-frame snippet gives 0, not NaN
        return torch.cat([per_frame.mean(dim=1), per_frame.std(dim=1, correction=0)], dim=1)
