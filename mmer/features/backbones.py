"""The frozen video/audio backbones of feature extraction, built once per job.

Used by :mod:`mmer.features.pipeline` (the cache) and :mod:`mmer.eval.predict` (features of a new clip made
by the same code).
"""
from __future__ import annotations

import logging
from typing import Any

import torch
from torch import Tensor, nn

from mmer.config import BackboneConfig, Config
from mmer.nets.audio_resnet import AudioResNet18
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
            video = build_video_backbone(bb.video) if bb.video != "none" else None
            audio = AudioResNet18(output=bb.audio_feature) if bb.audio != "none" else None
        if video is not None:
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

    def features(self, items: list[dict[str, Any]]) -> list[dict[str, Tensor]]:
        """Per clip ``{"video": (S, C, h, w), "audio": (S, D) | (S, C, h, w)}`` fp16 on CPU."""
        feats: list[dict[str, Tensor]] = [{} for _ in items]
        for key, module, inputs in (("video", self.video, "snippets"), ("audio", self.audio, "logmel")):
            if module is None or not items or inputs not in items[0]:
                continue
            for f, out in zip(feats, self.run(module, [it[inputs] for it in items]), strict=True):
                f[key] = out
        return feats

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
