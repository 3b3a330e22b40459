"""A multi-layer perceptron on flattened images (the smallest model, for tests and quick checks)."""

from __future__ import annotations

import torch
from torch import nn

from autoprune.models.registry import FMNIST_SIZE, register_model


class MLP(nn.Module):
    """Flatten -> Linear-ReLU hidden layers -> Linear classifier."""

    def __init__(self, in_features: int, hidden: tuple[int, ...], num_classes: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c = in_features
        for h in hidden:
            layers += [nn.Linear(c, h), nn.ReLU()]
            c = h
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(c, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(torch.flatten(x, 1)))


@register_model("mlp", input_size=FMNIST_SIZE)
def mlp(in_channels: int = 1, num_classes: int = 10, image_size: int = 28) -> nn.Module:
    """MLP 784-256-128-10 for 28x28 single-channel images."""
    return MLP(in_channels * image_size * image_size, (256, 128), num_classes)


@register_model("seed_mlp", input_size=FMNIST_SIZE)
def seed_mlp(in_channels: int = 1, num_classes: int = 10, image_size: int = 28) -> nn.Module:
    """The pruning guide's Keras model: 784-128-64-10, ReLU; logits out (the guide's softmax is the
    cross-entropy's)."""
    return MLP(in_channels * image_size * image_size, (128, 64), num_classes)
