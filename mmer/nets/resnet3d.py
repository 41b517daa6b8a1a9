"""Video backbones: the 3D ResNet-101 of Hara et al. and torchvision's R3D-18.

Both share :class:`VideoBackbone`: a clip snippet batch ``(N, 3, L, H, W)`` goes in,
the last convolutional map averaged over time ``(N, C, h, w)`` comes out, which is
what the spatial and channel attention layers of the model consume.

:class:`ResNet3D` is our own implementation of the ResNets of the
3D-ResNets-PyTorch release (Hara, Kataoka, Satoh, CVPR 2018). Its parameter names and
shapes are exactly those of the released Kinetics checkpoints
(``resnet-101-kinetics.pth``) once their ``module.`` prefix is removed, so such a file
loads with strict key and shape checking (see :mod:`mmer.nets.pretrained`):

- ``conv1`` 7x7x7, stride (1, 2, 2), padding 3, no bias; ``bn1``; max-pool 3x3x3 with
  stride 2 in time *and* space;
- bottleneck blocks ``layer{1..4}.{i}.conv{1,2,3}`` / ``bn{1,2,3}`` with the stride on
  the 3x3x3 ``conv2`` (it downsamples time as well as space);
- shortcut type B: ``layer{k}.0.downsample.0`` (1x1x1 conv) + ``downsample.1`` (BN);
- ``fc``: 2048 -> 400 Kinetics classes (kept so the checkpoint loads whole; the feature
  path never uses it).

For 16 x 112 x 112 snippets the last map is (N, 2048, 1, 4, 4).
"""
from __future__ import annotations

from collections.abc import Callable

from torch import Tensor, nn
from torchvision.models.video import r3d_18

from mmer.errors import BadInput

HARA_LAYERS_101 = (3, 4, 23, 3)


class VideoBackbone(nn.Module):
    """A 3D CNN used as a feature extractor.

    Subclasses implement :meth:`feature_map`; ``forward`` averages it over time.
    ``out_channels`` is C of the output and ``weight_layout`` names the checkpoint
    layout :func:`mmer.nets.pretrained.load_backbone_weights` expects for it.
    """

    out_channels: int
    weight_layout: str

    def feature_map(self, x: Tensor) -> Tensor:
        """(N, 3, L, H, W) -> last conv map (N, C, t, h, w)."""
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:
        """(N, 3, L, H, W) -> last conv map averaged over time (N, C, h, w)."""
        return self.feature_map(x).mean(dim=2)


class Bottleneck3D(nn.Module):
    """1x1x1 -> 3x3x3 (strided) -> 1x1x1 residual block, Hara's parameter names."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1,
                 downsample: nn.Module | None = None) -> None:
        super().__init__()
        width_out = planes * self.expansion
        self.conv1 = nn.Conv3d(inplanes, planes, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm3d(planes)
        self.conv2 = nn.Conv3d(planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm3d(planes)
        self.conv3 = nn.Conv3d(planes, width_out, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm3d(width_out)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        """(N, inplanes, T, H, W) -> (N, 4 * planes, T', H', W')."""
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + shortcut)


class ResNet3D(VideoBackbone):
    """Bottleneck 3D ResNet in the layout of Hara et al.'s Kinetics checkpoints.

    Args:
        layers: blocks per stage; (3, 4, 23, 3) is ResNet-101.
        num_classes: size of ``fc`` (400 for Kinetics); ``None`` builds no ``fc``.
    """

    weight_layout = "hara"

    def __init__(self, layers: tuple[int, ...] = HARA_LAYERS_101,
                 num_classes: int | None = 400) -> None:
        super().__init__()
        if len(layers) != 4:
            raise BadInput(f"ResNet3D: layers must give 4 stage depths, got {layers}")
        self.conv1 = nn.Conv3d(3, 64, kernel_size=7, stride=(1, 2, 2), padding=3, bias=False)
        self.bn1 = nn.BatchNorm3d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool3d(kernel_size=3, stride=2, padding=1)
        inplanes = 64
        for index, (planes, blocks) in enumerate(zip((64, 128, 256, 512), layers, strict=True)):
            stage, inplanes = _make_stage(inplanes, planes, blocks, stride=1 if index == 0 else 2)
            self.add_module(f"layer{index + 1}", stage)
        self.out_channels = inplanes
        self.fc = nn.Linear(inplanes, num_classes) if num_classes else None
        _init_weights(self)

    def feature_map(self, x: Tensor) -> Tensor:
        """(N, 3, L, H, W) -> (N, 2048, ceil(L/8), ceil(H/32), ceil(W/32))."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def classify(self, x: Tensor) -> Tensor:
        """(N, 3, L, H, W) -> Kinetics logits (N, num_classes), as the original network."""
        if self.fc is None:
            raise RuntimeError("ResNet3D was built with num_classes=None: it has no fc layer")
        return self.fc(self.feature_map(x).mean(dim=(2, 3, 4)))


def _make_stage(inplanes: int, planes: int, blocks: int, stride: int) -> tuple[nn.Sequential, int]:
    """One ResNet stage with a type-B (1x1x1 conv + BN) shortcut on its first block."""
    width_out = planes * Bottleneck3D.expansion
    downsample = None
    if stride != 1 or inplanes != width_out:
        downsample = nn.Sequential(
            nn.Conv3d(inplanes, width_out, kernel_size=1, stride=stride, bias=False),
            nn.BatchNorm3d(width_out),
        )
    first = Bottleneck3D(inplanes, planes, stride, downsample)
    rest = [Bottleneck3D(width_out, planes) for _ in range(1, blocks)]
    return nn.Sequential(first, *rest), width_out


def _init_weights(module: nn.Module) -> None:
    """He init for convolutions, unit/zero BN (the initialisation of the original code)."""
    for m in module.modules():
        if isinstance(m, nn.Conv3d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm3d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class R3D18(VideoBackbone):
    """torchvision's ``r3d_18`` (random init) as a light video backbone.

    The torchvision submodules are registered directly on this module, so the
    parameter names are torchvision's own (``stem.0.weight``, ``layer1.0.conv1.0.weight``,
    ``fc.weight`` ...) and ``r3d_18-b3b3357e.pth`` loads strictly. Output for
    16 x 112 x 112 snippets: (N, 512, 2, 7, 7) -> (N, 512, 7, 7).
    """

    weight_layout = "torchvision"

    def __init__(self, num_classes: int = 400) -> None:
        super().__init__()
        net = r3d_18(weights=None, num_classes=num_classes)
        self.stem = net.stem
        self.layer1, self.layer2, self.layer3, self.layer4 = (
            net.layer1, net.layer2, net.layer3, net.layer4)
        self.fc = net.fc
        self.out_channels = 512

    def feature_map(self, x: Tensor) -> Tensor:
        """(N, 3, L, H, W) -> (N, 512, ceil(L/8), ceil(H/16), ceil(W/16))."""
        x = self.stem(x)
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


VIDEO_BACKBONES: dict[str, Callable[[], VideoBackbone]] = {
    "r3d_101": ResNet3D,
    "r3d_18": R3D18,
}


def build_video_backbone(name: str) -> VideoBackbone:
    """Build a video backbone by its config name (``backbone.video``), randomly initialised."""
    if name not in VIDEO_BACKBONES:
        raise BadInput(f"unknown video backbone {name!r}; choices: {', '.join(VIDEO_BACKBONES)}")
    return VIDEO_BACKBONES[name]()

