"""A user's model, outside the package: a small VGG-style CNN for 1-channel 28x28 images."""

from torch import nn


def build(width: int = 32, classes: int = 10) -> nn.Module:
    """Four 3x3 conv blocks (BN, ReLU), two stride-2 stages, global pooling, a linear head."""
    def block(c_in: int, c_out: int, stride: int = 1) -> list[nn.Module]:
        return [nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]

    return nn.Sequential(*block(1, width), *block(width, width), *block(width, 2 * width, 2),
                         *block(2 * width, 2 * width), *block(2 * width, 4 * width, 2),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4 * width, classes))
