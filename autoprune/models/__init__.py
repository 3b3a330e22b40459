"""Built-in models, created by name: ``create_model("resnet20")``, ``list_models()``."""

from autoprune.models import channel_bench, mlp, mobilenetv2, resnet, vgg, vit  # noqa: F401  (registration side effects)
from autoprune.models.registry import MODELS, create_model, is_builtin, list_models, register_model

__all__ = ["MODELS", "create_model", "is_builtin", "list_models", "register_model"]
