"""YAML read with no aliases and a size bound, and written without them: a settings file of a few
hundred bytes can otherwise expand to millions of nodes (an anchor bomb) before anything checks it."""

from __future__ import annotations

from typing import Any

import yaml

from autoprune.errors import ConfigError

MAX_YAML_BYTES = 1 << 20  # settings, presets and parameters are far smaller


class _NoAliasLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses an alias (``*name``) as soon as it meets one."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            raise _AliasFound(self.peek_event().anchor)
        return super().compose_node(parent, index)


class _AliasFound(Exception):
    pass


class _NoAliasDumper(yaml.SafeDumper):
    """``yaml.SafeDumper`` writing repeated values out in full (files it writes read back here)."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def load_yaml(text: str, source: str) -> Any:
    """``text`` parsed as YAML (safe types only); aliases and oversized text refused in one line.

    Raises:
        ConfigError: naming ``source``; ``yaml.YAMLError`` for text that is not YAML (callers word it).
    """
    if len(text) > MAX_YAML_BYTES:
        raise ConfigError(f"{source} is {len(text):,} characters, over the {MAX_YAML_BYTES:,} autoprune reads; "
                          f"is it the right file?")
    try:
        return yaml.load(text, Loader=_NoAliasLoader)  # noqa: S506 - a SafeLoader subclass
    except _AliasFound as found:
        raise ConfigError(f"{source} uses a YAML alias (*{found}); autoprune reads no aliases: write the "
                          f"values out in full") from None
    except RecursionError:
        raise ConfigError(f"{source} is nested too deeply to be settings") from None


def dump_yaml(data: Any) -> str:
    """``data`` as YAML without anchors or aliases, keys in their order."""
    return yaml.dump(data, Dumper=_NoAliasDumper, sort_keys=False)


def plain(value: Any) -> Any:
    """``value`` as YAML-safe plain data (tuples as lists, anything else exotic as its text)."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value if isinstance(value, (str, int, float, bool, type(None))) else str(value)
