"""The frozen video/audio backbones of feature extraction, built once per job.

Video: a 3D ResNet (``r3d_101``, ``r3d_18``) reads whole snippets; a 2D frame encoder
(``mobilenet_v2``, ``efficientnet_lite0``, ``mini_xception``, :mod:`mmer.nets.frame_encoders`)
reads every frame of a snippet and its maps are averaged over the snippet
(:func:`~mmer.nets.frame_encoders.snippet_feature_maps`); either way a clip's ``"video"``
is (S, C, h, w), and its training views (``"views"`` of the item) become
``"video_views"`` (K, S, C, h, w).

Used by :mod:`mmer.features.pipeline` (the cache) and :mod:`mmer.eval.predict` (features of a new clip made
by the same code).
"""
from __future__ import annotations

import logging
from typing import Any

import torch
from torch import Tensor, nn

from mmer.config import BackboneConfig, Config, ConfigError
from mmer.nets.audio_resnet import AudioResNet18
from mmer.nets.frame_encoders import (
    ENCODERS,
    build_frame_encoder,
    prepare_frames,
    snippet_feature_maps,
    unnormalise_snippets,
)
from mmer.nets.pretrained import load_backbone_weights, weight_file
from mmer.nets.resnet3d import build_video_backbone

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
            audio = AudioResNet18(output=bb.audio_feature) if bb.audio != "none" else None
        if bb.video in ENCODERS:
            self.video = self._frame_encoder(cfg)
        elif video is not None:
            self.video = self._load("video", video, bb.video, bb)
        if audio is not None:
            self.audio = self._load("audio", audio, bb.audio, bb)

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
        if bb.video_feature == "expression" and bb.video != "mini_xception":
            raise ConfigError(f"backbone.video_feature: expression needs backbone.video "
                              f"mini_xception (the FER classifier), got {bb.video}")
        encoder, info = build_frame_encoder(bb.video, bb.weights_dir, pretrained=bb.pretrained)
        self.pretrained["video"] = {"name": bb.video, "feature": bb.video_feature, **info}
        return SnippetFrameEncoder(encoder, cfg.video.mean, cfg.video.std,
                                   expression=bb.video_feature == "expression").to(self.device)

    def features(self, items: list[dict[str, Any]]) -> list[dict[str, Tensor]]:
        """Per clip ``{"video": (S, C, h, w), "audio": (S, D) | (S, C, h, w)}`` fp16 on CPU,
        plus ``"video_views"`` (K, S, C, h, w) for items with K training ``"views"``."""
        feats: list[dict[str, Tensor]] = [{} for _ in items]
        if self.video is not None and items and "snippets" in items[0]:
            for f, out in zip(feats, self.video_features(items), strict=True):
                f.update(out)
        if self.audio is not None and items and "logmel" in items[0]:
            for f, out in zip(feats, self.run(self.audio, [it["logmel"] for it in items]), strict=True):
                f["audio"] = out
        return feats

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


class SnippetFrameEncoder(nn.Module):
    """A 2D frame encoder reading mmer snippets: (N, 3, L, H, W) normalised with the
    video config's `mean`/`std` -> (N, C, h, w), every frame encoded, maps averaged over L.

    With `expression` (mini-Xception): (N, 135), the per-frame pooled penultimate features
    (128) and FER softmax (7) averaged over L."""

    def __init__(self, encoder: nn.Module, mean: list[float], std: list[float], *,
                 expression: bool = False) -> None:
        super().__init__()
        self.encoder = encoder
        self.mean, self.std = list(mean), list(std)
        self.expression = expression

    def forward(self, snippets: Tensor) -> Tensor:
        if not self.expression:
            return snippet_feature_maps(self.encoder, snippets, mean=self.mean, std=self.std)
        frames = unnormalise_snippets(snippets, self.mean, self.std)    # (N, L, 3, H, W)
        x = prepare_frames(frames.flatten(0, 1), self.encoder.frame_input)
        out = self.encoder.expression(x)
        per_frame = torch.cat([out["features"], out["probs"]], dim=1)    # (N * L, 135)
        return per_frame.view(*frames.shape[:2], -1).mean(dim=1)
