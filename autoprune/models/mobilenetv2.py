"""A MobileNetV2-style net for small images: inverted residuals with depthwise 3x3 convolutions."""

from __future__ import annotations

import torch
from torch import nn

from autoprune.models.registry import FMNIST_SIZE, register_model

# (expansion t, output channels c, repeats n, first stride s), as in Sandler et al. 2018, scaled down.
SMALL_SETTING = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 2, 2), (6, 64, 2, 1))


def conv_bn(c_in: int, c_out: int, k: int, stride: int, groups: int = 1, act: bool = True) -> nn.Sequential:
    """Conv + BN (+ ReLU6)."""
    layers: list[nn.Module] = [
        nn.Conv2d(c_in, c_out, k, stride, k // 2, groups=groups, bias=False),
        nn.BatchNorm2d(c_out),
    ]
    if act:
        layers.append(nn.ReLU6())
    return nn.Sequential(*layers)


class InvertedResidual(nn.Module):
    """1x1 expand -> 3x3 depthwise -> 1x1 linear project, with a residual when shapes match."""

    def __init__(self, c_in: int, c_out: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = c_in * expand
        self.use_res = stride == 1 and c_in == c_out
        layers: list[nn.Module] = []
        if expand != 1:
            layers.append(conv_bn(c_in, hidden, 1, 1))
        layers += [conv_bn(hidden, hidden, 3, stride, groups=hidden), conv_bn(hidden, c_out, 1, 1, act=False)]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_res else self.conv(x)


class MobileNetV2(nn.Module):
    """Stem, inverted-residual stages, 1x1 head conv, global pool, classifier."""

    def __init__(self, setting=SMALL_SETTING, in_channels: int = 1, num_classes: int = 10,
                 stem: int = 16, head: int = 256) -> None:
        super().__init__()
        layers: list[nn.Module] = [conv_bn(in_channels, stem, 3, 1)]
        c = stem
        for t, c_out, n, s in setting:
            for i in range(n):
                layers.append(InvertedResidual(c, c_out, s if i == 0 else 1, t))
                c = c_out
        layers.append(conv_bn(c, head, 1, 1))
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(head, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))


@register_model("mobilenetv2_small", input_size=FMNIST_SIZE)
def mobilenetv2_small(in_channels: int = 1, num_classes: int = 10) -> nn.Module:
    """MobileNetV2-style, 7 inverted-residual blocks, widths 16-64, head 256."""
    return MobileNetV2(SMALL_SETTING, in_channels, num_classes)
