"""Models by name or reference: every built-in takes ``in_channels`` and ``num_classes``; a
user's factory (``file.py:factory`` / ``package.module:factory``) takes its own ``args``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from autoprune.errors import ConfigError
from autoprune.models.hugging_face import (
    from_config,
    is_pretrained_class,
    is_pretrained_dir,
    load_pretrained_dir,
)
from autoprune.references import is_reference, resolve
from autoprune.registry import Registry

MODELS: Registry[nn.Module] = Registry("model", entry_point_group="autoprune.models")
_INPUT_SIZES: dict[str, int] = {}
FMNIST_SIZE = 28  # the built-ins are shipped for Fashion-MNIST images


def register_model(name: str, input_size: int | None = None) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator registering a model factory under ``name``; ``input_size`` is the image side the
    model was designed for (like timm's default ``input_size``), used when neither data nor
    checkpoint gives a shape."""
    if input_size is not None:
        _INPUT_SIZES[name] = input_size
    return MODELS.register(name)


def is_builtin(ref: str) -> bool:
    """True when ``ref`` names a registered model rather than a factory reference or ``hf:DIR``."""
    return not is_reference(ref) and not is_pretrained_dir(ref)


def create_model(ref: str, in_channels: int = 1, num_classes: int | None = None,
                 args: dict[str, Any] | None = None) -> nn.Module:
    """Build the model named ``ref`` (random weights for built-ins; whatever a user factory returns).

    ``in_channels``/``num_classes`` size the built-ins (``num_classes`` None: the model's own
    default); ``args`` are a factory reference's keyword arguments (``--model-args``).
    """
    if is_builtin(ref):
        if args:
            raise ConfigError(f"--model-args is for models given as file.py:factory; built-in {ref!r} "
                              f"takes its sizes from the data")
        model = MODELS.create(ref, in_channels=in_channels, **({"num_classes": num_classes} if num_classes else {}))
        if ref in _INPUT_SIZES and not hasattr(model, "input_shape"):
            model.input_shape = (in_channels, _INPUT_SIZES[ref], _INPUT_SIZES[ref])
        return model
    if is_pretrained_dir(ref):
        if args:
            raise ConfigError(f"--model-args does not go with --model {ref}: its config.json sizes the model")
        return load_pretrained_dir(ref)
    factory = resolve(ref, "model factory", "--model")
    if is_pretrained_class(factory):  # transformers:ViTForImageClassification, --model-args: its config
        return from_config(factory, args or {}, ref)
    try:
        model = factory(**(args or {}))
    except TypeError as exc:
        raise ConfigError(f"--model {ref}: calling the factory failed ({exc}); check --model-args") from None
    except Exception as exc:  # noqa: BLE001 - user code, one line
        raise ConfigError(f"--model {ref}: the factory raised {type(exc).__name__}: {exc}") from None
    if not isinstance(model, nn.Module):
        raise ConfigError(f"--model {ref}: the factory returned a {type(model).__name__}, not a torch nn.Module")
    return model


def list_models() -> list[str]:
    """Names of the registered models."""
    return MODELS.names()
