"""ResNet-18/34/50 with torchvision's module and parameter names, without the classifier.

The names (``conv1``, ``bn1``, ``layer1.0.conv1``, ``layer2.0.downsample.0``, ...) and shapes
match torchvision's ``resnet18/34/50``, so a torchvision state dict loads with
``load_pretrained(backbone, path)`` (it drops ``fc.*``). The forward stops at ``layer4`` and
returns its feature map; the ``Embedder`` pools it. Bottleneck blocks put the stride on the 3x3
convolution (torchvision's "ResNet v1.5").

Paper: "Deep Residual Learning for Image Recognition", He et al., CVPR 2016,
https://arxiv.org/abs/1512.03385.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from torch import Tensor, nn

from .._checks import check_int
from .backbones import BACKBONES, check_images

Block = Literal["basic", "bottleneck"]


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels)


def _downsample(in_planes: int, out_planes: int, stride: int) -> nn.Sequential | None:
    """torchvision's shortcut projection ``1x1 conv (stride) -> BN``, when the shape changes."""
    if stride == 1 and in_planes == out_planes:
        return None
    return nn.Sequential(nn.Conv2d(in_planes, out_planes, 1, stride, bias=False), _bn(out_planes))


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with an identity (or projected) shortcut; ``expansion = 1``."""

    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, padding=1, bias=False)
        self.bn1 = _bn(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, padding=1, bias=False)
        self.bn2 = _bn(planes)
        self.downsample = _downsample(in_planes, planes, stride)

    def forward(self, x: Tensor) -> Tensor:
        """``(batch, in_planes, H, W)`` -> ``(batch, planes, H / stride, W / stride)``."""
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + shortcut)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (strided), 1x1 expand by 4, with a shortcut; ``expansion = 4``."""

    expansion = 4

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 1, bias=False)
        self.bn1 = _bn(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, padding=1, bias=False)
        self.bn2 = _bn(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = _bn(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _downsample(in_planes, planes * 4, stride)

    def forward(self, x: Tensor) -> Tensor:
        """``(batch, in_planes, H, W)`` -> ``(batch, 4 * planes, H / stride, W / stride)``."""
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.relu(self.bn3(self.conv3(out)) + shortcut)


class ResNet(nn.Module):
    """A ResNet trunk: stem, four stages, no pooling and no classifier.

    Output: ``(batch, num_features, H / 32, W / 32)`` (``H / 8`` with ``small_input``), where
    ``num_features`` is 512 for basic blocks and 2048 for bottlenecks. Weights start as in
    torchvision: Kaiming-normal (fan-out) convolutions, BatchNorm weight 1 and bias 0.

    Args:
        block: ``"basic"`` (ResNet-18/34) or ``"bottleneck"`` (ResNet-50 and deeper).
        layers: number of blocks in each of the four stages.
        in_channels: input channels. Pretrained ImageNet weights need 3: with any other value
            ``conv1.weight`` has another shape and ``load_pretrained`` refuses the file.
        small_input: a 3x3 stride-1 ``conv1`` and no max-pool, for 32x32 images (CIFAR style);
            pretrained ``conv1`` weights then cannot load either.
        zero_init_residual: start the last BatchNorm weight of every block at 0, so each block
            begins as the identity ("Bag of Tricks", He et al. 2019).

    Example:
        >>> import torch
        >>> net = ResNet("basic", (1, 1, 1, 1))
        >>> tuple(net(torch.zeros(1, 3, 64, 64)).shape)
        (1, 512, 2, 2)
    """

    def __init__(
        self,
        block: Block,
        layers: Sequence[int],
        in_channels: int = 3,
        small_input: bool = False,
        zero_init_residual: bool = False,
    ) -> None:
        super().__init__()
        if block not in ("basic", "bottleneck"):
            raise ValueError(f"block must be 'basic' or 'bottleneck'; got {block!r}")
        if len(layers) != 4:
            raise ValueError(f"layers must give 4 stage depths; got {list(layers)!r}")
        depths = [check_int("layers[i]", n, low=1) for n in layers]
        self.in_channels = check_int("in_channels", in_channels, low=1)
        unit: type[BasicBlock] | type[Bottleneck] = BasicBlock if block == "basic" else Bottleneck
        if small_input:
            self.conv1 = nn.Conv2d(in_channels, 64, 3, 1, padding=1, bias=False)
        else:
            self.conv1 = nn.Conv2d(in_channels, 64, 7, 2, padding=3, bias=False)
        self.bn1 = _bn(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool: nn.Module = nn.Identity() if small_input else nn.MaxPool2d(3, 2, padding=1)
        planes_in, stages = 64, []
        for stage, (planes, depth) in enumerate(zip((64, 128, 256, 512), depths, strict=True)):
            blocks = []
            for i in range(depth):
                stride = 2 if stage > 0 and i == 0 else 1
                blocks.append(unit(planes_in, planes, stride))
                planes_in = planes * unit.expansion
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.num_features = planes_in
        self._init_weights(zero_init_residual)

    def _init_weights(self, zero_init_residual: bool) -> None:
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        if zero_init_residual:
            for module in self.modules():
                if isinstance(module, Bottleneck):
                    nn.init.zeros_(module.bn3.weight)
                elif isinstance(module, BasicBlock):
                    nn.init.zeros_(module.bn2.weight)

    def forward(self, images: Tensor) -> Tensor:
        """``images (batch, in_channels, H, W)`` -> the ``layer4`` feature map."""
        check_images(images, self.in_channels)
        x = self.maxpool(self.relu(self.bn1(self.conv1(images))))
        for stage in (self.layer1, self.layer2, self.layer3, self.layer4):
            x = stage(x)
        return x


@BACKBONES.register("resnet18")
class ResNet18(ResNet):
    """ResNet-18: basic blocks ``(2, 2, 2, 2)``, 512 features, 11,176,512 parameters.

    Example:
        >>> ResNet18().num_features
        512
    """

    def __init__(
        self, in_channels: int = 3, small_input: bool = False, zero_init_residual: bool = False
    ) -> None:
        super().__init__("basic", (2, 2, 2, 2), in_channels, small_input, zero_init_residual)


@BACKBONES.register("resnet34")
class ResNet34(ResNet):
    """ResNet-34: basic blocks ``(3, 4, 6, 3)``, 512 features, 21,284,672 parameters."""

    def __init__(
        self, in_channels: int = 3, small_input: bool = False, zero_init_residual: bool = False
    ) -> None:
        super().__init__("basic", (3, 4, 6, 3), in_channels, small_input, zero_init_residual)


@BACKBONES.register("resnet50")
class ResNet50(ResNet):
    """ResNet-50: bottleneck blocks ``(3, 4, 6, 3)``, 2048 features, 23,508,032 parameters."""

    def __init__(
        self, in_channels: int = 3, small_input: bool = False, zero_init_residual: bool = False
    ) -> None:
        super().__init__("bottleneck", (3, 4, 6, 3), in_channels, small_input, zero_init_residual)


__all__ = ["BasicBlock", "Bottleneck", "ResNet", "ResNet18", "ResNet34", "ResNet50"]
