"""What an SB3 agent's exact resume needs beyond its networks: step and update counters, AMC's
reward baseline, the exploration noise and every random stream, as JSON; the replay buffer's arrays."""

from __future__ import annotations

import random
from typing import Any, TypedDict

import numpy as np
import torch
from stable_baselines3.common.base_class import BaseAlgorithm

from autoprune.agents.noise import DecayingTruncatedNormalNoise


class AgentCounters(TypedDict, total=False):
    """``agent.json``: the training progress that is not in the networks (JSON)."""

    num_timesteps: int
    n_updates: int
    episode_num: int
    baseline: float | None  # AMC's moving reward baseline
    spread: float | None  # the rewards' moving spread (``reward_scale``)
    noise_episodes: int | None
    noise_rng: Any
    log_ent_coef: float | None  # SAC's entropy coefficient
    rng: Any  # torch, numpy, Python and action-space random states
    episodes: int
    algo: str
    state: str

BUFFER_ARRAYS = ("observations", "next_observations", "actions", "rewards", "dones", "timeouts")


def counters(model: BaseAlgorithm) -> AgentCounters:
    """Training progress that is not in the networks: steps, updates, AMC baseline, noise state."""
    noise = getattr(model, "action_noise", None)
    log_ent = getattr(model, "log_ent_coef", None)
    return {"num_timesteps": int(model.num_timesteps), "n_updates": int(getattr(model, "_n_updates", 0)),
            "episode_num": int(getattr(model, "_episode_num", 0)), "baseline": getattr(model, "baseline", None),
            "spread": getattr(model, "spread", None),
            "noise_episodes": getattr(noise, "episodes", None),
            "noise_rng": noise.rng.bit_generator.state if isinstance(noise, DecayingTruncatedNormalNoise) else None,
            "log_ent_coef": None if log_ent is None else float(log_ent.detach().reshape(-1)[0]),
            "rng": _rng_states(model)}


def _rng_states(model: BaseAlgorithm) -> dict[str, Any]:
    """Every random stream an agent draws from (torch: policy sampling and exploration; numpy and
    Python: SB3's helpers; the action space: warm-up actions), as JSON."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    space = getattr(model.action_space, "np_random", None)
    return {"torch": torch.get_rng_state().tolist(), "numpy": [kind, keys.tolist(), pos, has_gauss, cached],
            "python": [random.getstate()[0], list(random.getstate()[1]), random.getstate()[2]],
            "action_space": None if space is None else space.bit_generator.state}


def _set_rng_states(model: BaseAlgorithm, rng: dict[str, Any]) -> None:
    torch.set_rng_state(torch.tensor(rng["torch"], dtype=torch.uint8))
    kind, keys, pos, has_gauss, cached = rng["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
    version, state, gauss = rng["python"]
    random.setstate((version, tuple(state), gauss))
    if rng.get("action_space") is not None:
        model.action_space.np_random.bit_generator.state = rng["action_space"]


def set_counters(model: BaseAlgorithm, c: AgentCounters) -> None:
    model.num_timesteps = int(c["num_timesteps"])
    model._n_updates, model._episode_num = int(c.get("n_updates", 0)), int(c.get("episode_num", 0))
    if hasattr(model, "baseline"):
        model.baseline, model.spread = c.get("baseline"), c.get("spread")
    set_noise(model, c)
    model._autoprune_counters = c  # the noise is set again once learn() has reset it (see run)
    if c.get("log_ent_coef") is not None and getattr(model, "log_ent_coef", None) is not None:
        with torch.no_grad():
            model.log_ent_coef.fill_(float(c["log_ent_coef"]))
    if c.get("rng"):
        _set_rng_states(model, c["rng"])


def set_noise(model: BaseAlgorithm, c: AgentCounters) -> None:
    noise = getattr(model, "action_noise", None)
    if isinstance(noise, DecayingTruncatedNormalNoise) and c.get("noise_episodes") is not None:
        noise.episodes = int(c["noise_episodes"])
        if c.get("noise_rng"):
            noise.rng.bit_generator.state = c["noise_rng"]


def fill_buffer(buffer, saved) -> None:
    for key in BUFFER_ARRAYS:
        if key in saved.files and getattr(buffer, key, None) is not None:
            target = getattr(buffer, key)
            if target.shape != saved[key].shape:
                raise ValueError(f"replay buffer {key} has shape {saved[key].shape}, expected {target.shape}")
            target[...] = saved[key]
    buffer.pos, buffer.full = int(saved["pos"]), bool(saved["full"])
