import math
import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

from autoprune.analysis import analyse_model, group_features
from autoprune.budget import BudgetSpec
from autoprune.costs import Cost, FlopsCostModel, RooflineCostModel
from autoprune.envs import ENV_ID, Budget, EpisodeResult, PruningEnv, create_reward
from autoprune.envs.rewards import amc_flops_reward, create_penalty_reward
from autoprune.errors import ConfigError
from autoprune.models import create_model
from autoprune.pruning import channels_kept


@pytest.fixture(scope="module")
def resnet():
    return analyse_model(create_model("resnet20"), torch.randn(1, 1, 28, 28))


def make_env(analysis, budget="50%", cost=None, evaluator=None, **kw):
    cost = cost or FlopsCostModel(analysis.layers)
    evaluator = evaluator or (lambda kept: sum(kept.values()) / 1000)
    return PruningEnv(analysis.groups, group_features(analysis), cost, Budget.from_spec(cost, budget),
                      evaluator, **kw)


def rollout(env, actions, seed=None):
    env.reset(seed=seed)
    done, info, t = False, {}, 0
    while not done:
        _, _, done, _, info = env.step(np.array([actions(t)], np.float32))
        t += 1
    return EpisodeResult.of(info)


def test_env_checkers_are_clean(resnet):
    env = gym.make(ENV_ID, groups=resnet.groups, features=group_features(resnet),
                   cost_model=FlopsCostModel(resnet.layers),
                   budget=Budget.from_spec(FlopsCostModel(resnet.layers), 0.5), evaluator=lambda k: 0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any checker warning fails the test
        check_env(env.unwrapped)
        sb3_check_env(env.unwrapped, warn=True)


@pytest.mark.parametrize("budget", ["30%", "50%", "80%"])
@pytest.mark.parametrize("round_to", [1, 4])
def test_budget_never_exceeded(resnet, budget, round_to):
    env = make_env(resnet, budget, round_to=round_to)
    rng = np.random.default_rng(0)
    for _ in range(60):
        info = rollout(env, lambda t: rng.uniform(-1, 1))
        assert info.feasible and info.cost <= env.budget.value
    greedy = rollout(env, lambda t: -1.0)  # asks to keep everything: the wall must step in
    assert greedy.feasible and greedy.cost <= env.budget.value


def test_budget_holds_for_latency_cost_models(resnet):
    env = make_env(resnet, "40%", cost=RooflineCostModel(resnet, "cortex-a53"), max_ratio=0.9)
    rng = np.random.default_rng(1)
    for _ in range(40):
        info = rollout(env, lambda t: rng.uniform(-1, 1))
        assert info.latency_ms <= env.budget.value + 1e-12


class _BlockPenaltyFlops(FlopsCostModel):
    """FLOPs plus a toll for each group whose width is off a 16-block: cost is not monotone."""

    def cost(self, arch):
        base = super().cost(arch)
        dense = {g.name: g.channels for g in self.groups}
        toll = sum(int(arch.get(n, c)) % 16 != 0 for n, c in dense.items()) * self.toll
        return Cost(flops=base.flops + toll, params=base.params)


@pytest.mark.parametrize("budget", ["55%", "65%"])
def test_budget_holds_for_non_monotone_cost(resnet, budget):
    cost = _BlockPenaltyFlops(resnet.layers)
    cost.groups, cost.toll = resnet.groups, int(0.03 * FlopsCostModel(resnet.layers).dense_cost().flops)
    env = make_env(resnet, budget, cost=cost, round_to=8, max_ratio=0.9)
    rng = np.random.default_rng(3)
    for _ in range(150):
        info = rollout(env, lambda t: rng.uniform(-1, 1))
        assert info.feasible and info.cost <= env.budget.value
    greedy = rollout(env, lambda t: -1.0)
    assert greedy.feasible and greedy.cost <= env.budget.value


def test_same_seed_same_rollout(resnet):
    a, b = make_env(resnet), make_env(resnet)
    for env in (a, b):
        env.action_space.seed(3)
    infos = [rollout(env, lambda t, env=env: env.action_space.sample()[0], seed=3) for env in (a, b)]
    assert infos[0].kept == infos[1].kept


def test_unreachable_budget_states_the_smallest_cost(resnet):
    with pytest.raises(ConfigError, match=r"cannot be met: the smallest reachable cost .* of dense\)") as err:
        make_env(resnet, "1%")
    cost = FlopsCostModel(resnet.layers)
    smallest = cost.cost({g.name: channels_kept(g.channels, 0.8) for g in resnet.groups}).flops
    assert f"{smallest:.6g}" in str(err.value)


def test_action_maps_to_ratio_bounds(resnet):
    env = make_env(resnet, "99%", min_ratio=0.2, max_ratio=0.6)
    assert env.ratio_for(-1, 0) == pytest.approx(0.2) and env.ratio_for(1, 0) == pytest.approx(0.6)
    info = rollout(env, lambda t: -1.0)
    assert all(abs(r - 0.2) < 0.07 for r in info.ratios.values())


def test_observation_is_in_bounds_and_tracks_progress(resnet):
    env = make_env(resnet)
    obs, _ = env.reset()
    assert env.observation_space.contains(obs) and obs[8] == 0.0  # nothing removed yet
    obs, *_ = env.step(np.array([1.0], np.float32))
    assert obs[8] > 0 and obs[10] > 0  # cost removed, previous action recorded


def test_failed_candidate_gets_zero_reward(resnet):
    env = make_env(resnet, evaluator=lambda kept: math.nan)
    info = rollout(env, lambda t: 0.0)
    assert math.isnan(info.score) and info.reward == 0.0


def test_rewards():
    budget = Budget("flops", 10.0, 20.0)
    assert create_reward("accuracy")(0.9, 5, budget) == 0.9
    assert amc_flops_reward(0.9, 20.0 * math.e / 1e6, budget) == pytest.approx(-0.1)
    assert create_penalty_reward(2.0)(0.9, 12, budget) == pytest.approx(0.5)
    with pytest.raises(ConfigError, match="unknown reward"):
        create_reward("speed")


def test_amc_reward_tells_accuracies_apart_under_a_millisecond_budget():
    budget = Budget("latency_ms", 0.14, 0.28)  # costs below 1 ms used to clamp the log to ~0
    better, worse = amc_flops_reward(0.9, 0.14, budget), amc_flops_reward(0.8, 0.14, budget)
    assert worse < better < -0.5


def test_penalty_reward_lets_candidates_over_budget_be_tried_and_penalised(resnet):
    env = make_env(resnet, "30%", reward="penalty", evaluator=lambda kept: 0.5)
    info = rollout(env, lambda t: -1.0)  # keep everything: over budget, not clipped, penalised
    assert not info.feasible and info.reward < 0.5
    strict = rollout(make_env(resnet, "30%", evaluator=lambda kept: 0.5), lambda t: -1.0)
    assert strict.feasible and strict.reward == 0.5


def test_budget_parsing(resnet):
    cost = FlopsCostModel(resnet.layers)
    dense = cost.dense_cost().flops
    assert Budget.from_spec(cost, "50%").value == Budget.from_spec(cost, 0.5).value == dense / 2
    assert Budget.from_spec(cost, "12M").value == 12e6
    with pytest.raises(ConfigError, match="in ms but cost model 'flops'"):
        Budget.from_spec(cost, "0.2ms")
    with pytest.raises(ConfigError, match="cannot read budget"):
        Budget.from_spec(cost, "fast")


@pytest.mark.parametrize("spec,message", [
    ("abc", "cannot read budget"), ("inf", "positive, finite"), ("1e309", "positive, finite"),
    ("nan%", "positive, finite"), ("-5%", "positive, finite"), ("150%", "more than the dense"),
    ("50", "has no unit"), ("0", "positive, finite")])
def test_bad_budgets_are_refused_from_the_text_alone(spec, message):
    with pytest.raises(ConfigError, match=message):
        BudgetSpec.parse(spec)


@pytest.mark.parametrize("spec,factor,expected", [("30%", 1.1, "27.2%"), ("0.3", 1.1, "27.2%"), ("50%", 1.0, "50%"),
                                                     ("0.2848ms", 1.1, "0.258ms"), ("12M", 1.1, "10.9M")])
def test_a_tightened_budget_is_written_as_given_and_rounded_down(spec, factor, expected):
    tight = BudgetSpec.parse(spec).tightened(factor)
    assert tight == expected
    given, out = BudgetSpec.parse(spec), BudgetSpec.parse(tight)
    assert (out.fraction or out.value) <= (given.fraction or given.value) / factor + 1e-12  # never above


def test_absolute_budget_above_dense_and_in_the_wrong_unit_is_refused(resnet):
    cost = FlopsCostModel(resnet.layers)
    with pytest.raises(ConfigError, match="above the dense"):
        Budget.from_spec(cost, "100G")
    assert Budget.from_spec(cost, "0.25").fits(cost.dense_cost().flops / 4)
    assert not Budget.from_spec(cost, "0.25").fits(cost.dense_cost().flops / 3)


def _random_rollouts(env, episodes, seed=0):
    rng = np.random.default_rng(seed)
    return [rollout(env, lambda t: float(rng.uniform(-1, 1))) for _ in range(episodes)]


@pytest.mark.parametrize("budget", ["50%", "30%"])
def test_projection_has_no_position_bias_and_uses_the_budget(resnet, budget):
    env = make_env(resnet, budget, round_to=1)
    infos = _random_rollouts(env, 60)
    assert all(i.feasible for i in infos)
    used = [i.cost / env.budget.value for i in infos]
    assert min(used) >= 0.95, min(used)
    means = np.array([np.mean([i.ratios[g.name] for i in infos]) for g in env.groups])
    third = len(means) // 3
    # the wall cut late groups hardest; the projection's late groups are cut no more than early ones
    assert means[-third:].mean() - means[:third].mean() < 0.05, means.round(2)


def test_the_wall_shows_the_bias_the_projection_removes(resnet):
    infos = _random_rollouts(make_env(resnet, "30%", round_to=1, budget_rule="wall"), 60)
    means = np.array([np.mean([i.ratios[g] for i in infos]) for g in infos[0].ratios])
    third = len(means) // 3
    assert means[-third:].mean() - means[:third].mean() > 0.1, means.round(2)


def test_projection_meets_the_budget_under_a_non_monotone_cost(resnet):
    flops = FlopsCostModel(resnet.layers)

    class Bumpy(type(flops)):
        def cost(self, arch):  # odd widths cost 40 % more: fewer channels can cost more
            base = super().cost(arch)
            odd = sum(k % 2 for k in arch.values())
            return Cost(int(base.flops * (1 + 0.4 * odd / max(len(arch), 1))), base.params)

    env = make_env(resnet, "40%", cost=Bumpy(resnet.layers), round_to=1)
    assert all(i.feasible for i in _random_rollouts(env, 30))


@pytest.mark.parametrize("bad", [math.inf, math.nan, -1.0, "fast"])
def test_a_cost_model_returning_a_bad_cost_is_refused_in_one_line(resnet, bad):
    flops = FlopsCostModel(resnet.layers)

    class Broken(type(flops)):
        name = "broken-npu"

        def cost(self, arch):
            base = super().cost(arch)
            return Cost(base.flops, base.params, latency_ms=bad) if arch else Cost(base.flops, base.params, 1.0)

        metric = "latency_ms"

    with pytest.raises(ConfigError, match="cost model 'broken-npu' returned latency_ms="):
        rollout(make_env(resnet, "50%", cost=Broken(resnet.layers)), lambda t: 0.0)  # refused when first priced


def test_a_clone_plays_its_own_episodes_and_deferred_ones_complete_as_played_here(resnet):
    env = make_env(resnet)
    alone = rollout(make_env(resnet), lambda t: 0.3 * (t % 3) - 0.2)
    env.reset()
    env.step(np.array([0.5], np.float32))  # the original is mid-episode when cloned
    other = env.clone()
    other.reset(options={"defer": True})
    pending = None
    for t in range(len(resnet.groups)):
        _, _, done, _, info = other.step(np.array([0.3 * (t % 3) - 0.2], np.float32))
        pending = EpisodeResult.of(info) if done else None
    assert math.isnan(pending.score) and env._t == 1 and env._kept  # the original's episode untouched
    done = other.complete(pending, alone.score, 0.0)
    assert done.kept == alone.kept and done.reward == alone.reward and done.cost == alone.cost
