"""stable-baselines3 agents behind the searcher interface (AMC-DDPG, TD3, SAC, PPO), resumable exactly.

The agent learns over the episodes of the environment (one step per group); its state (networks,
optimisers, replay buffer, counters and random streams) is saved at the start of every rollout
(see :mod:`autoprune.agents.sb3_state`), so a search killed at any point resumes as if never stopped.
"""

from __future__ import annotations

import importlib.util
import json
import pickle
import shutil
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3 import PPO
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import Logger, configure
from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm
from stable_baselines3.common.vec_env import VecEnv

from autoprune.agents.amc import AMCDDPG, AMCSAC, AMCTD3
from autoprune.agents.base import EpisodeHook, Searcher
from autoprune.agents.noise import DecayingTruncatedNormalNoise
from autoprune.agents.racing import RaceSettings, RacingEnv
from autoprune.agents.sb3_state import BUFFER_ARRAYS, counters, fill_buffer, set_counters, set_noise
from autoprune.agents.state import replay_log
from autoprune.atomic import write_json_atomic
from autoprune.envs.episode import EpisodeResult
from autoprune.envs.observation import OBS_NAMES
from autoprune.envs.pruning_env import PruningEnv
from autoprune.errors import ConfigError


class _EpisodeCallback(BaseCallback):
    """Reports finished episodes; saves the agent state at the start of every rollout.

    A rollout starts after the previous one's transitions are stored *and* trained on, so the
    saved state is exactly the state after ``count`` episodes: a resume from it (after a kill at
    any point, the later history rows replayed) continues as if never stopped. SB3 calls
    ``on_step`` before it stores the step's transition, so off-policy runs end on their exact step
    count instead of being stopped here; only on-policy runs, whose rollouts come in fixed blocks,
    are stopped by the callback.
    """

    def __init__(self, on_episode: EpisodeHook, target: int, done: int, save: Callable[[int], None] | None,
                 stop_at_target: bool, on_start: Callable[[], None] | None = None,
                 racing: RacingEnv | None = None) -> None:
        super().__init__()
        self.on_episode, self.target, self.count, self.save = on_episode, target, done, save
        self.stop_at_target, self.on_start, self.racing = stop_at_target, on_start, racing

    def _on_training_start(self) -> None:
        if self.on_start:  # after SB3's own set-up, which resets the action noise once more
            self.on_start()

    def _on_step(self) -> bool:
        for done, info in zip(self.locals["dones"], self.locals["infos"]):
            if not done:
                continue
            # with re-queries: every episode since the last report, in the order played
            for result in self.racing.take() if self.racing else [EpisodeResult.of(info)]:
                if self.count < self.target:
                    self.count += 1
                    self.on_episode(result)
        return not (self.stop_at_target and self.count >= self.target)

    def _on_rollout_start(self) -> None:
        if self.save:
            self.save(self.count)


RACE_LOG = "race.jsonl"  # every episode of an agent with re-queries, replayed on resume
ALGORITHMS: dict[str, type[BaseAlgorithm]] = {"amc-ddpg": AMCDDPG, "td3": AMCTD3, "sac": AMCSAC, "ppo": PPO}


class SB3Searcher(Searcher):
    """A stable-baselines3 agent; hyper-parameters come from a preset (see ``presets/*.yml``)."""

    def __init__(self, algo: str, seed: int = 0, **params: Any) -> None:
        super().__init__(seed, **params)
        if algo not in ALGORITHMS:
            raise ConfigError(f"unknown agent {algo!r}; known: {', '.join(ALGORITHMS)}")
        self.algo, self.name = algo, algo
        self.model: BaseAlgorithm | None = None

    def build(self, env: PruningEnv | VecEnv) -> BaseAlgorithm:
        """Create the SB3 model for ``env`` (one env, or a vector of them) from the preset parameters."""
        p = dict(self.params)
        RaceSettings.pop(p)  # the re-queries' settings are the searcher's, not SB3's
        steps = episode_length(env)
        net_arch = p.pop("net_arch", [64, 64])
        common = dict(policy="MlpPolicy", env=env, seed=self.seed, verbose=0, device="cpu",
                      policy_kwargs={"net_arch": net_arch})
        try:
            if self.algo == "ppo":
                n_steps = int(p.pop("n_episodes_per_update", 8)) * steps
                return PPO(n_steps=n_steps, batch_size=p.pop("batch_size", n_steps), **common, **p)
            warmup = int(p.pop("warmup_episodes", 100))
            sigma, decay = p.pop("noise_sigma", None), p.pop("noise_decay", 0.95)
            floor = p.pop("noise_min_sigma", 0.0)
            noise = None if sigma is None else DecayingTruncatedNormalNoise(sigma, decay, warmup, floor, seed=self.seed)
            # One update per finished episode; with parallel envs (lockstep, equal lengths) SB3 needs
            # the same cadence in steps: every ``steps`` vector steps = one episode in each env.
            train_freq = (1, "episode") if _num_envs(env) == 1 else (steps, "step")
            return ALGORITHMS[self.algo](learning_starts=warmup * steps, train_freq=train_freq,
                                         gradient_steps=-1, action_noise=noise, **common, **p)
        except TypeError as exc:
            raise ConfigError(f"bad hyper-parameter for {self.algo}: {exc}") from exc

    def check(self) -> None:
        """Build the agent once on a stand-in env of the same spaces: bad hyper-parameters fail here,
        in one line, before any model, data or latency table is loaded."""
        try:
            self._race_settings()
            self.build(_SpacesOnly())
        except ConfigError:
            raise
        except (TypeError, ValueError, RuntimeError, AssertionError) as exc:
            raise ConfigError(f"bad hyper-parameter for {self.algo}: {exc}") from None

    def run(self, env, episodes, on_episode, start_episode=0, state_dir=None) -> None:
        racing = self._racing(env, episodes, start_episode, state_dir)
        env = racing or env
        model = self._restore(env, state_dir, start_episode) or self.build(env)
        self.model = model
        # SB3's own log (losses, entropy, episode rewards) next to the agent state; without a run
        # folder none (SB3's default would make an empty SB3-<date> folder in the temp directory)
        model.set_logger(sb3_logger(state_dir.parent / "sb3_log") if state_dir else Logger(None, []))
        remaining = episodes - start_episode
        if remaining <= 0:
            return
        save = (lambda count: self._save(model, state_dir, count)) if state_dir else None
        saved = getattr(model, "_autoprune_counters", None)
        # stopped at the episode count: an on-policy run (fixed rollouts), or any run with re-queries
        # (their episodes take no steps); its last rollout start stays the state
        stopped = isinstance(model, OnPolicyAlgorithm) or racing is not None
        callback = _EpisodeCallback(on_episode, episodes, start_episode, save, stop_at_target=stopped,
                                    on_start=None if saved is None else lambda: set_noise(model, saved),
                                    racing=racing)
        model.learn(total_timesteps=remaining * episode_length(env), callback=callback,
                    reset_num_timesteps=start_episode == 0, progress_bar=False)
        if save and not stopped:
            save(callback.count)  # off-policy learn() ends after its last update: a complete state
        # (an on-policy run is stopped inside a rollout: its last rollout start stays the state, and a
        # longer resumed run replays the episodes since then)

    def _racing(self, env: PruningEnv | VecEnv, episodes: int, start: int, state_dir: Path | None) -> RacingEnv | None:
        """``env`` with the re-queries of the leaders played between the agent's episodes
        (:class:`~autoprune.agents.racing.RacingEnv`), or None when ``intensify`` is not set."""
        race = self._race_settings()
        if not race.intensify:
            return None
        if _num_envs(env) > 1:
            raise ConfigError("re-queries (intensify) need one environment; drop --n-envs or intensify")
        known = replay_log(state_dir, RACE_LOG, self.name, start)
        return RacingEnv(env, race, self.seed, known, start, episodes, (state_dir, RACE_LOG) if state_dir else None)

    def _race_settings(self) -> RaceSettings:
        """The re-queries' settings among the hyper-parameters (see :mod:`autoprune.agents.racing`)."""
        return RaceSettings.pop(dict(self.params))

    def resume_point(self, state_dir: Path | None, done: int) -> int:
        """Episodes the saved agent state covers (the history beyond it is replayed on resume)."""
        if not state_dir or done == 0:
            return done
        try:
            saved = int(json.loads((state_dir / "agent.json").read_text())["episodes"])
        except (OSError, ValueError, KeyError, TypeError):
            return 0  # no usable state: the agent restarts, so the episodes are played again
        return max(0, min(done, saved))

    def _save(self, model: BaseAlgorithm, state_dir: Path, episodes: int) -> None:
        """Network weights and optimiser states (zip of tensors), replay buffer (npz), counters and
        random states (JSON), written into a fresh ``state-N/`` folder; ``agent.json`` names the
        folder and is replaced last, so a kill at any moment leaves one complete state to resume."""
        folder = state_dir / f"state-{episodes:08d}"
        folder.mkdir(parents=True, exist_ok=True)
        model.save(folder / "agent.zip")
        buffer = getattr(model, "replay_buffer", None)
        if buffer is not None:
            arrays = {k: getattr(buffer, k) for k in BUFFER_ARRAYS if getattr(buffer, k, None) is not None}
            with open(folder / "replay.npz", "wb") as f:
                np.savez(f, pos=buffer.pos, full=buffer.full, **arrays)
        write_json_atomic(state_dir / "agent.json", {"episodes": episodes, "algo": self.algo, "state": folder.name,
                                                     **counters(model)})
        for old in state_dir.glob("state-*"):
            if old.name != folder.name and not old.is_symlink():  # never delete through a link
                shutil.rmtree(old, ignore_errors=True)

    def _restore(self, env: PruningEnv, state_dir: Path | None, start_episode: int) -> BaseAlgorithm | None:
        """A fresh agent from the preset, then its saved tensors, buffer and counters.

        Nothing is unpickled: ``set_parameters`` reads only the zip's tensor files (with
        ``weights_only=True``), the buffer is read with ``allow_pickle=False`` and the rest is JSON.
        """
        if not state_dir or start_episode == 0 or not (state_dir / "agent.json").is_file():
            return None
        model = self.build(env)
        try:
            progress = json.loads((state_dir / "agent.json").read_text())
            folder = state_dir / str(progress.get("state", "."))  # "." : files of the flat layout before
            if folder.parent != state_dir and folder != state_dir:
                raise ValueError("state folder outside the agent folder")
            model.set_parameters(str(folder / "agent.zip"), exact_match=True, device="cpu")
            if (folder / "replay.npz").is_file() and getattr(model, "replay_buffer", None) is not None:
                with np.load(folder / "replay.npz", allow_pickle=False) as saved:
                    fill_buffer(model.replay_buffer, saved)
            set_counters(model, progress)  # a hand-edited counter or random state fails here, in one line
        except (OSError, ValueError, KeyError, RuntimeError, TypeError, EOFError, pickle.UnpicklingError,
                zipfile.BadZipFile) as exc:  # the message names no unsafe way out (no weights_only=False)
            raise ConfigError(f"agent state in {state_dir} cannot be restored ({type(exc).__name__}); "
                              f"delete that folder to resume with a fresh agent") from None
        return model


class _SpacesOnly(gym.Env):
    """The spaces of a :class:`PruningEnv` with two groups; never stepped (see ``SB3Searcher.check``)."""

    observation_space = gym.spaces.Box(0.0, 1.0, (len(OBS_NAMES),), np.float32)
    action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
    groups = (None, None)


def sb3_logger(folder: Path) -> Logger:
    """SB3's logger writing CSV, and TensorBoard event files when tensorboard is installed."""
    formats = ["csv"] + (["tensorboard"] if importlib.util.find_spec("tensorboard") else [])
    return configure(str(folder), formats)


def episode_length(env: PruningEnv | VecEnv) -> int:
    """Steps per episode (one per prunable group), for a single env or a vector of them."""
    groups = env.groups if hasattr(env, "groups") else env.get_attr("groups", indices=0)[0]
    return len(groups)


def _num_envs(env: PruningEnv | VecEnv) -> int:
    return int(getattr(env, "num_envs", 1))
