"""A small VGG-style net (conv-BN-ReLU stacks, max-pool between stages, one hidden FC layer)."""

from __future__ import annotations

import torch
from torch import nn

from autoprune.models.registry import FMNIST_SIZE, register_model

VGG_SMALL = ((32, 32), (64, 64), (128, 128))


class VGG(nn.Module):
    """Plain conv stages; every conv and the hidden FC layer are independent prunable groups."""

    def __init__(self, stages=VGG_SMALL, in_channels: int = 1, num_classes: int = 10) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c = in_channels
        for widths in stages:
            for w in widths:
                layers += [nn.Conv2d(c, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU()]
                c = w
            layers.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Linear(c, 128), nn.ReLU(), nn.Linear(128, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))


@register_model("vgg_small", input_size=FMNIST_SIZE)
def vgg_small(in_channels: int = 1, num_classes: int = 10) -> nn.Module:
    """VGG-style, 6 conv layers (32-32-64-64-128-128) + FC 128."""
    return VGG(VGG_SMALL, in_channels, num_classes)
