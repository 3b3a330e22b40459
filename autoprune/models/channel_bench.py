"""The two width-search spaces of Channel-Bench-Macro (BCNet, Su et al., CVPR 2021) at full width.

Each space has 7 independently searchable widths, each one of {1/4, 2/4, 3/4, 4/4} of its maximum;
the benchmark trained all 4^7 = 16,384 architectures of each on CIFAR-10 three times. An
architecture is written as a 7-digit key, digit ``d`` meaning ``round(d * max / 4)`` channels, in
the order of :data:`SPACES`. Here the full-width nets are built-ins (3x32x32 inputs, 10 classes) and
an architecture is the full net pruned to those widths: the analysis finds exactly the 7 groups.

MobileNet space: 3x3 stem (stride 2), two inverted residuals at the stem's width, a stride-2
inverted residual, one more at its width, a 1x1 conv, pooling, a classifier. ResNet space: 3x3 stem
(stride 2), two residual blocks at the stem's width, a stride-2 block without shortcut, two more
residual blocks at its width, pooling, a classifier (the structure tables of the upstream README).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from autoprune.errors import ConfigError
from autoprune.models.registry import register_model


@dataclass(frozen=True)
class WidthSpace:
    """One space: the group each key digit sets, in key order, and that group's maximum width."""

    model: str
    groups: tuple[str, ...]
    maxima: tuple[int, ...]

    def kept(self, key: str) -> dict[str, int]:
        """Channels kept per group for a 7-digit key like ``"2413342"``."""
        if len(key) != len(self.groups) or any(c not in "1234" for c in key):
            raise ConfigError(f"{key!r} is not a {self.model} architecture: give {len(self.groups)} digits 1-4")
        return {g: round(int(d) * m / 4) for g, d, m in zip(self.groups, key, self.maxima)}

    def key(self, kept: dict[str, int]) -> str | None:
        """The key of an architecture (channels kept per group), None when a width is not d/4 of its maximum."""
        digits = []
        for g, m in zip(self.groups, self.maxima):
            n = int(kept.get(g, m))
            d = next((d for d in range(1, 5) if round(d * m / 4) == n), None)
            if d is None:
                return None
            digits.append(str(d))
        return "".join(digits)


def _conv_bn(c_in: int, c_out: int, k: int, stride: int = 1, groups: int = 1, relu: bool = True) -> list[nn.Module]:
    layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, k, stride, k // 2, groups=groups, bias=False),
                               nn.BatchNorm2d(c_out)]
    return layers + [nn.ReLU(inplace=True)] if relu else layers


class _Inverted(nn.Module):
    """1x1 expand -> 3x3 depthwise -> 1x1 project, residual when the shapes match (t = 6 at full width)."""

    def __init__(self, c_in: int, hidden: int, c_out: int, stride: int = 1) -> None:
        super().__init__()
        self.conv = nn.Sequential(*_conv_bn(c_in, hidden, 1), *_conv_bn(hidden, hidden, 3, stride, groups=hidden),
                                  *_conv_bn(hidden, c_out, 1, relu=False))
        self.shortcut = c_in == c_out and stride == 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x) + x if self.shortcut else self.conv(x)


class ChannelBenchMobileNet(nn.Module):
    """The MobileNet space at full width: widths 128, 768, 768, 768, 256, 1536, 1024."""

    def __init__(self, in_channels: int = 3, num_classes: int = 10) -> None:
        super().__init__()
        c = MOBILENET.maxima
        self.stem = nn.Sequential(*_conv_bn(in_channels, c[0], 3, 2))
        self.features = nn.Sequential(_Inverted(c[0], c[1], c[0]), _Inverted(c[0], c[2], c[0]),
                                      _Inverted(c[0], c[3], c[4], 2), _Inverted(c[4], c[5], c[4]))
        self.out = nn.Sequential(*_conv_bn(c[4], c[6], 1), nn.AdaptiveAvgPool2d(1))
        self.classifier = nn.Linear(c[6], num_classes)
        self.input_shape = (in_channels, 32, 32)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.out(self.features(self.stem(x))), 1))


class _Basic(nn.Module):
    """Two 3x3 convs; the caller adds the shortcut."""

    def __init__(self, c_in: int, hidden: int, c_out: int, stride: int = 1) -> None:
        super().__init__()
        self.conv = nn.Sequential(*_conv_bn(c_in, hidden, 3, stride), *_conv_bn(hidden, c_out, 3, relu=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class ChannelBenchResNet(nn.Module):
    """The ResNet space at full width: widths 256, 256, 256, 512, 512, 512, 512."""

    def __init__(self, in_channels: int = 3, num_classes: int = 10) -> None:
        super().__init__()
        c = RESNET.maxima
        self.stem = nn.Sequential(*_conv_bn(in_channels, c[0], 3, 2))
        self.block1, self.block2 = _Basic(c[0], c[1], c[0]), _Basic(c[0], c[2], c[0])
        self.block3 = _Basic(c[0], c[3], c[4], 2)
        self.block4, self.block5 = _Basic(c[4], c[5], c[4]), _Basic(c[4], c[6], c[4])
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c[4], num_classes)
        self.input_shape = (in_channels, 32, 32)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = torch.relu(x + self.block1(x))
        x = torch.relu(x + self.block2(x))
        x = torch.relu(self.block3(x))
        x = torch.relu(x + self.block4(x))
        x = torch.relu(x + self.block5(x))
        return self.classifier(torch.flatten(self.pool(x), 1))


MOBILENET = WidthSpace("cbm_mobilenet", ("stem.0", "features.0.conv.0", "features.1.conv.0", "features.2.conv.0",
                                         "features.2.conv.6", "features.3.conv.0", "out.0"),
                       (128, 768, 768, 768, 256, 1536, 1024))
RESNET = WidthSpace("cbm_resnet", ("stem.0", "block1.conv.0", "block2.conv.0", "block3.conv.0", "block3.conv.3",
                                   "block4.conv.0", "block5.conv.0"),
                    (256, 256, 256, 512, 512, 512, 512))
SPACES = {"mobilenet": MOBILENET, "resnet": RESNET}


@register_model("cbm_mobilenet", input_size=32)
def cbm_mobilenet(in_channels: int = 3, num_classes: int = 10) -> nn.Module:
    """Channel-Bench-Macro's MobileNet space at full width (prune it to a 7-digit key's widths)."""
    return ChannelBenchMobileNet(in_channels, num_classes)


@register_model("cbm_resnet", input_size=32)
def cbm_resnet(in_channels: int = 3, num_classes: int = 10) -> nn.Module:
    """Channel-Bench-Macro's ResNet space at full width (prune it to a 7-digit key's widths)."""
    return ChannelBenchResNet(in_channels, num_classes)
