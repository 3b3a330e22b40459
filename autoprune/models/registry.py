"""Model registry: every built-in takes ``in_channels`` and ``num_classes``."""

from __future__ import annotations

from typing import Callable

from torch import nn

from autoprune.registry import Registry

MODELS: Registry[nn.Module] = Registry("model", entry_point_group="autoprune.models")


def register_model(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator registering a model factory under ``name``."""
    return MODELS.register(name)


def create_model(name: str, in_channels: int = 1, num_classes: int = 10) -> nn.Module:
    """Build the model registered as ``name`` (random weights)."""
    return MODELS.create(name, in_channels=in_channels, num_classes=num_classes)


def list_models() -> list[str]:
    """Names of the registered models."""
    return MODELS.names()
