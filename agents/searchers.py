"""Searchers: SB3 agents and simple baselines behind one interface, so results compare side by side.

A searcher runs ``episodes`` episodes of a :class:`~autoprune.envs.PruningEnv` and calls
``on_episode(info)`` after each one; with ``state_dir`` it saves what it needs to resume.
"""

from __future__ import annotations

import abc
import importlib.util
import json
import pickle
import random
import shutil
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import Logger, configure
from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm
from stable_baselines3.common.vec_env import VecEnv

from autoprune.agents.amc import AMCDDPG, AMCSAC, AMCTD3
from autoprune.agents.noise import DecayingTruncatedNormalNoise
from autoprune.atomic import write_json_atomic
from autoprune.envs.episode import EpisodeResult
from autoprune.envs.observation import OBS_NAMES
from autoprune.envs.pruning_env import PruningEnv
from autoprune.errors import ConfigError
from autoprune.pruning.global_magnitude import global_magnitude_kept, size_global_magnitude
from autoprune.pruning.importance import channel_scores
from autoprune.pruning.knapsack import knapsack_allocation

EpisodeHook = Callable[[EpisodeResult], None]


class Searcher(abc.ABC):
    """Proposes one candidate per episode."""

    name = "searcher"
    accepts: frozenset[str] = frozenset()  # parameters a baseline takes (SB3 agents: their preset's)

    def __init__(self, seed: int = 0, **params: Any) -> None:
        self.seed, self.params = seed, params

    @abc.abstractmethod
    def run(self, env: PruningEnv, episodes: int, on_episode: EpisodeHook, start_episode: int = 0,
            state_dir: Path | None = None) -> None:
        """Run episodes ``start_episode .. episodes - 1``."""

    def resume_point(self, state_dir: Path | None, done: int) -> int:
        """The episode a resume continues from, given ``done`` episodes in the history: ``done`` for
        searchers whose every episode is reproducible on its own (random streams per episode)."""
        return done

    def play(self, env: PruningEnv, actions: Callable[[int], float], seed: int | None = None,
             exact: bool = False, defer: bool = False) -> EpisodeResult:
        """One episode with ``actions(step) -> action``; returns its result.

        ``exact``: a feasible proposal is scored as it is (one-shot baselines), not filled up.
        """
        env.reset(seed=seed, options={"exact": exact, "defer": defer})
        t, done, info = 0, False, {}
        while not done:
            _, _, done, _, info = env.step(np.array([actions(t)], np.float32))
            t += 1
        return EpisodeResult.of(info)

    def play_widths(self, env: PruningEnv, kept: dict[str, int], exact: bool = True) -> EpisodeResult:
        """One episode proposing the widths ``kept`` (one-shot rules: scored as made when they fit)."""
        actions = [action_for(env, t, kept[g.name]) for t, g in enumerate(env.groups)]
        return self.play(env, lambda t: actions[t], exact=exact)


def action_for(env: PruningEnv, t: int, kept: int) -> float:
    """The action that asks for ``kept`` channels of group ``t``."""
    return env.action_for(t, kept)


def play_batch(searcher: Searcher, env: PruningEnv, plays: list[tuple[Callable[[int], float], int]]
               ) -> list[EpisodeResult]:
    """Episodes ``(actions, seed)`` played in order, their candidates scored together (in parallel
    when the environment's scorer has ``score_many``), results in the order played."""
    many = getattr(env.evaluator, "score_many", None)
    if many is None:
        return [searcher.play(env, actions, seed=seed) for actions, seed in plays]
    pending = [searcher.play(env, actions, seed=seed, defer=True) for actions, seed in plays]
    scored = many([p.kept for p in pending])
    return [env.complete(p, s.score, s.seconds) for p, s in zip(pending, scored)]


QUEUED_PER_WORKER = 4  # a worker done early takes the next candidate instead of idling until the batch ends


def batch_size(env: PruningEnv) -> int:
    """Candidates to score at once: a few per worker of a pooled scorer (1: one at a time, here)."""
    if not hasattr(env.evaluator, "score_many"):
        return 1
    return QUEUED_PER_WORKER * max(1, int(getattr(env.evaluator, "parallel", 1)))


class RandomSearcher(Searcher):
    """Uniformly random actions; with BN recalibration this is EagleEye's search (Li et al. 2020)."""

    name = "random"

    def run(self, env, episodes, on_episode, start_episode=0, state_dir=None) -> None:
        step = batch_size(env)
        for first in range(start_episode, episodes, step):
            plays = []
            for e in range(first, min(first + step, episodes)):
                rng = np.random.default_rng([self.seed, e])  # per-episode stream: resumable, reproducible
                plays.append((lambda t, rng=rng: float(rng.uniform(-1, 1)), self.seed + e))
            for result in play_batch(self, env, plays):
                on_episode(result)


class UniformSearcher(Searcher):
    """The same ratio for every group: the smallest one that meets the budget (one candidate)."""

    name = "uniform"

    def run(self, env, episodes, on_episode, start_episode=0, state_dir=None) -> None:
        if start_episode >= 1:
            return
        action = self.smallest_action(env)
        on_episode(self.play(env, lambda t: action, exact=True))

    @staticmethod
    def smallest_action(env: PruningEnv, iters: int = 40) -> float:
        """Bisection on one shared action (hence one ratio) against the cost model.

        Works on the float32 action through the env's own mapping, so rounding to whole
        channels is exactly what the episode will do.
        """
        def fits(a: float) -> bool:
            a32 = float(np.float32(a))
            kept = {g.name: env.wall.clip(t, {}, env.width_for(a32, t), enforce=False)
                    for t, g in enumerate(env.groups)}
            return env.wall.cost_of(kept) <= env.budget.value

        lo, hi = -1.0, 1.0
        if fits(lo):
            return lo
        for _ in range(iters):
            mid = (lo + hi) / 2
            lo, hi = (lo, mid) if fits(mid) else (mid, hi)
        return float(np.float32(hi)) if fits(float(np.float32(hi))) else 1.0


class ModelRuleSearcher(Searcher):
    """A one-shot rule that reads the model's weights: one candidate, played in the first episode."""

    def run(self, env, episodes, on_episode, start_episode=0, state_dir=None) -> None:
        if start_episode >= 1:
            return
        if getattr(env, "analysis", None) is None:
            raise ConfigError(f"the {self.name} searcher needs the model: build the PruningEnv with "
                              f"analysis=<ModelAnalysis>")
        kept, exact = self.widths(env)
        on_episode(self.play_widths(env, kept, exact))

    @abc.abstractmethod
    def widths(self, env: PruningEnv) -> tuple[dict[str, int], bool]:
        """The rule's widths, and whether they are scored as made (True) or projected."""


class GlobalMagnitudeSearcher(ModelRuleSearcher):
    """Torch-Pruning's global magnitude pruning sized to the budget (one candidate, no search).

    The layer allocation comes from the weights alone: every channel is ranked on one scale and
    the smallest global share removed whose architecture meets the budget is searched for.
    Parameters: ``p`` (norm; 1 matches the default ``l1`` channel ranking). When no global
    ratio meets the budget (Torch-Pruning caps each group at the max ratio and skips groups
    whose rounded cut would break it), its narrowest allocation is projected onto the budget.
    """

    name = "global-magnitude"
    accepts = frozenset({"p"})

    def widths(self, env: PruningEnv) -> tuple[dict[str, int], bool]:
        def fits(kept: dict[str, int]) -> bool:
            return env.wall.fits(self._clipped(env, kept))

        p = int(self.params.get("p", 1))
        try:
            _, kept = size_global_magnitude(env.analysis, fits, max(env.max_ratio), env.round_to, p)
            return self._clipped(env, kept), True
        except ValueError:  # no global ratio meets the budget: its narrowest allocation, projected
            kept = global_magnitude_kept(env.analysis, max(env.max_ratio), max(env.max_ratio), env.round_to, p)
            return self._clipped(env, kept), False

    @staticmethod
    def _clipped(env: PruningEnv, kept: dict[str, int]) -> dict[str, int]:
        """Widths within the env's per-group bounds (what the episode will apply)."""
        return {g.name: env.wall.clip(t, {}, kept[g.name], enforce=False) for t, g in enumerate(env.groups)}


class KnapsackSearcher(ModelRuleSearcher):
    """HALP-style latency-aware knapsack: channels kept by importance per unit of predicted cost.

    One candidate, no search: from the narrowest allowed widths, the channel step that buys the
    most importance per unit of cost is added while the budget holds (any cost model).
    Parameters: ``importance`` (a data-free criterion: ``l1`` (default), ``l2``, ``bn_scale``).
    """

    name = "knapsack"
    accepts = frozenset({"importance"})

    def widths(self, env: PruningEnv) -> tuple[dict[str, int], bool]:
        scores = channel_scores(env.analysis, str(self.params.get("importance", "l1")))
        names = [g.name for g in env.groups]
        kept = knapsack_allocation({n: scores[n] for n in names}, env.wall.choices, env.wall.cost_of, env.budget)
        return kept, True


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
                 stop_at_target: bool, on_start: Callable[[], None] | None = None) -> None:
        super().__init__()
        self.on_episode, self.target, self.count, self.save = on_episode, target, done, save
        self.stop_at_target, self.on_start = stop_at_target, on_start

    def _on_training_start(self) -> None:
        if self.on_start:  # after SB3's own set-up, which resets the action noise once more
            self.on_start()

    def _on_step(self) -> bool:
        for done, info in zip(self.locals["dones"], self.locals["infos"]):
            if done and self.count < self.target:
                self.count += 1
                self.on_episode(EpisodeResult.of(info))
        return not (self.stop_at_target and self.count >= self.target)

    def _on_rollout_start(self) -> None:
        if self.save:
            self.save(self.count)


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
            self.build(_SpacesOnly())
        except ConfigError:
            raise
        except (TypeError, ValueError, RuntimeError, AssertionError) as exc:
            raise ConfigError(f"bad hyper-parameter for {self.algo}: {exc}") from None

    def run(self, env, episodes, on_episode, start_episode=0, state_dir=None) -> None:
        model = self._restore(env, state_dir, start_episode) or self.build(env)
        self.model = model
        if state_dir:  # SB3's own log (losses, entropy, episode rewards) next to the agent state
            model.set_logger(sb3_logger(state_dir.parent / "sb3_log"))
        remaining = episodes - start_episode
        if remaining <= 0:
            return
        save = (lambda count: self._save(model, state_dir, count)) if state_dir else None
        saved = getattr(model, "_autoprune_counters", None)
        callback = _EpisodeCallback(on_episode, episodes, start_episode, save,
                                    stop_at_target=isinstance(model, OnPolicyAlgorithm),
                                    on_start=None if saved is None else lambda: _set_noise(model, saved))
        model.learn(total_timesteps=remaining * episode_length(env), callback=callback,
                    reset_num_timesteps=start_episode == 0, progress_bar=False)
        if save and not isinstance(model, OnPolicyAlgorithm):
            save(callback.count)  # off-policy learn() ends after its last update: a complete state
        # (an on-policy run is stopped inside a rollout: its last rollout start stays the state, and a
        # longer resumed run replays the episodes since then)

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
                                                     **_counters(model)})
        for old in state_dir.glob("state-*"):
            if old.name != folder.name:
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
            counters = json.loads((state_dir / "agent.json").read_text())
            folder = state_dir / str(counters.get("state", "."))  # "." : files of the flat layout before
            if folder.parent != state_dir and folder != state_dir:
                raise ValueError("state folder outside the agent folder")
            model.set_parameters(str(folder / "agent.zip"), exact_match=True, device="cpu")
            if (folder / "replay.npz").is_file() and getattr(model, "replay_buffer", None) is not None:
                with np.load(folder / "replay.npz", allow_pickle=False) as saved:
                    _fill_buffer(model.replay_buffer, saved)
            _set_counters(model, counters)  # a hand-edited counter or random state fails here, in one line
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


BUFFER_ARRAYS = ("observations", "next_observations", "actions", "rewards", "dones", "timeouts")


def _counters(model: BaseAlgorithm) -> dict[str, Any]:
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


def _set_counters(model: BaseAlgorithm, c: dict[str, Any]) -> None:
    model.num_timesteps = int(c["num_timesteps"])
    model._n_updates, model._episode_num = int(c.get("n_updates", 0)), int(c.get("episode_num", 0))
    if hasattr(model, "baseline"):
        model.baseline, model.spread = c.get("baseline"), c.get("spread")
    _set_noise(model, c)
    model._autoprune_counters = c  # the noise is set again once learn() has reset it (see run)
    if c.get("log_ent_coef") is not None and getattr(model, "log_ent_coef", None) is not None:
        with torch.no_grad():
            model.log_ent_coef.fill_(float(c["log_ent_coef"]))
    if c.get("rng"):
        _set_rng_states(model, c["rng"])


def _set_noise(model: BaseAlgorithm, c: dict[str, Any]) -> None:
    noise = getattr(model, "action_noise", None)
    if isinstance(noise, DecayingTruncatedNormalNoise) and c.get("noise_episodes") is not None:
        noise.episodes = int(c["noise_episodes"])
        if c.get("noise_rng"):
            noise.rng.bit_generator.state = c["noise_rng"]


def _fill_buffer(buffer, saved) -> None:
    for key in BUFFER_ARRAYS:
        if key in saved.files and getattr(buffer, key, None) is not None:
            target = getattr(buffer, key)
            if target.shape != saved[key].shape:
                raise ValueError(f"replay buffer {key} has shape {saved[key].shape}, expected {target.shape}")
            target[...] = saved[key]
    buffer.pos, buffer.full = int(saved["pos"]), bool(saved["full"])
