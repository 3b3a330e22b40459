"""Hyper-parameter presets as data (rl-baselines3-zoo style): ``presets/<agent>.yml``, one key per preset."""

from __future__ import annotations

from pathlib import Path

import yaml

from autoprune.errors import ConfigError
from autoprune.yaml_io import load_yaml

PRESET_DIR = Path(__file__).parent / "presets"


ParamValue = bool | int | float | str | list | dict | None  # a YAML value: scalar, list or mapping
AgentParams = dict[str, ParamValue]  # hyper-parameters of an agent, by name (SB3 keyword arguments)


def load_preset(agent: str, preset: str = "default", overrides: AgentParams | None = None,
                path: str | Path | None = None) -> AgentParams:
    """Hyper-parameters of ``agent``'s ``preset`` (from ``path`` or the built-in file) with overrides."""
    file = Path(path) if path else PRESET_DIR / f"{agent}.yml"
    if not file.is_file():
        if path:
            raise ConfigError(f"preset file {file} does not exist")
        return dict(overrides or {})
    try:
        presets = load_yaml(file.read_text(), f"preset file {file}") or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"preset file {file} is not valid YAML ({str(exc).splitlines()[0]})") from exc
    if not isinstance(presets, dict) or preset not in presets or not isinstance(presets[preset], dict):
        known = ", ".join(presets) if isinstance(presets, dict) else "none"
        raise ConfigError(f"no preset {preset!r} in {file.name}; known: {known}")
    params = dict(presets[preset])
    params.update(overrides or {})
    check_params(params)
    return params


# Known hyper-parameters: (type, least, most); bounds inclusive. Others are left to SB3 to refuse.
RULES: dict[str, tuple[type, float, float]] = {
    "warmup_episodes": (int, 0, 1e6), "noise_sigma": (float, 0, 2), "noise_decay": (float, 0, 1),
    "noise_min_sigma": (float, 0, 2), "learning_rate": (float, 1e-12, 1), "critic_learning_rate": (float, 1e-12, 1),
    "tau": (float, 0, 1), "batch_size": (int, 1, 1 << 16), "gamma": (float, 0, 1), "buffer_size": (int, 1, 1e7),
    "baseline_decay": (float, 0, 1), "policy_delay": (int, 1, 1000), "target_policy_noise": (float, 0, 2),
    "target_noise_clip": (float, 0, 2), "n_episodes_per_update": (int, 1, 1e5), "n_epochs": (int, 1, 1e4),
    "gae_lambda": (float, 0, 1), "broadcast_reward": (bool, 0, 1), "reward_baseline": (bool, 0, 1),
    "reward_scale": (bool, 0, 1), "intensify": (int, 0, 1e6), "top": (int, 1, 1e6), "intensify_after": (int, 2, 1e6),
}
MAX_LAYERS, MAX_UNITS = 8, 4096  # net_arch: a policy network far larger than a pruning MDP needs is refused


def check_params(params: AgentParams) -> None:
    """One-line errors for a known hyper-parameter of the wrong type or out of range."""
    for key, value in params.items():
        if not isinstance(key, str) or not key.isidentifier() or key.startswith("_"):
            raise ConfigError(f"agent parameter {key!r} is not a hyper-parameter name (private and non-identifier "
                              f"names are refused); see the agent's preset file for the names")
        if key == "net_arch":
            ok = isinstance(value, list) and 0 < len(value) <= MAX_LAYERS and all(
                isinstance(u, int) and not isinstance(u, bool) and 1 <= u <= MAX_UNITS for u in value)
            if not ok:
                raise ConfigError(f"agent parameter net_arch={value!r} must be a list of 1-{MAX_LAYERS} layer "
                                  f"widths, each 1-{MAX_UNITS}, e.g. [300, 300]")
            continue
        if key == "ent_coef" and isinstance(value, str) and value.startswith("auto"):
            continue
        if key not in RULES:
            continue
        kind, lo, hi = RULES[key]
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        ok = isinstance(value, bool) if kind is bool else (
            number and (kind is float or isinstance(value, int)) and lo <= value <= hi)  # NaN fails both
        if not ok:
            what = "true or false" if kind is bool else f"{'an integer' if kind is int else 'a number'} in [{lo:g}, {hi:g}]"
            raise ConfigError(f"agent parameter {key}={value!r} must be {what}")


def parse_overrides(items: list[str]) -> AgentParams:
    """``["tau=0.005", "net_arch=[64, 64]"]`` -> dict, values parsed as YAML scalars/lists."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"agent parameter {item!r} must look like key=value")
        try:
            out[key.strip()] = load_yaml(value, f"agent parameter {key.strip()}")
        except yaml.YAMLError:
            raise ConfigError(f"cannot parse the value of agent parameter {item!r}") from None
    return out
