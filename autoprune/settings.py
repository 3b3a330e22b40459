"""Settings defined once: dataclass fields carry their help, and command-line options are made from them.

A field declared with :func:`setting` becomes ``--field-name`` with the field's type (``int``,
``float``, ``str``, ``X | None``, ``list[str]``), default and help; ``settings_from_args`` reads
the parsed values back into the dataclass's keyword arguments; :func:`check_settings` enforces the
types, choices and bounds declared on the fields. The dataclass stays the one home of each
setting's name, type, default, range and meaning.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from autoprune.errors import ConfigError


def setting(default: Any = dataclasses.MISSING, help: str = "", *,  # noqa: A002 - argparse's own word
            factory: Callable[[], Any] | None = None, metavar: str | None = None,
            choices: Iterable[str] | None = None, cli: bool = True, option: str | None = None,
            at_least: float | None = None, above: float | None = None, at_most: float | None = None,
            below: float | None = None) -> Any:
    """A dataclass field with its command-line help (``cli=False``: not an option of its own;
    ``option``: a flag other than the field's name, e.g. ``--ft-seed`` beside a search's ``--seed``).

    ``choices`` and the bounds ``at_least``, ``above``, ``at_most``, ``below`` (``above`` and
    ``below`` exclusive) are the values it accepts, enforced by :func:`check_settings` (None
    passes: "not given")."""
    meta = {"help": help, "metavar": metavar, "choices": list(choices) if choices else None, "cli": cli,
            "option": option, "at_least": at_least, "above": above, "at_most": at_most, "below": below}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def option_name(name: str) -> str:
    """``rerank_top`` -> ``--rerank-top``."""
    return "--" + name.replace("_", "-")


def cli_fields(cls: type, skip: Iterable[str] = (), only: Iterable[str] | None = None) -> list[dataclasses.Field]:
    """The fields of ``cls`` that are command-line options (``only`` those named), in declaration order."""
    skipped, chosen = set(skip), None if only is None else set(only)
    return [f for f in dataclasses.fields(cls) if f.metadata.get("cli") and f.name not in skipped
            and (chosen is None or f.name in chosen)]


def flag(f: dataclasses.Field) -> str:
    """The command-line flag of a setting."""
    return f.metadata.get("option") or option_name(f.name)


def dest(f: dataclasses.Field) -> str:
    """Where argparse keeps a setting's value: the flag's name (``--ft-seed`` -> ``ft_seed``)."""
    return flag(f)[2:].replace("-", "_")


def add_settings(parser: argparse.ArgumentParser | argparse._ArgumentGroup, cls: type, skip: Iterable[str] = (),
                 only: Iterable[str] | None = None) -> None:
    """One option per setting of ``cls`` (except ``skip``; ``only`` those named), typed, with default and help."""
    hints = typing.get_type_hints(cls)
    defaults = cls()
    for f in cli_fields(cls, skip, only):
        kind = _base_type(hints[f.name])
        kwargs: dict[str, Any] = {"default": getattr(defaults, f.name), "help": f.metadata["help"],
                                  "dest": dest(f)}
        if f.metadata.get("metavar"):
            kwargs["metavar"] = f.metadata["metavar"]
        if f.metadata.get("choices"):
            kwargs["choices"] = f.metadata["choices"]
        if kind is bool:
            kwargs["action"] = "store_true"
        elif kind is list:
            kwargs["nargs"] = "*"
        elif kind in (int, float):
            kwargs["type"] = kind
        parser.add_argument(flag(f), **kwargs)


def settings_from_args(cls: type, args: argparse.Namespace, skip: Iterable[str] = (),
                       only: Iterable[str] | None = None) -> dict[str, Any]:
    """The values of ``cls``'s options in ``args`` (lists copied), as keyword arguments."""
    out = {}
    for f in cli_fields(cls, skip, only):
        value = getattr(args, dest(f))
        out[f.name] = list(value) if isinstance(value, (list, tuple)) else value
    return out


@functools.cache
def field_types(cls: type) -> dict[str, tuple[type, ...]]:
    """The types each field of ``cls`` accepts, read from its annotations once per class: ``str |
    None`` -> ``(str, NoneType)``, ``list[str]`` -> ``(list,)``; a float also takes an int."""
    out = {}
    for name, hint in typing.get_type_hints(cls).items():
        options = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
        accepted = tuple(typing.get_origin(o) or o for o in options)
        out[name] = accepted + ((int,) if float in accepted else ())
    return out


def check_settings(obj: Any) -> None:
    """One-line errors for fields of the dataclass ``obj`` whose value has the wrong type or lies
    outside the choices and bounds its :func:`setting` declares (ints given for floats become floats)."""
    types_of = field_types(type(obj))
    for f in dataclasses.fields(obj):
        value, accepted = getattr(obj, f.name), types_of[f.name]
        if isinstance(value, bool) and bool not in accepted or not isinstance(value, accepted):
            raise ConfigError(f"setting {f.name!r} must be {' or '.join(t.__name__ for t in accepted)}, "
                              f"got {type(value).__name__}")
        if float in accepted and isinstance(value, int) and not isinstance(value, bool):
            setattr(obj, f.name, value := float(value))
        if value is None or isinstance(value, bool):
            continue
        choices = f.metadata.get("choices")
        if choices and value not in choices:
            raise ConfigError(f"{flag(f)} must be one of {', '.join(map(str, choices))}, got {value!r}")
        rule = _range_rule(f.metadata)
        if rule and isinstance(value, (int, float)) and not _in_range(value, f.metadata):
            raise ConfigError(f"{flag(f)} must be {rule}, got {value}")


_BOUNDS = {"at_least": (">=", float.__ge__), "above": (">", float.__gt__), "at_most": ("<=", float.__le__),
           "below": ("<", float.__lt__)}


def _in_range(value: float, meta: Mapping[str, Any]) -> bool:
    return all(meta.get(k) is None or test(float(value), float(meta[k])) for k, (_, test) in _BOUNDS.items())


def _range_rule(meta: Mapping[str, Any]) -> str:
    """``between 1 and 64``, ``>= 0``, ``> 0 and <= 1024``: a declared range as an error message says it."""
    low, high = meta.get("at_least"), meta.get("at_most")
    if low is not None and high is not None and all(meta.get(k) is None for k in ("above", "below")):
        return f"between {low:,} and {high:,}"
    return " and ".join(f"{sign} {meta[k]:g}" for k, (sign, _) in _BOUNDS.items() if meta.get(k) is not None)


def _base_type(hint: Any) -> type:
    """``int | None`` -> ``int``; ``list[str]`` -> ``list``; ``str`` -> ``str``."""
    options = [o for o in typing.get_args(hint) if o is not type(None)] if isinstance(hint, types.UnionType) else [hint]
    base = options[0]
    return typing.get_origin(base) or base
