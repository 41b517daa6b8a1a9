"""2D ResNet-18 over 1-channel log-mel segments.

Built from torchvision's ResNet-18 parts (its ``BasicBlock`` and the same module
names: ``conv1``, ``bn1``, ``layer{1..4}.{i}.conv{1,2}``/``bn{1,2}``,
``layer{k}.0.downsample.{0,1}``), so that at ``width=64`` every parameter name and
shape equals torchvision's ``resnet18`` except two documented differences:

- ``conv1`` takes 1 input channel instead of 3. When torchvision's ImageNet
  checkpoint (``resnet18-f37072fd.pth``) is loaded, its RGB ``conv1`` kernels are
  summed over the colour axis (layout ``"torchvision_1ch"`` in
  :mod:`mmer.nets.pretrained`). A grey image x fed as (x, x, x) to the RGB network
  gives exactly the response of the summed kernel to x, so the pretrained filters
  keep their meaning on a spectrogram.
- There is no ``fc``: the ImageNet classifier is not used for features; its keys are
  ignored at load time by the documented allow-list and listed in the metadata.

Smaller ``width`` (e.g. 16 or 32) gives a light network trained from scratch end to
end on log-mels; no checkpoint fits it. Channels per stage are width x (1, 2, 4, 8).
"""
from __future__ import annotations

from typing import Literal

from torch import Tensor, nn
from torchvision.models.resnet import BasicBlock, conv1x1

from mmer.errors import BadInput

RESNET18_LAYERS = (2, 2, 2, 2)


class AudioResNet18(nn.Module):
    """ResNet-18 for spectrogram segments.

    Args:
        width: channels of the first stage (64 = torchvision's ResNet-18).
        output: ``"map"`` returns the last conv map (N, 8*width, h, w);
            ``"pooled"`` its spatial mean (N, 8*width).

    Input: (N, 1, M, T) log-mel segments. For M=64 mels and T=58 frames the map is
    (N, 512, 2, 2) at width 64.
    """

    weight_layout = "torchvision_1ch"

    def __init__(self, width: int = 64, output: Literal["map", "pooled"] = "pooled") -> None:
        super().__init__()
        if width < 1:
            raise BadInput(f"AudioResNet18: width must be positive, got {width}")
        if output not in ("map", "pooled"):
            raise BadInput(f"AudioResNet18: unknown output {output!r}; choices: map, pooled")
        self.output = output
        self.conv1 = nn.Conv2d(1, width, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        inplanes = width
        for index, blocks in enumerate(RESNET18_LAYERS):
            planes = width * 2 ** index
            stage = _make_stage(inplanes, planes, blocks, stride=1 if index == 0 else 2)
            self.add_module(f"layer{index + 1}", stage)
            inplanes = planes
        self.out_channels = inplanes
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def feature_map(self, x: Tensor) -> Tensor:
        """(N, 1, M, T) -> (N, 8*width, ceil(M/32), ceil(T/32))."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def forward(self, x: Tensor) -> Tensor:
        """(N, 1, M, T) -> (N, 8*width, h, w) for ``map`` or (N, 8*width) for ``pooled``."""
        fmap = self.feature_map(x)
        return fmap if self.output == "map" else fmap.mean(dim=(2, 3))


def _make_stage(inplanes: int, planes: int, blocks: int, stride: int) -> nn.Sequential:
    """torchvision's stage layout: a 1x1 conv + BN shortcut where the shape changes."""
    downsample = None
    if stride != 1 or inplanes != planes:
        downsample = nn.Sequential(conv1x1(inplanes, planes, stride), nn.BatchNorm2d(planes))
    first = BasicBlock(inplanes, planes, stride, downsample)
    return nn.Sequential(first, *[BasicBlock(planes, planes) for _ in range(1, blocks)])
