"""Channel-Bench-Macro: the two spaces as built-in models, listed widths in every searcher, and
table scoring through the real search path (a table generated here; the published one is not
part of the project)."""

import itertools
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from autoprune.analysis import analyse_model
from autoprune.analysis.architecture import layer_channels
from autoprune.channel_bench import ChannelBenchTable, TableScore
from autoprune.cli.main import main
from autoprune.costs import FlopsCostModel
from autoprune.models import create_model
from autoprune.models.channel_bench import SPACES
from autoprune.search import read_history

KEYS = ["".join(k) for k in itertools.product("1234", repeat=7)]
PUBLISHED = Path(os.environ.get("CHANNEL_BENCH_MACRO", Path(__file__).resolve().parents[2] / "shared" / "data"
                                / "channel_bench_macro"))


def closed_form_flops(space: str, key: str) -> int:
    """Multiply-adds written from the paper's structure tables (32x32 input, stride-2 stem)."""
    c = [round(int(d) * m / 4) for d, m in zip(key, SPACES[space].maxima)]
    a, b = 16 * 16, 8 * 8  # feature-map areas before and after the stride-2 block
    if space == "mobilenet":
        blocks = sum(c[0] * h * a + 9 * h * a + h * c[0] * a for h in (c[1], c[2]))
        return (27 * c[0] * a + blocks + c[0] * c[3] * a + 9 * c[3] * b + c[3] * c[4] * b
                + 2 * c[4] * c[5] * b + 9 * c[5] * b + c[4] * c[6] * b + c[6] * 10)
    return (27 * c[0] * a + sum(18 * c[0] * h * a for h in (c[1], c[2])) + 9 * c[0] * c[3] * b
            + 9 * c[3] * c[4] * b + sum(18 * c[4] * h * b for h in (c[5], c[6])) + c[4] * 10)


def architectures(space: str):
    """The analysis of the full net and, per key, (FLOPs, parameters as the table counts them)."""
    analysis = analyse_model(create_model(SPACES[space].model, in_channels=3), torch.zeros(1, 3, 32, 32))
    flops = FlopsCostModel(analysis.layers)
    out = {}
    for key in KEYS:
        kept = SPACES[space].kept(key)
        cost = flops.cost(kept)
        bn = sum(layer_channels(spec, kept)[1] for spec in analysis.layers if spec.kind != "linear")
        out[key] = (cost.flops, cost.params + 2 * bn + 10)  # the table counts BN's affine and the classifier bias
    return analysis, out


@pytest.mark.parametrize("space", sorted(SPACES))
def test_every_architecture_of_both_spaces_has_seven_groups_and_the_tables_flops_and_params(space):
    analysis, counted = architectures(space)
    assert analysis.group_names == list(SPACES[space].groups)
    assert [g.channels for g in analysis.groups] == list(SPACES[space].maxima)
    assert all(counted[k][0] == closed_form_flops(space, k) for k in KEYS)
    assert counted["4444444"][1] == sum(p.numel() for p in analysis.model.parameters())
    table = PUBLISHED / f"Results_{'MobileNet' if space == 'mobilenet' else 'ResNet'}.json"
    if table.is_file():  # the published table, where it lies on this machine
        published = json.loads(table.read_text())
        assert all((published[k]["flops"], published[k]["params"]) == counted[k] for k in KEYS)


def test_keys_and_kept_channels_map_both_ways():
    for space in SPACES.values():
        for key in ("1111111", "4321234", "4444444"):
            assert space.key(space.kept(key)) == key
        assert space.key({**space.kept("1111111"), space.groups[0]: 5}) is None


@pytest.fixture(scope="module")
def fake_table(tmp_path_factory):
    """A table of the MobileNet space with made-up accuracies (exact FLOPs and parameters)."""
    _, counted = architectures("mobilenet")
    rng = np.random.default_rng(0)
    data = {}
    for key in KEYS:
        base = 85 + sum(int(d) for d in key) / 4 + rng.normal(0, 0.2)
        acc = [float(base + rng.normal(0, 0.3)) for _ in range(3)]
        data[key] = {"acc": acc, "mean": float(np.mean(acc)), "std": float(np.std(acc)),
                     "flops": counted[key][0], "params": counted[key][1]}
    path = tmp_path_factory.mktemp("cbm") / "Results_MobileNet.json"
    path.write_text(json.dumps(data))
    return path


def _search(table, out, agent="random", episodes=12, *extra):
    return main(["-q", "search", "--model", "cbm_mobilenet", "--score", f"channel-bench:{table}",
                 "--cost-model", "flops", "--budget", "50%", "--widths", "0.25,0.5,0.75,1.0", "--agent", agent,
                 "--episodes", str(episodes), "--rerank-by", "requery", "--rerank-top", "3", "--verify-top", "0",
                 "--max-ratio", "0.75", "--seeds", "uniform", *extra, "--out", str(out)])


def test_table_scores_are_noisy_reproducible_draws(fake_table):
    table = ChannelBenchTable(fake_table)
    assert table.space is SPACES["mobilenet"]
    kept = SPACES["mobilenet"].kept("2343242")
    draws = [TableScore(table, seed=3).of_architecture(kept, repeat=r) for r in range(12)]
    assert set(draws) <= {a / 100 for a in table.entries["2343242"].acc} and len(set(draws)) > 1
    assert draws == [TableScore(table, seed=3).of_architecture(kept, repeat=r) for r in range(12)]
    score = TableScore(table, seed=3)
    assert [score.of_architecture(kept) for _ in range(4)] == draws[:4]  # asking again draws the next run
    pruned = create_model("cbm_mobilenet", in_channels=3)  # read from a model: its layers' widths
    assert TableScore(table, seed=3)(pruned, []) == table.run("4444444", 3, 0) / 100


@pytest.mark.parametrize("agent", ["random", "evolution", "reinforce", "thompson",
                                   pytest.param("cmaes", marks=pytest.mark.slow)])
def test_a_seeded_table_search_is_deterministic_and_resumes_exactly(fake_table, tmp_path, agent):
    extra = ["--agent-param", "warmup=6"] if agent == "thompson" else []  # re-queries and the model before 14
    assert _search(fake_table, tmp_path / "a", agent, 30, *extra) == 0
    assert _search(fake_table, tmp_path / "b", agent, 30, *extra) == 0
    assert _search(fake_table, tmp_path / "c", agent, 14, *extra) == 0  # stopped part-way, then resumed
    assert main(["-q", "search", "--resume", "--episodes", "30", "--out", str(tmp_path / "c")]) == 0
    histories = [read_history(tmp_path / run / "history.csv").drop(columns=["score_s", "wall_s"]) for run in "abc"]
    pd.testing.assert_frame_equal(histories[0], histories[1])
    pd.testing.assert_frame_equal(histories[0], histories[2])
    policies = [json.loads((tmp_path / run / "best_policy.json").read_text())["channels"] for run in "abc"]
    assert policies[0] == policies[1] == policies[2]


@pytest.mark.parametrize("agent", ["random", "cmaes", "evolution", "reinforce", "thompson", "uniform", "knapsack",
                                   "global-magnitude", "amc-ddpg", "td3", "sac", "ppo"])
def test_every_searcher_keeps_to_the_listed_widths_and_the_budget(tmp_path, agent):
    extra = ["--preset", "quick", "--agent-param", "warmup_episodes=4"] if agent in ("amc-ddpg", "td3", "sac") else []
    extra += ["--preset", "quick"] if agent == "ppo" else []
    extra += ["--agent-param", "warmup=4"] if agent == "thompson" else []
    assert main(["-q", "search", "--model", "mlp", "--data", "synthetic", "--cost-model", "flops", "--budget", "45%",
                 "--widths", "0.25,0.5,0.75,1.0", "--agent", agent, "--episodes", "12", "--val-size", "64",
                 "--bn-batches", "1", "--rerank-top", "2", "--verify-top", "0", *extra, "--out", str(tmp_path / "s")]) == 0
    history = read_history(tmp_path / "s" / "history.csv")
    allowed = json.loads((tmp_path / "s" / "best_policy.json").read_text())["widths"]
    for kept in history["kept"]:
        assert all(n in allowed[g] for g, n in json.loads(kept).items())
    assert history["feasible"].all() and (history["cost"] <= history["budget"]).all()


def test_the_projection_lands_on_listed_widths(tiny_analysis):
    from autoprune.budget import Budget
    from autoprune.envs.budget import BudgetWall
    from autoprune.envs.projection import BudgetProjection
    from autoprune.pruning.widths import WidthChoices

    groups = tiny_analysis.groups
    choices = WidthChoices.listing(groups, [0.25, 0.5, 1.0])
    cost = FlopsCostModel(tiny_analysis.layers)
    budget = Budget("flops", 0.45 * cost.dense_cost().flops, cost.dense_cost().flops)
    projection = BudgetProjection(BudgetWall(groups, cost, budget, [0.0] * len(groups), [0.9] * len(groups),
                                             choices=choices))
    rng = np.random.default_rng(0)
    for _ in range(50):
        proposal = {g.name: int(rng.integers(1, g.channels + 1)) for g in groups}
        kept = projection.project(proposal)
        assert all(kept[g.name] in choices.levels[g.name] for g in groups)
        assert budget.fits(cost.cost(kept).flops)


def test_widths_options_are_checked(capsys, tmp_path):
    for widths, message in (("0.5,abc", "--widths takes"), ("0,0.5", "fraction in (0, 1]"), ("2.5", "whole")):
        assert main(["search", "--data", "synthetic", "--widths", widths, "--out", str(tmp_path / "o")]) == 2
        assert message in capsys.readouterr().err


def test_a_warm_start_begins_from_the_earlier_searchs_best_architectures(fake_table, tmp_path, capsys):
    """Evolution warm-started from a front search proposes children of its best architectures near
    the new budget from the first episode (no random generation), and resumes exactly; a searcher
    that cannot start from scores, a folder that is not a search, or another score is refused."""
    common = ["--model", "cbm_mobilenet", "--score", f"channel-bench:{fake_table}", "--cost-model", "flops",
              "--widths", "0.25,0.5,0.75,1.0", "--rerank-top", "0", "--verify-top", "0", "--max-ratio", "0.75",
              "--seeds", "uniform"]
    assert main(["-q", "search", *common, "--budgets", "30%", "50%", "--agent", "evolution", "--episodes", "20",
                 "--out", str(tmp_path / "front")]) == 0
    warm = ["--budget", "40%", "--agent", "evolution", "--agent-param", "population=6", "--warm-start",
            str(tmp_path / "front")]
    assert main(["-q", "search", *common, *warm, "--episodes", "12", "--out", str(tmp_path / "w")]) == 0
    assert main(["-q", "search", *common, *warm, "--episodes", "5", "--out", str(tmp_path / "r")]) == 0
    assert main(["-q", "search", "--resume", "--episodes", "12", "--out", str(tmp_path / "r")]) == 0
    cold = ["--budget", "40%", "--agent", "evolution", "--agent-param", "population=6"]
    assert main(["-q", "search", *common, *cold, "--episodes", "12", "--out", str(tmp_path / "c")]) == 0
    warmed, resumed, coldly = (read_history(tmp_path / run / "history.csv") for run in "wrc")
    timing = ["score_s", "wall_s"]
    pd.testing.assert_frame_equal(warmed.drop(columns=timing), resumed.drop(columns=timing))
    first = [h[h["source"] == "evolution"]["score"].head(6).mean() for h in (warmed, coldly)]
    assert first[0] > first[1], first  # children of the earlier best, not a random first generation
    front = str(tmp_path / "front")
    for bad, message in ((["--agent", "random", "--warm-start", front], "needs a searcher that starts from scored"),
                         (["--agent", "evolution", "--warm-start", str(tmp_path)], "is not a search's run folder"),
                         (["--agent", "evolution", "--warm-start", front, "--model", "cbm_resnet"],
                          "searched with another model")):
        assert main(["-q", "search", *common, "--budget", "40%", "--episodes", "5", *bad,
                     "--out", str(tmp_path / "bad")]) == 2
        assert message in capsys.readouterr().err
