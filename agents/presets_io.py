"""Hyper-parameter presets as data (rl-baselines3-zoo style): ``presets/<agent>.yml``, one key per preset."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from autoprune.errors import ConfigError

PRESET_DIR = Path(__file__).parent / "presets"


def load_preset(agent: str, preset: str = "default", overrides: dict[str, Any] | None = None,
                path: str | Path | None = None) -> dict[str, Any]:
    """Hyper-parameters of ``agent``'s ``preset`` (from ``path`` or the built-in file) with overrides."""
    file = Path(path) if path else PRESET_DIR / f"{agent}.yml"
    if not file.is_file():
        if path:
            raise ConfigError(f"preset file {file} does not exist")
        return dict(overrides or {})
    try:
        presets = yaml.safe_load(file.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"preset file {file} is not valid YAML ({str(exc).splitlines()[0]})") from exc
    if not isinstance(presets, dict) or preset not in presets or not isinstance(presets[preset], dict):
        known = ", ".join(presets) if isinstance(presets, dict) else "none"
        raise ConfigError(f"no preset {preset!r} in {file.name}; known: {known}")
    params = dict(presets[preset])
    params.update(overrides or {})
    return params


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``["tau=0.005", "net_arch=[64, 64]"]`` -> dict, values parsed as YAML scalars/lists."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"agent parameter {item!r} must look like key=value")
        try:
            out[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError:
            raise ConfigError(f"cannot parse the value of agent parameter {item!r}") from None
    return out
