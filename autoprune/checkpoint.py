"""Model checkpoints that load without unpickling arbitrary objects (``torch.load(weights_only=True)``).

A checkpoint holds the model's name or factory reference (``file.py:factory``) with its arguments,
the state dict, one input's shape and metadata (plain JSON-able values). Loading rebuilds the model
from the registry or the factory, so no code is ever unpickled. A plain ``state_dict`` file (what
``torch.save(model.state_dict())`` writes) loads too, given the model.
A pruned model's checkpoint (format version 2) also holds its :class:`PruningRecord`: loading builds
the dense model, removes the recorded channels, then loads the weights.
"""

from __future__ import annotations

import math
import pickle
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from autoprune.analysis import analyse_model
from autoprune.analysis.layers import example_input
from autoprune.atomic import atomic_path
from autoprune.errors import ConfigError, TrainingError
from autoprune.inputs import InputSpec, Signature, signature_from_json, signature_json
from autoprune.limits import MAX_CLASSES, MAX_IN_CHANNELS, MAX_INPUT_ELEMENTS
from autoprune.models import MODELS, create_model, is_builtin
from autoprune.pruning.record import PruningRecord, rebuild_pruned
from autoprune.references import canonical, consent, require_consent

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
FORMAT = "autoprune-checkpoint"
FORMAT_VERSION = 2  # 1: dense models; 2: adds the optional pruning record and input shape


@dataclass(frozen=True)
class CheckpointInfo:
    """What a checkpoint says about its model, besides the weights: the value stages pass on."""

    model: str                                  # built-in name or factory reference
    in_channels: int = 1
    num_classes: int | None = None
    input_shape: Signature | None = None  # one input's shape (or several inputs' spec), when recorded
    model_args: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)  # test accuracy, policy, dense weights, ...
    pruning: PruningRecord | None = None        # None for a dense model

    def shape(self, given: Signature | None = None, source: str = "the checkpoint") -> Signature:
        """One input's shape (or several inputs' spec): ``given`` (``--input-shape``), else as recorded;
        a one-line error if neither."""
        shape = (given if isinstance(given, InputSpec) else tuple(given)) if given else self.input_shape
        if shape is None:
            raise ConfigError(f"{source} does not record the input shape; pass --input-shape C,H,W "
                              f"(or the shape of one input)")
        return shape


def shipped_weights(model_name: str) -> Path | None:
    """The trained Fashion-MNIST weights shipped for a built-in model, when there are some."""
    if not is_builtin(model_name):
        return None
    path = WEIGHTS_DIR / f"{model_name}_fmnist.pt"
    return path if path.is_file() else None


def load_or_create(model_name: str, weights: str | Path | None = None, require_weights: bool = False,
                   model_args: dict[str, Any] | None = None, in_channels: int = 1,
                   num_classes: int | None = None) -> nn.Module:
    """A model with ``weights``, else its shipped weights, else as built.

    A built-in without weights has random ones; a factory reference (``file.py:factory``) returns
    whatever its factory builds, trained weights included, so ``require_weights`` does not apply.
    ``in_channels``/``num_classes`` size a built-in when the weights file does not say.

    Raises:
        ConfigError: no weights can be found for a built-in and ``require_weights`` is set.
    """
    builtin = is_builtin(model_name)
    if builtin:
        MODELS.get(model_name)  # one-line error listing the known names
    weights = weights or shipped_weights(model_name)
    if weights:
        return load_model(weights, model_name, model_args, in_channels, num_classes)[0]
    if require_weights and builtin:
        raise ConfigError(f"no trained weights for {model_name!r}; pass --weights FILE "
                          f"(train one with 'autoprune train --model {model_name}')")
    return create_model(model_name, in_channels, num_classes, model_args).eval()


def save_checkpoint(path: str | Path, model: nn.Module, model_name: str, in_channels: int = 1,
                    num_classes: int | None = None, meta: dict[str, Any] | None = None,
                    pruning: PruningRecord | None = None, input_shape: Signature | None = None,
                    model_args: dict[str, Any] | None = None) -> Path:
    """Write ``model``'s weights plus what is needed to rebuild it (atomically: tmp file + rename).

    Args:
        model_name: a built-in name or a factory reference (``/abs/path/file.py:factory``).
        pruning: the record of a physically pruned ``model`` (None for a dense one).
        input_shape: one input's shape (or several inputs' spec), needed to re-analyse a pruned model
            (default: the model's ``input_shape`` attribute, which built-ins have).
        model_args: the factory's keyword arguments (references only).
    """
    input_shape = input_shape or getattr(model, "input_shape", None)  # built-ins declare theirs
    check_finite(model, f"the model for {path}")
    if pruning is not None and input_shape is None:
        raise ValueError("a pruned model's checkpoint needs its input_shape")
    payload = {
        "format": FORMAT, "format_version": 2 if pruning else 1, "model": model_name,
        "in_channels": in_channels, **({"num_classes": num_classes} if num_classes else {}),
        "state_dict": {k: v.detach().clone() for k, v in model.state_dict().items()}, "meta": meta or {},
    }
    if input_shape is not None:
        payload["input_shape"] = signature_json(input_shape)
    if model_args:
        payload["model_args"] = dict(model_args)
    if pruning is not None:
        payload["pruning"] = pruning.to_dict()
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)


def check_finite(model: nn.Module, what: str) -> None:
    """Refuse weights or buffers holding NaN or infinity: such a model never replaces a saved one."""
    for name, value in model.state_dict().items():
        if value.is_floating_point() and not torch.isfinite(value).all():
            raise TrainingError(f"{what} has NaN or infinite values in {name!r}; not saved (an earlier file "
                                f"there is kept); lower the learning rate or check the data")


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read and validate a checkpoint dict; refuses pickled code (``weights_only=True``)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"checkpoint {path} does not exist; pass the path of a file written by autoprune")
    with path.open("rb") as f:
        head = f.read(2)
    if not zipfile.is_zipfile(path) and head[:1] != b"\x80":  # neither torch's zip format nor a pickle
        raise ConfigError(f"cannot read checkpoint {path}: not a torch file; pass a model.pt written by "
                          f"autoprune or torch.save")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "unsafe content"
        raise ConfigError(f"refusing to load {path}: it holds objects other than weights ({first[:120]})") from exc
    except Exception as exc:
        raise ConfigError(f"cannot read checkpoint {path}: {type(exc).__name__}; is it a torch file?") from exc
    if isinstance(payload, dict) and payload.get("format") == FORMAT:
        if payload.get("format_version", 0) > FORMAT_VERSION:
            raise ConfigError(f"{path} was written by a newer autoprune (format "
                              f"{payload['format_version']}); upgrade autoprune to read it")
        _check_header(payload, path)
        return payload
    if isinstance(payload, dict) and all(isinstance(v, torch.Tensor) for v in payload.values()):
        return {"format": FORMAT, "model": None, "state_dict": payload, "meta": {}}
    raise ConfigError(f"{path} is not an autoprune checkpoint or a state dict")


def _check_header(payload: dict[str, Any], path: Path) -> None:
    """Header fields are checked before any model is built from them (type, sign, bounds, agreement)."""
    def count(key: str, most: int) -> None:
        value = payload.get(key, 1)
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= most:
            raise ConfigError(f"checkpoint {path}: {key} {value!r} must be an integer in [1, {most}]; "
                              f"the file is damaged or not from autoprune")

    count("in_channels", MAX_IN_CHANNELS)
    count("num_classes", MAX_CLASSES)
    if not isinstance(payload.get("model", ""), (str, type(None))) or not isinstance(payload.get("model_args", {}), dict):
        raise ConfigError(f"checkpoint {path}: 'model' must be a name and 'model_args' a mapping")
    for key in ("meta", "pruning"):
        if payload.get(key) is not None and not isinstance(payload[key], dict):
            raise ConfigError(f"checkpoint {path}: '{key}' must be a mapping, found a {type(payload[key]).__name__}; "
                              f"the file is damaged or not from autoprune")
    if not isinstance(payload.get("state_dict"), dict) or not all(
            isinstance(v, torch.Tensor) for v in payload["state_dict"].values()):
        raise ConfigError(f"checkpoint {path}: state_dict must map names to tensors")
    shape = payload.get("input_shape")
    if isinstance(shape, dict):
        InputSpec.from_json(shape, f"checkpoint {path}")
    elif shape is not None:
        ok = isinstance(shape, list) and 1 <= len(shape) <= 4 and all(
            isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in shape)
        if not ok or math.prod(shape) > MAX_INPUT_ELEMENTS:
            raise ConfigError(f"checkpoint {path}: input_shape {shape!r} must be 1-4 positive integers, at most "
                              f"{MAX_INPUT_ELEMENTS} elements")
        if is_builtin(str(payload.get("model") or "")) and payload.get("model") and shape[0] != payload.get("in_channels", shape[0]):
            raise ConfigError(f"checkpoint {path}: input_shape {shape!r} must start with in_channels")


def load_state_into(model: nn.Module, state_dict: dict[str, torch.Tensor], source: str) -> nn.Module:
    """Load ``state_dict`` into ``model`` with a one-line error when shapes or keys disagree."""
    try:
        model.load_state_dict(state_dict)
    except RuntimeError as exc:
        detail = str(exc).splitlines()[0] if str(exc) else "mismatch"
        raise ConfigError(f"weights in {source} do not fit the model ({detail[:160]}); "
                          f"pass the model they were trained for") from exc
    return model


def load_model(path: str | Path, model_name: str | None = None, model_args: dict[str, Any] | None = None,
               in_channels: int = 1, num_classes: int | None = None) -> tuple[nn.Module, CheckpointInfo]:
    """Rebuild a model (dense or pruned) from a checkpoint; returns the model and what the file says of it.

    A bare state dict needs ``model_name`` (and, for a built-in, ``in_channels``/``num_classes``
    when they differ from the defaults: the file does not say); the payload then records them.
    """
    payload = read_checkpoint(path)
    name = model_name or payload.get("model")
    if not name:
        raise ConfigError(f"{path} is a bare state dict; also pass --model NAME or --model file.py:factory")
    if payload.get("model") and model_name and canonical(model_name) != canonical(payload["model"]):
        raise ConfigError(f"{path} holds a {payload['model']!r} model, not {model_name!r}; "
                          f"pass --model {payload['model']} or other weights")
    with consent(model_name):  # a caller naming the model consents to its factory
        require_consent(payload.get("model"), f"checkpoint {path}")
    if is_builtin(name) and name not in MODELS.names():
        source = f"checkpoint {path} names" if name == payload.get("model") else "--model is"
        raise ConfigError(f"{source} model {name!r}, which this autoprune does not have (built-ins: "
                          f"{', '.join(MODELS.names())}); pass --model NAME or --model file.py:factory")
    if payload.get("model") is None:  # a plain state dict: what the caller says is all there is
        payload.update(model=name, in_channels=in_channels, **({"num_classes": num_classes} if num_classes else {}))
        if model_args:
            payload["model_args"] = dict(model_args)
    args = payload.get("model_args") or model_args
    model = create_model(name, payload.get("in_channels", 1), payload.get("num_classes"), args)
    if payload.get("pruning") is not None:
        model = _pruned_skeleton(model, payload, str(path))
    load_state_into(model, payload["state_dict"], str(path))
    model.eval()
    shape = payload.get("input_shape")
    return model, CheckpointInfo(
        model=name, in_channels=payload.get("in_channels", 1), num_classes=payload.get("num_classes"),
        input_shape=signature_from_json(shape, f"checkpoint {path}"), model_args=dict(payload.get("model_args") or {}),
        meta=dict(payload.get("meta") or {}), pruning=pruning_record(payload, str(path)))


def pruning_record(payload: dict[str, Any], source: str = "checkpoint") -> PruningRecord | None:
    """The validated pruning record of a checkpoint payload, or None for a dense model."""
    data = payload.get("pruning")
    return None if data is None else PruningRecord.from_dict(data, source)


def input_shape_of(payload: dict[str, Any], given: Signature | None = None,
                   source: str = "the checkpoint") -> Signature:
    """One input's shape: ``given`` (``--input-shape``), else as recorded in the checkpoint.

    Raises:
        ConfigError: neither says (a plain state dict, or a checkpoint from before shapes were kept).
    """
    if isinstance(given, InputSpec):
        return given
    shape = list(given) if given else payload.get("input_shape")
    if isinstance(shape, dict):
        return InputSpec.from_json(shape, source)
    if shape is None:
        raise ConfigError(f"{source} does not record the input shape; pass --input-shape C,H,W "
                          f"(or the shape of one input)")
    if not isinstance(shape, list) or not all(isinstance(s, int) and s > 0 for s in shape):
        raise ConfigError(f"checkpoint input_shape {shape!r} must be a list of positive integers")
    return tuple(shape)


def _pruned_skeleton(dense: nn.Module, payload: dict[str, Any], source: str) -> nn.Module:
    """The dense model with the recorded channels removed (weights loaded afterwards)."""
    record = pruning_record(payload, source)
    analysis = analyse_model(dense, example_input(dense, input_shape_of(payload, source=source)), exclude=record.exclude)
    return rebuild_pruned(analysis, record, source)
