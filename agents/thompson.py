"""Thompson sampling over an additive model of the score, with re-queries of the leaders.

The model: an architecture's score is a sum of one value per (group, allowed width), BOCS's
first-order model (Baptista & Poloczek 2018) as a Bayesian linear regression on one-hot widths,
fitted to every architecture scored (an earlier search's too: the model does not depend on the
budget). After ``warmup`` random proposals, each episode draws one model from the posterior and
proposes, among ``candidates`` random proposals, the one-step neighbours of the ``top``
architectures the model ranks highest and the draw's knapsack (each projected onto the episode's
budget, none asked before), the one that draw scores highest. Every query informs every later
proposal, not one parent's children.

Re-queries: the search returns the best architecture by mean score, so with a noisy score one
lucky query of a mediocre architecture wins (the winner's curse). Every ``intensify``-th episode
therefore asks again the leader by mean, among the ``top`` leaders the one with the fewest queries
(SMAC's intensification). The first such episode repeats the best one to learn whether the score is
noisy at all; a score whose first five repeated queries all gave their first value is
deterministic and never asked again (``autoprune/repeats.py``).

Every decision of episode ``e`` is a function of the seed, ``e`` and the episodes before its
batch; the episodes are logged in ``agent/thompson.jsonl`` (``roar.jsonl``) and replayed on resume.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from autoprune.agents.base import Searcher, batch_size, play_batch, widths_actions
from autoprune.agents.racing import leaders, requery
from autoprune.agents.state import Scored, append_log, replay_log
from autoprune.analysis.architecture import architecture_key
from autoprune.envs.budget import BudgetWall
from autoprune.envs.projection import BudgetProjection
from autoprune.envs.pruning_env import PruningEnv
from autoprune.errors import ConfigError

Projection = Callable[[dict[str, int]], dict[str, int]]  # proposed widths -> feasible widths
NOISE_FLOOR = 0.05  # the least residual variance (in units of the scores' variance): the draws never freeze
MAX_BINS = 8  # features per group at most: wider grids share a feature between consecutive widths


@dataclasses.dataclass(frozen=True)
class ThompsonSettings:
    """``warmup`` random proposals first; ``candidates`` random ones among each episode's choices;
    the ``top`` leaders' neighbours and re-queries; a re-query every ``intensify`` episodes (0:
    never); ``prior``: the regression's prior precision (larger: smaller width values)."""

    warmup: int = 20
    candidates: int = 64
    top: int = 3
    intensify: int = 2
    prior: float = 1.0

    @classmethod
    def of(cls, params: Mapping[str, object]) -> ThompsonSettings:
        out = cls(**params)  # type: ignore[arg-type]
        ints = (out.warmup, out.candidates, out.top, out.intensify)
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in ints) or \
                not isinstance(out.prior, (int, float)):
            raise ConfigError("thompson needs integers warmup, candidates, top, intensify and a number prior")
        if out.warmup < 2 or out.candidates < 1 or out.top < 1 or out.intensify < 0 or not out.prior > 0:
            raise ConfigError("thompson needs warmup >= 2, candidates >= 1, top >= 1, intensify >= 0 and prior > 0")
        return out


class AdditiveModel:
    """One-hot features of the allowed widths per group, and the Bayesian regression on them.

    A group of more than :data:`MAX_BINS` allowed widths (a wide layer on a fine grid) has one
    feature per run of consecutive widths, so the regression stays small on any model."""

    def __init__(self, levels: Mapping[str, Sequence[int]]) -> None:
        self.index: dict[tuple[str, int], int] = {}
        self.levels = {name: np.asarray(sorted(int(w) for w in widths)) for name, widths in levels.items()}
        self.steps: dict[str, list[int]] = {}  # per group, the narrowest width of each feature's run
        features = 0
        for name, widths in self.levels.items():
            runs = np.array_split(widths, min(len(widths), MAX_BINS))
            self.steps[name] = [int(run[0]) for run in runs]
            for run in runs:
                for width in run:
                    self.index[(name, int(width))] = features
                features += 1
        self.size = features

    def features(self, archs: Sequence[Mapping[str, int]]) -> np.ndarray:
        """One row per architecture (a width between listed ones counts as the nearest)."""
        x = np.zeros((len(archs), self.size))
        for row, kept in enumerate(archs):
            for name, widths in self.levels.items():
                nearest = int(widths[np.abs(widths - kept[name]).argmin()])
                x[row, self.index[(name, nearest)]] = 1.0
        return x

    def draw(self, x: np.ndarray, y: np.ndarray, prior: float, rng: np.random.Generator
             ) -> tuple[np.ndarray, np.ndarray]:
        """The posterior mean of the width values and one draw from the posterior, on the scores
        standardised (so the prior and the noise floor mean the same for any score's scale); the
        noise variance is the residuals' (model misfit included), at least :data:`NOISE_FLOOR`."""
        spread = float(y.std())
        ys = (y - y.mean()) / (spread if spread > 0 else 1.0)
        precision = x.T @ x + prior * np.eye(x.shape[1])
        chol = np.linalg.cholesky(precision)
        mean = np.linalg.solve(precision, x.T @ ys)
        leverage = float(np.sum(np.linalg.solve(chol, x.T) ** 2))  # trace of the hat matrix
        residual = ys - x @ mean
        noise = max(float(residual @ residual) / max(len(ys) - leverage, 1.0), NOISE_FLOOR)
        return mean, mean + math.sqrt(noise) * np.linalg.solve(chol.T, rng.standard_normal(len(mean)))


class Projections:
    """The environment's budget projections for the searcher's candidates, memoised: per budget, each
    proposal's projection and each architecture's cost (a projection asks the cost of the same
    architectures again and again; the environment still projects and checks what is played)."""

    def __init__(self, env: PruningEnv) -> None:
        self.env = env
        self.rules: dict[int, BudgetProjection] = {}
        self.done: dict[tuple[int, str], dict[str, int]] = {}

    def wall(self, budget: int) -> BudgetWall:
        """Budget ``budget``'s wall (an index into the environment's budgets), its costs memoised."""
        return self._rule(budget).wall

    def _rule(self, budget: int) -> BudgetProjection:
        if budget not in self.rules:
            wall, projection = self.env.rules(budget)
            wall, costs, measure = copy.copy(wall), {}, wall.cost_of

            def cost_of(kept: dict[str, int]) -> float:
                key = tuple(sorted(kept.items()))
                if key not in costs:
                    costs[key] = measure(kept)
                return costs[key]

            wall.cost_of = cost_of  # type: ignore[method-assign]  # fits() reads it too
            self.rules[budget] = BudgetProjection(wall, fill_target=projection.fill_target)
        return self.rules[budget]

    def __call__(self, budget: int, proposal: dict[str, int]) -> dict[str, int]:
        """``proposal`` projected onto budget ``budget``."""
        key = (budget, architecture_key(proposal))
        if key not in self.done:
            self.done[key] = self._rule(budget).project(proposal)
        return self.done[key]


class ThompsonSearcher(Searcher):
    """Thompson sampling of widths under an additive score model, intensifying on the leaders.

    Parameters: see :class:`ThompsonSettings`.
    """

    name = "thompson"
    accepts = frozenset(f.name for f in dataclasses.fields(ThompsonSettings))
    model_proposals = True  # False: random proposals between the re-queries (ROAR)

    @property
    def state_file(self) -> str:
        """The episode log under the run's ``agent/`` folder, replayed on resume."""
        return f"{self.name}.jsonl"

    def check(self) -> None:
        ThompsonSettings.of(self.params)

    def run(self, env, episodes, on_episode, start_episode=0, state_dir=None) -> None:
        settings = ThompsonSettings.of(self.params)
        model = AdditiveModel(env.choices.levels)
        projected = Projections(env)
        warm = [(k, r) for k, r in self.warm if math.isfinite(r)]
        members = replay_log(state_dir, self.state_file, self.name, start_episode)
        step = batch_size(env)
        episode = start_episode
        while episode < episodes:
            base = episode - episode % step  # every episode of a batch is decided from the episodes before it
            stop = min(base + step, episodes)
            known = members[:base]
            plays = [(self._actions(env, settings, model, projected, warm, known, e,
                                    env.upcoming_budget(e - episode)), self.seed + e) for e in range(episode, stop)]
            for result in play_batch(self, env, plays):
                members.append((dict(result.kept), float(result.reward)))
                if state_dir:
                    append_log(state_dir, self.state_file, result.kept, result.reward)
                on_episode(result)
            episode = stop

    def _actions(self, env: PruningEnv, settings: ThompsonSettings, model: AdditiveModel, projected: Projections,
                 warm: list[Scored], known: list[Scored], episode: int, budget: int):
        """Episode ``episode``'s actions under the environment's budget ``budget`` (an index): a random
        proposal, a re-query or the posterior draw's best."""
        rng = np.random.default_rng([self.seed, episode])
        scored = warm + [(k, r) for k, r in known if math.isfinite(r)]
        if len(scored) < settings.warmup:
            return lambda t: float(rng.uniform(-1, 1))
        means = leaders(known)
        if settings.intensify and episode % settings.intensify == 0:
            # one budget: every architecture was played under it; several: those the env would play as they are
            here = {k: v for k, v in means.items() if len(env.budgets) == 1 or projected(budget, v[0]) == v[0]}
            again = requery(here, settings.top)
            if again is not None:
                return widths_actions(env, again)
        if not self.model_proposals:
            return lambda t: float(rng.uniform(-1, 1))
        return widths_actions(env, _best_of_draw(env, settings, model, lambda kept: projected(budget, kept),
                                                 projected.wall(budget), scored, means, rng))


class RoarSearcher(ThompsonSearcher):
    """Random proposals with the same re-queries of the leaders: SMAC's ROAR (random online
    aggressive racing, Hutter et al. 2011), Thompson sampling without its model. The ablation that
    says how much of Thompson sampling's lead over random search is the model's and how much the
    re-queries'. Parameters: ``warmup``, ``top``, ``intensify`` as Thompson sampling's (the others
    are not used).
    """

    name = "roar"
    model_proposals = False


def _best_of_draw(env: PruningEnv, settings: ThompsonSettings, model: AdditiveModel, project: Projection,
                  wall: BudgetWall, scored: list[Scored], means: Mapping[str, object], rng: np.random.Generator
                  ) -> dict[str, int]:
    """The unasked candidate a posterior draw scores highest, among random proposals, the neighbours
    of the architectures the posterior mean ranks highest and the draw's knapsack (all ``project``ed
    onto the episode's budget)."""
    archs = [k for k, _ in scored]
    x = model.features(archs)
    mean, drawn = model.draw(x, np.array([r for _, r in scored]), settings.prior, rng)
    leaders: dict[str, dict[str, int]] = {}  # the top distinct architectures by the posterior mean
    for i in np.argsort(-(x @ mean), kind="stable"):
        if len(leaders) == settings.top:
            break
        leaders.setdefault(architecture_key(archs[i]), archs[i])
    pool = [_random_widths(model, rng) for _ in range(settings.candidates)]
    for parent in leaders.values():
        for name in model.levels:
            for width in (env.choices.narrower(name, parent[name]), env.choices.wider(name, parent[name])):
                if width != parent[name]:
                    pool.append({**parent, name: width})
    pool.append(_greedy(wall, model, drawn))
    candidates = _unasked(pool, project, means)
    for _ in range(4):  # a small space, every candidate asked already: more random proposals
        if candidates:
            break
        candidates = _unasked([_random_widths(model, rng) for _ in range(settings.candidates)], project, means)
    chosen = list(candidates.values()) or [project(pool[0])]
    return chosen[int(np.argmax(model.features(chosen) @ drawn))]


def _random_widths(model: AdditiveModel, rng: np.random.Generator) -> dict[str, int]:
    return {name: int(widths[rng.integers(len(widths))]) for name, widths in model.levels.items()}


def _unasked(pool: list[dict[str, int]], project: Projection, asked: Mapping[str, object]
             ) -> dict[str, dict[str, int]]:
    """The proposals of ``pool`` projected onto the budget (memoised), those not asked yet, by key."""
    out: dict[str, dict[str, int]] = {}
    for proposal in pool:
        kept = project(proposal)
        key = architecture_key(kept)
        if key not in asked:
            out.setdefault(key, kept)
    return out


def _greedy(wall: BudgetWall, model: AdditiveModel, values: np.ndarray) -> dict[str, int]:
    """The drawn model's knapsack: from the narrowest widths, the move of one group to a wider
    feature's narrowest width of most value per unit of cost while the budget holds (moves of no
    value are not taken)."""
    kept = {name: int(widths[0]) for name, widths in model.levels.items()}
    cost = wall.cost_of(kept)
    while True:
        best, best_ratio, best_cost = None, 0.0, cost
        for name, steps in model.steps.items():
            here = values[model.index[(name, kept[name])]]
            for width in (w for w in steps if w > kept[name]):
                gain = values[model.index[(name, width)]] - here
                if gain <= 0:
                    continue
                trial = {**kept, name: width}
                trial_cost = wall.cost_of(trial)
                ratio = gain / max(trial_cost - cost, 1e-12)
                if ratio > best_ratio and wall.budget.fits(trial_cost):
                    best, best_ratio, best_cost = trial, ratio, trial_cost
        if best is None:
            return kept
        kept, cost = best, best_cost
