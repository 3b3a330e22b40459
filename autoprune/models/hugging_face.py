"""Hugging Face ``transformers`` models: a local ``save_pretrained`` folder (``hf:DIR``), or a model
class built from its config (``transformers:ViTForImageClassification`` with the config's fields as
``--model-args``). Only local files are read (never a download), weights only from safetensors (no
pickle), and no code from the folder runs (``trust_remote_code`` stays off)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from autoprune.errors import ConfigError

PREFIX = "hf:"


def is_pretrained_dir(ref: str) -> bool:
    """True for ``hf:DIR`` references."""
    return ref.startswith(PREFIX)


def _transformers(ref: str) -> Any:
    try:
        import transformers
    except ImportError:
        raise ConfigError(f"--model {ref} needs Hugging Face transformers: pip install transformers") from None
    return transformers


def load_pretrained_dir(ref: str) -> nn.Module:
    """The model saved in ``hf:DIR`` (its ``config.json`` names the class), in eval mode."""
    folder = Path(ref[len(PREFIX):]).expanduser()
    if not (folder / "config.json").is_file():
        raise ConfigError(f"--model {ref}: {folder} holds no config.json; save the model there with "
                          f"model.save_pretrained(DIR)")
    if not any(folder.glob("*.safetensors")):
        raise ConfigError(f"--model {ref}: {folder} holds no .safetensors weights, and autoprune reads no pickled "
                          f"ones; save with model.save_pretrained(DIR, safe_serialization=True)")
    transformers = _transformers(ref)
    transformers.utils.logging.disable_progress_bar()  # a load bar per model would flood every command's output
    try:
        config = transformers.AutoConfig.from_pretrained(folder, local_files_only=True, trust_remote_code=False)
    except Exception as exc:  # noqa: BLE001 - a malformed config, one line
        raise ConfigError(f"--model {ref}: reading its config.json failed ({type(exc).__name__}: {exc})") from None
    names = list(getattr(config, "architectures", None) or [])
    cls = getattr(transformers, names[0], None) if names else None
    if not is_pretrained_class(cls):
        raise ConfigError(f"--model {ref}: its config.json names no transformers model class (architectures: "
                          f"{names or 'none'}); save it with save_pretrained from a transformers model")
    try:
        model = cls.from_pretrained(folder, local_files_only=True, use_safetensors=True, trust_remote_code=False)
    except Exception as exc:  # noqa: BLE001
        raise ConfigError(f"--model {ref}: loading {names[0]} failed ({type(exc).__name__}: {exc})") from None
    return model.eval()


def is_pretrained_class(obj: object) -> bool:
    """A ``transformers`` model class (built from a config rather than called with keywords)."""
    return isinstance(obj, type) and issubclass(obj, nn.Module) and hasattr(obj, "config_class") \
        and hasattr(obj, "from_pretrained")


def from_config(cls: type, args: dict[str, Any], ref: str) -> nn.Module:
    """``cls`` built from its config class with ``args`` (random weights), in eval mode."""
    try:
        return cls(cls.config_class(**args)).eval()
    except Exception as exc:  # noqa: BLE001 - a config the class rejects, one line
        raise ConfigError(f"--model {ref}: building it from --model-args failed ({type(exc).__name__}: "
                          f"{str(exc).splitlines()[0] if str(exc) else ''})") from None
