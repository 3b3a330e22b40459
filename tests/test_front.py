"""One budget-conditioned search for a front: budgets drawn per episode (seeded, resumable), the
budget in the observation, one policy per budget that meets it, front.csv/front.png."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
from test_env import make_env, rollout

from autoprune.analysis import analyse_model
from autoprune.budget import Budget
from autoprune.cli.main import main
from autoprune.costs import FlopsCostModel
from autoprune.models import create_model
from autoprune.policy import PruningPolicy


@pytest.fixture(scope="module")
def resnet():
    return analyse_model(create_model("resnet20").eval(), torch.randn(1, 1, 28, 28))


def _env(analysis, seed):
    cost = FlopsCostModel(analysis.layers)
    budgets = [Budget.from_spec(cost, b) for b in ("30%", "50%", "70%")]
    return make_env(analysis, "30%", cost=cost, budgets=budgets, budget_seed=seed)


def test_budgets_are_drawn_per_episode_seeded_and_resumable(resnet):
    draws = []
    for seed in (0, 0, 1):
        env = _env(resnet, seed)
        draws.append([rollout(env, lambda t: 0.0).budget for _ in range(30)])
    assert draws[0] == draws[1] and draws[0] != draws[2]  # the same seed draws the same budgets
    assert len(set(draws[0])) == 3  # every budget is searched
    env = _env(resnet, 0)
    env.episode_index = 12  # a resumed search continues the same draws
    assert [rollout(env, lambda t: 0.0).budget for _ in range(18)] == draws[0][12:]
    env = _env(resnet, 0)
    fractions = set()
    for _ in range(10):  # the observation carries the episode's budget (feature 11)
        obs, _ = env.reset()
        fractions.add(round(float(obs[11]), 3))
        assert abs(obs[11] - env.budget.fraction) < 1e-6
    assert fractions == {0.3, 0.5, 0.7}
    env.pin_budget(1)
    assert {rollout(env, lambda t: 1.0).budget for _ in range(5)} == {env.budgets[1].value}


def test_front_search_writes_a_policy_per_budget_that_meets_it_and_resumes(tmp_path):
    args = ["-q", "search", "--model", "mlp", "--data", "synthetic", "--cost-model", "flops",
            "--budgets", "30%,50%,70%", "--agent", "random", "--val-size", "64", "--bn-batches", "1",
            "--rerank-top", "2", "--rerank-steps", "2", "--seed", "4"]
    assert main([*args, "--episodes", "16", "--out", str(tmp_path / "full")]) == 0
    assert main([*args, "--episodes", "10", "--out", str(tmp_path / "part")]) == 0
    assert main([*args, "--episodes", "16", "--resume", "--out", str(tmp_path / "part")]) == 0
    full, part = (pd.read_csv(tmp_path / f / "history.csv").drop(columns=["wall_s", "score_s"]) for f in ("full", "part"))
    assert full.equals(part)
    assert list(full["source"][:9]) == [f"seed:{r}" for r in ("uniform", "global-magnitude", "knapsack")] * 3
    front = pd.read_csv(tmp_path / "full" / "front.csv")
    assert list(front["label"]) == ["30%", "50%", "70%"] and (tmp_path / "full" / "front.png").is_file()
    analysis = analyse_model(create_model("mlp").eval(), torch.randn(1, 1, 28, 28))
    cost = FlopsCostModel(analysis.layers)
    for row in front.itertuples():
        policy = PruningPolicy.load(tmp_path / "full" / row.policy)
        budget = Budget.from_dict(policy.budget)
        assert budget.fraction == pytest.approx(row.fraction)
        assert budget.fits(cost.cost(policy.architecture(analysis)).flops)  # each meets its own budget
        at = full[(full["budget"] - budget.value).abs() < 1e-6]
        assert policy.score.episode in set(at["episode"])  # chosen among that budget's episodes
    summary = json.loads((tmp_path / "full" / "summary.json").read_text())
    assert [p["label"] for p in summary["front"]] == ["30%", "50%", "70%"]


@pytest.mark.parametrize("extra,message", [(["--budgets", "30%,50%", "--n-envs", "2"], "n-envs 1"),
                                           (["--budgets", "30%,lots"], "budget"),
                                           (["--budgets", "30%,50%", "--agent", "ppo", "--agent-param", "intensify=2"],
                                            "intensify (re-queries) needs one budget")])
def test_bad_budget_lists_are_refused_in_one_line(tmp_path, capsys, extra, message):
    assert main(["search", "--data", "synthetic", *extra, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


def test_one_budget_in_the_list_is_a_plain_search():
    from autoprune.search import SearchConfig

    c = SearchConfig(budgets=["40%"]).validate()
    assert c.budget == "40%" and c.budgets == [] and np.isfinite(Budget.parse(c.budget, "flops", 1.0).value)


def test_pipeline_refuses_several_budgets_before_any_work(tmp_path, capsys):
    assert main(["pipeline", "--data", "synthetic", "--budgets", "30%,50%", "--out", str(tmp_path / "p")]) == 2
    assert "search --budgets" in capsys.readouterr().err and not (tmp_path / "p").exists()
