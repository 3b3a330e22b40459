"""``PruningPolicy``: group -> ratio plus what it was found for; a versioned JSON file.

Schema (version 1), every key but ``ratios`` and ``schema_version`` optional::

    {"format": "autoprune-policy", "schema_version": 1,
     "model": "resnet20", "fingerprint": "sha256:…",      # structural, see analysis.fingerprint
     "model_args": {}, "input_shape": [1, 28, 28],        # a factory reference's arguments; one input
     "ratios": {"conv1": 0.25, "layer1.0.conv1": 0.5, …},  # every prunable group, in [0, 1)
     "channels": {"conv1": 12, …},                         # channels kept (derived, for reading)
     "round_to": 1, "importance": "l1", "exclude": [],     # modules kept dense at analysis
     "widths": {"conv1": [4, 8, 12, 16], …},               # optional: the widths the search allowed
     "budget": {"metric": "latency_ms", "value": 0.15, "fraction": 0.5},
     "cost_model": "ort-lut", "predicted_cost": {"latency_ms": 0.149, "flops": …, "params": …},
     "score": {"val": 0.91}, "created": "…", "tool_version": "0.1.0", "torch_version": "…"}

Files written before ``score`` had its name hold the same object as ``accuracy``; both are read.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from autoprune import __version__
from autoprune.analysis.fingerprint import model_fingerprint
from autoprune.analysis.groups import ModelAnalysis
from autoprune.atomic import write_json_atomic
from autoprune.errors import ConfigError, PolicyError
from autoprune.inputs import InputSpec, Signature, signature_from_json, signature_json
from autoprune.limits import MAX_INPUT_ELEMENTS, MAX_MODEL_ARGS_BYTES, checked_file
from autoprune.pruning.ratios import architecture_for

FORMAT = "autoprune-policy"
SCHEMA_VERSION = 1
MAX_BYTES = 10 * 1024 * 1024


@dataclass(frozen=True)
class SearchScore:
    """What the search measured of a policy's candidate (the policy file's ``score`` object).

    ``val``: its first-stage score on ``val_images`` validation images after BN recalibration on
    ``bn_batches`` training batches; ``val_finetuned``: the re-ranking score after
    ``finetune_steps`` SGD steps (when re-ranked); ``episode``: where it came from.
    """

    val: float | None = None
    val_images: int | None = None
    episode: int | None = None
    bn_batches: int | None = None
    val_finetuned: float | None = None
    finetune_steps: int | None = None

    @classmethod
    def from_dict(cls, data: dict[str, float] | None, source: str = "policy") -> SearchScore | None:
        if data is None:
            return None
        unknown = sorted(set(data) - {f.name for f in fields(cls)})
        if unknown:
            raise PolicyError(f"{source}: 'score' has an unknown field {unknown[0]!r}")
        for key, value in data.items():
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                      or not math.isfinite(value)):
                raise PolicyError(f"{source}: score field {key!r} must be a finite number, got {value!r}")
        ints = {"val_images", "episode", "bn_batches", "finetune_steps"}
        return cls(**{k: (int(v) if k in ints and v is not None else v) for k, v in data.items()})

    def to_dict(self) -> dict[str, float]:
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass
class PruningPolicy:
    """Per-group pruning ratios and their provenance."""

    ratios: dict[str, float]
    model: str | None = None  # built-in name or factory reference (path/to/file.py:factory)
    fingerprint: str | None = None
    model_args: dict[str, Any] = field(default_factory=dict)
    input_shape: list[int] | dict[str, Any] | None = None  # one input's shape, or several inputs' spec
    round_to: int = 1
    importance: str = "l1"
    exclude: list[str] = field(default_factory=list)
    budget: dict[str, Any] | None = None
    cost_model: str | None = None
    predicted_cost: dict[str, float] | None = None
    score: SearchScore | None = None
    channels: dict[str, int] = field(default_factory=dict)
    widths: dict[str, list[int]] | None = None  # channels each group could keep (a listed search space)
    created: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    tool_version: str = __version__
    torch_version: str = str(torch.__version__)  # a plain str: the policy may travel inside a checkpoint
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        if isinstance(self.score, dict):  # the JSON form, as older code and the Python API pass it
            self.score = SearchScore.from_dict(self.score)

    @property
    def signature(self) -> Signature | None:
        """What the model takes (one input's shape, or several inputs' spec), when recorded."""
        return signature_from_json(self.input_shape, "the policy")

    @classmethod
    def for_model(cls, analysis: ModelAnalysis, ratios: dict[str, float], model_name: str | None = None,
                  round_to: int = 1, **provenance: Any) -> PruningPolicy:
        """A policy for ``analysis``'s model, with fingerprint and channels filled in."""
        full = {g.name: float(ratios.get(g.name, 0.0)) for g in analysis.groups}
        provenance.setdefault("input_shape", signature_json(analysis.signature))
        policy = cls(full, model=model_name, fingerprint=model_fingerprint(analysis.model),
                     round_to=round_to, **provenance)
        policy.channels = architecture_for(analysis.groups, full, round_to)
        policy.validate_for(analysis)
        return policy

    def architecture(self, analysis: ModelAnalysis) -> dict[str, int]:
        """Channels kept per group of ``analysis``'s model."""
        return architecture_for(analysis.groups, self.ratios, self.round_to)

    def validate_for(self, analysis: ModelAnalysis, source: str = "policy") -> None:
        """Raise :class:`PolicyError` unless this policy fits ``analysis``'s model exactly."""
        fp = model_fingerprint(analysis.model)
        if self.fingerprint and self.fingerprint != fp:
            raise PolicyError(f"{source} was made for another model (fingerprint {self.fingerprint}, "
                              f"model {self.model or '?'}), this one is {fp}; apply it to the model it "
                              f"was found for")
        names = set(analysis.group_names)
        unknown = sorted(set(self.ratios) - names)
        if unknown:
            raise PolicyError(f"{source} names group {unknown[0]!r} that this model does not have; "
                              f"its groups are {', '.join(analysis.group_names[:4])}, …")
        missing = [n for n in analysis.group_names if n not in self.ratios]
        if missing:
            raise PolicyError(f"{source} gives no ratio for group {missing[0]!r} "
                              f"({len(missing)} missing); add it (0.0 keeps every channel)")

    def to_dict(self) -> dict[str, Any]:
        """The JSON document (``format`` first)."""
        data = asdict(self)
        data["score"] = None if self.score is None else self.score.to_dict()
        return {"format": FORMAT, **data}

    def save(self, path: str | Path) -> Path:
        """Write the policy atomically (tmp file + rename)."""
        return write_json_atomic(path, self.to_dict())

    @classmethod
    def from_dict(cls, data: Any, source: str = "policy") -> PruningPolicy:
        """Validate a parsed JSON document and build the policy."""
        if not isinstance(data, dict):
            raise PolicyError(f"{source} must hold a JSON object, found {type(data).__name__}")
        version = data.get("schema_version")
        if not isinstance(version, int) or isinstance(version, bool):
            raise PolicyError(f"{source} has no integer 'schema_version'; is it an autoprune policy file?")
        if version > SCHEMA_VERSION:
            raise PolicyError(f"{source} has schema version {version}, newer than this autoprune "
                              f"reads ({SCHEMA_VERSION}); upgrade autoprune")
        ratios = data.get("ratios")
        if not isinstance(ratios, dict) or not ratios:
            raise PolicyError(f"{source} needs a non-empty 'ratios' object of group name -> ratio")
        for name, r in ratios.items():
            if isinstance(r, bool) or not isinstance(r, (int, float)) or not math.isfinite(r):
                raise PolicyError(f"{source}: ratio of group {name!r} must be a number, got {r!r}")
            if not 0.0 <= r < 1.0:
                raise PolicyError(f"{source}: ratio of group {name!r} is {r}, outside [0, 1); "
                                  f"1.0 would remove every channel")
        kwargs = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        if "score" not in data and "accuracy" in data:  # the name older files give it
            kwargs["score"] = data["accuracy"]
        kwargs["ratios"] = {str(k): float(v) for k, v in ratios.items()}
        _check_types(kwargs, source)
        kwargs["score"] = SearchScore.from_dict(kwargs.get("score"), source)
        return cls(**kwargs)

    @classmethod
    def load(cls, path: str | Path, analysis: ModelAnalysis | None = None) -> PruningPolicy:
        """Read, validate and (given ``analysis``) check the policy against a model."""
        path = checked_file(path, "policy file", MAX_BYTES, "", PolicyError)
        try:
            data = json.loads(path.read_text(encoding="utf-8"), parse_constant=_reject_constant)
        except json.JSONDecodeError as exc:
            raise PolicyError(f"policy file {path} is not valid JSON (line {exc.lineno}, column "
                              f"{exc.colno}: {exc.msg})") from exc
        except (UnicodeDecodeError, ValueError) as exc:
            raise PolicyError(f"policy file {path} cannot be read: {exc}") from exc
        except RecursionError:
            raise PolicyError(f"policy file {path} is nested too deeply to be a policy; is it the right "
                              f"file?") from None
        policy = cls.from_dict(data, source=f"policy {path}")
        if analysis is not None:
            policy.validate_for(analysis, source=f"policy {path}")
        return policy


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not allowed (ratios and costs must be finite numbers)")


MAX_ROUND_TO = 1 << 16  # wider than any layer: a larger multiple would keep every channel

_TYPES = {"model": (str, type(None)), "fingerprint": (str, type(None)), "round_to": int,
          "model_args": dict, "input_shape": (list, dict, type(None)),
          "importance": str, "exclude": list, "budget": (dict, type(None)), "cost_model": (str, type(None)),
          "predicted_cost": (dict, type(None)), "score": (dict, type(None)), "channels": dict,
          "widths": (dict, type(None)),
          "created": str, "tool_version": str, "torch_version": str}


def _check_types(kwargs: dict[str, Any], source: str) -> None:
    for key, types in _TYPES.items():
        if key in kwargs and not isinstance(kwargs[key], types):
            raise PolicyError(f"{source}: field {key!r} has the wrong type ({type(kwargs[key]).__name__})")
    widths = kwargs.get("widths") or {}
    if not all(isinstance(v, list) and v and all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in v)
               for v in widths.values()):
        raise PolicyError(f"{source}: 'widths' must map group names to lists of positive channel counts")
    if not all(isinstance(e, str) for e in kwargs.get("exclude", [])):
        raise PolicyError(f"{source}: 'exclude' must be a list of module names")
    if isinstance(kwargs.get("round_to"), bool) or not 1 <= kwargs.get("round_to", 1) <= MAX_ROUND_TO:
        raise PolicyError(f"{source}: 'round_to' must be a positive integer up to {MAX_ROUND_TO} (channels are "
                          f"kept in multiples of it); is it the right file?")
    shape = kwargs.get("input_shape")
    if isinstance(shape, dict):
        try:
            spec = InputSpec.from_json(shape, source)
        except ConfigError as exc:
            raise PolicyError(str(exc)) from None
        if any(math.prod(s) > MAX_INPUT_ELEMENTS for s in spec.shapes):
            raise PolicyError(f"{source}: an input of 'input_shape' is over the {MAX_INPUT_ELEMENTS:,} elements "
                              f"this tool handles; is it the right file?")
        shape = None
    if shape is not None and not (1 <= len(shape) <= 4 and all(
            isinstance(v, int) and not isinstance(v, bool) and 0 < v <= 1 << 16 for v in shape)):
        raise PolicyError(f"{source}: 'input_shape' must be 1-4 positive integers")
    if shape is not None and math.prod(shape) > MAX_INPUT_ELEMENTS:
        raise PolicyError(f"{source}: 'input_shape' {shape} is {math.prod(shape):,} elements per input, over the "
                          f"{MAX_INPUT_ELEMENTS:,} this tool handles; is it the right file?")
    if isinstance(kwargs.get("model_args"), dict) and len(json.dumps(kwargs["model_args"])) > MAX_MODEL_ARGS_BYTES:
        raise PolicyError(f"{source}: 'model_args' is over {MAX_MODEL_ARGS_BYTES // 1024} KiB; is it the right file?")
