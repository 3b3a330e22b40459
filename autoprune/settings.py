"""Settings defined once: dataclass fields carry their help, and command-line options are made from them.

A field declared with :func:`setting` becomes ``--field-name`` with the field's type (``int``,
``float``, ``str``, ``X | None``, ``list[str]``), default and help; ``settings_from_args`` reads
the parsed values back into the dataclass's keyword arguments. The dataclass stays the one home of
each setting's name, type, default and meaning.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from collections.abc import Callable, Iterable
from typing import Any


def setting(default: Any = dataclasses.MISSING, help: str = "", *,  # noqa: A002 - argparse's own word
            factory: Callable[[], Any] | None = None, metavar: str | None = None,
            choices: Iterable[str] | None = None, cli: bool = True, option: str | None = None) -> Any:
    """A dataclass field with its command-line help (``cli=False``: not an option of its own;
    ``option``: a flag other than the field's name, e.g. ``--ft-seed`` beside a search's ``--seed``)."""
    meta = {"help": help, "metavar": metavar, "choices": list(choices) if choices else None, "cli": cli,
            "option": option}
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


def _base_type(hint: Any) -> type:
    """``int | None`` -> ``int``; ``list[str]`` -> ``list``; ``str`` -> ``str``."""
    options = [o for o in typing.get_args(hint) if o is not type(None)] if isinstance(hint, types.UnionType) else [hint]
    base = options[0]
    return typing.get_origin(base) or base
