import contextlib
import io
import json
from types import SimpleNamespace

import pandas as pd
import pytest
from conftest import tiny_search

from autoprune.cli.main import main
from autoprune.latency import Alongside
from autoprune.policy import PruningPolicy
from autoprune.search import SearchConfig, SearchRun, read_history

TINY = tiny_search("40%", finish=True)


def run_cli(*args):
    """The CLI in this process (what a shell would see: exit code, stdout, stderr)."""
    from autoprune.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return SimpleNamespace(returncode=code, stdout=out.getvalue(), stderr=err.getvalue())


def test_cli_search_completes_and_resumes(tmp_path):
    out = tmp_path / "run"
    first = run_cli("search", *TINY, "--agent", "amc-ddpg", "--preset", "quick",
                    "--agent-param", "warmup_episodes=3", "--episodes", "6", "--out", str(out))
    assert first.returncode == 0, first.stderr
    assert "best: val accuracy" in first.stdout
    for name in ("config.yaml", "command.txt", "history.csv", "best_policy.json", "summary.json",
                 "agent/agent.json"):
        assert (out / name).is_file(), name
    state = json.loads((out / "agent" / "agent.json").read_text())["state"]
    assert (out / "agent" / state / "agent.zip").is_file() and len(list((out / "agent").glob("state-*"))) == 1
    assert len(read_history(out / "history.csv")) == 6
    again = run_cli("search", *TINY, "--episodes", "6", "--out", str(out))
    assert again.returncode == 2 and "pass --resume" in again.stderr and "Traceback" not in again.stderr
    resumed = run_cli("search", "--resume", "--episodes", "10", "--out", str(out))
    assert resumed.returncode == 0, resumed.stderr
    history = read_history(out / "history.csv")
    assert list(history["episode"]) == list(range(10))
    policy = json.loads((out / "best_policy.json").read_text())
    reranked = pd.read_csv(out / "rerank.csv")  # the best policy is the best after the short fine-tune
    assert policy["score"]["episode"] == reranked.loc[0, "episode"]
    assert policy["score"]["val_finetuned"] == reranked["finetuned"].max()
    assert reranked.loc[0, "score"] == history.loc[history["episode"] == reranked.loc[0, "episode"], "score"].item()
    assert policy["budget"]["fraction"] == pytest.approx(0.4)
    assert all(history["cost"] <= policy["budget"]["value"])


def config(tmp_path, agent, name, **kw):
    return SearchConfig(model="mlp", data="synthetic", cost_model="flops", budget="40%", agent=agent,
                        preset="quick", agent_params={} if agent in ("random", "uniform", "cmaes") else {"warmup_episodes": 2},
                        episodes=5, val_size=64,
                        bn_batches=1, out=str(tmp_path / name), **kw)


def test_a_history_from_before_the_score_column_had_its_name_resumes_as_it_is(tmp_path, splits):
    cfg = config(tmp_path, "random", "old")
    SearchRun(cfg, splits=splits, progress=False).run()
    path = tmp_path / "old" / "history.csv"
    header, rest = path.read_text().split("\n", 1)
    path.write_text(header.replace("episode,score,", "episode,accuracy,") + "\n" + rest)  # an earlier version's file
    cfg.episodes = 8
    summary = SearchRun(cfg, splits=splits, progress=False).run(resume=True)
    assert path.read_text().startswith("episode,accuracy,")  # its header kept, its new rows under it
    history = read_history(path)
    assert len(history) == 8 and history["score"].notna().all() and "accuracy" not in history
    assert summary["best"]["score"] == pytest.approx(history["score"].max())


@pytest.mark.parametrize("agent", ["random", "amc-ddpg"])
def test_same_seed_same_history(tmp_path, splits, agent):
    frames = []
    for name in ("a", "b"):
        SearchRun(config(tmp_path, agent, name), splits=splits, progress=False).run()
        frames.append(read_history(tmp_path / name / "history.csv").drop(columns=["score_s", "wall_s"]))
    pd.testing.assert_frame_equal(frames[0], frames[1])


def test_best_policy_reapplies_to_the_model(tmp_path, splits):
    run = SearchRun(config(tmp_path, "random", "r"), splits=splits, progress=False)
    summary = run.run()
    policy = PruningPolicy.load(tmp_path / "r" / "best_policy.json", run.analysis)
    assert policy.architecture(run.analysis) == json.loads(
        read_history(tmp_path / "r" / "history.csv").loc[summary["best"]["episode"], "kept"])
    assert policy.predicted_cost["flops"] <= policy.budget["value"]


def test_interrupted_history_line_is_repaired(tmp_path, splits):
    cfg = config(tmp_path, "random", "cut")
    SearchRun(cfg, splits=splits, progress=False).run()
    path = tmp_path / "cut" / "history.csv"
    path.write_text(path.read_text() + "5,0.3,0.3,123")  # a row cut short by a crash
    cfg.episodes = 7
    SearchRun(cfg, splits=splits, progress=False).run(resume=True)
    assert list(read_history(path)["episode"]) == list(range(7))


def test_resume_without_a_run_says_so(tmp_path, capsys):
    assert main(["search", "--resume", "--out", str(tmp_path / "none")]) == 2
    assert "no search to resume" in capsys.readouterr().err


def test_missing_weights_for_real_data(tmp_path, capsys):
    code = main(["search", "--model", "vgg_small", "--cost-model", "flops", "--out", str(tmp_path / "v"),
                 "--data-dir", str(tmp_path)])
    assert code == 2 and "Fashion-MNIST not found" in capsys.readouterr().err


@pytest.mark.slow
def test_parallel_envs_search_and_resume(tmp_path):
    """TD3 playing two episodes at a time, each environment in a worker process; the same with the
    environments here and their candidates scored on two pooled workers gives the same history."""
    out = tmp_path / "par"
    settings = [*TINY, "--agent", "td3", "--preset", "quick", "--agent-param", "warmup_episodes=2", "--n-envs", "2",
                "--episodes", "6"]
    first = run_cli("search", *settings, "--out", str(out))
    assert first.returncode == 0, first.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_envs"] == 2 and summary["scoring_s"] > 0
    assert main(["-q", "search", *settings, "--executor", "processes", "--workers", "2", "--out", str(tmp_path / "pool")]) == 0
    timing = ["score_s", "wall_s"]
    assert read_history(out / "history.csv").drop(columns=timing).equals(
        read_history(tmp_path / "pool" / "history.csv").drop(columns=timing))
    resumed = run_cli("search", "--resume", "--episodes", "10", "--out", str(out))
    assert resumed.returncode == 0, resumed.stderr
    history = read_history(out / "history.csv")
    assert list(history["episode"]) == list(range(10)) and history["feasible"].all()
    assert list(history["source"][:3]) == ["seed:uniform", "seed:global-magnitude", "seed:knapsack"]
    saved = json.loads((out / "agent" / "agent.json").read_text())
    assert saved["num_timesteps"] >= (10 - 3) * 2  # the agent's episodes, two groups each, over both envs


@pytest.fixture(scope="module")
def mlp_table(tmp_path_factory):
    import torch

    from autoprune.analysis import analyse_model
    from autoprune.costs import profile_latency_table
    from autoprune.latency import LatencySettings
    from autoprune.models import create_model

    analysis = analyse_model(create_model("mlp"), torch.randn(1, 1, 28, 28))
    path = tmp_path_factory.mktemp("table") / "mlp.csv"
    profile_latency_table(analysis, "mlp", round_to=8, settings=LatencySettings(warmup=2, repeats=5),
                          calibration_samples=3, progress=False).save(path)
    return path


def table_budget(table) -> str:
    """A latency budget halfway between the table's floor (every group at its narrowest width the
    search allows) and the dense latency: reachable however busy the machine was when the table
    was profiled (a loaded machine times a larger fixed share per layer)."""
    import torch

    from autoprune.analysis import analyse_model
    from autoprune.budget import Budget
    from autoprune.costs import LookupTableCostModel
    from autoprune.envs.budget import BudgetWall
    from autoprune.models import create_model
    from autoprune.search.config import DEFAULT_ROUND_TO

    c = SearchConfig()
    analysis = analyse_model(create_model("mlp"), torch.randn(1, 1, 28, 28))
    n = len(analysis.groups)
    cost = LookupTableCostModel(analysis, str(table))
    dense = Budget.from_spec(cost, "100%")
    floor = BudgetWall(analysis.groups, cost, dense, [c.min_ratio] * n, [c.max_ratio] * n,
                       DEFAULT_ROUND_TO).smallest_cost()
    return f"{100 * (1 + floor / dense.value) / 2:.1f}%"


def test_best_candidate_over_budget_on_this_machine_is_replaced(tmp_path, splits, mlp_table, monkeypatch):
    import autoprune.search.timing as verify
    from autoprune.costs import LookupTableCostModel

    class Measured:  # this machine: the most accurate candidate is slow, every other one fast
        def __init__(self, analysis, settings):
            self.table = LookupTableCostModel(analysis, mlp_table)

        slow = None

        def latencies(self, archs):
            assert archs[-1] == {}  # the dense model, timed in the same passes
            Measured.slow = archs[0]
            return [1e9] + [1e-6] * (len(archs) - 2) + [1.0]

        def shares_of(self, archs, reference):  # timed again beside the one that fits: still slow
            if reference == {}:  # the check before the search: the table holds for this machine
                return Alongside([self.table.latency(a) / self.table.measured_dense() for a in archs], [], 0.0)
            assert archs == [Measured.slow] and reference != Measured.slow
            return Alongside([1e9], [1e9], 0.0)

    monkeypatch.setattr(verify, "MeasuredLatencyCostModel", Measured)
    cfg = config(tmp_path, "random", "v", rerank_top=0)
    cfg.cost_model, cfg.table, cfg.budget, cfg.episodes = "lut", str(mlp_table), table_budget(mlp_table), 12
    summary = SearchRun(cfg, splits=splits, progress=False).run()
    checked = pd.read_csv(tmp_path / "v" / "verification.csv")
    history = read_history(tmp_path / "v" / "history.csv")
    assert len(checked) >= 2 and list(checked["fits"]) == [False] + [True] * (len(checked) - 1)
    assert checked["score"].is_monotonic_decreasing and checked.loc[0, "score"] == history["score"].max()
    assert summary["verification"]["chosen_episode"] == checked.loc[1, "episode"] == summary["best"]["episode"]
    assert summary["verification"]["retimed"] == 1 and checked.loc[0, "retimed_against"] == checked.loc[1, "episode"]
    policy = json.loads((tmp_path / "v" / "best_policy.json").read_text())
    assert policy["score"]["episode"] == checked.loc[1, "episode"]
    # with the second stage on, the re-ranked best is still one that measured within budget
    cfg = config(tmp_path, "random", "v2")
    cfg.cost_model, cfg.table, cfg.budget, cfg.episodes = "lut", str(mlp_table), table_budget(mlp_table), 12
    summary = SearchRun(cfg, splits=splits, progress=False).run()
    checked = pd.read_csv(tmp_path / "v2" / "verification.csv")
    reranked = pd.read_csv(tmp_path / "v2" / "rerank.csv")
    assert set(reranked["episode"]) <= set(checked.loc[checked["fits"], "episode"])
    assert summary["best"]["episode"] == summary["rerank"]["chosen_episode"] == reranked.loc[0, "episode"]


def test_a_machine_slow_during_verification_does_not_veto_the_candidates(tmp_path, splits, mlp_table,
                                                                       monkeypatch):
    import autoprune.search.timing as verify
    from autoprune.costs import LookupTableCostModel

    class Busy:  # this machine runs 40 % slow for the whole verification: every reading, dense too
        def __init__(self, analysis, settings):
            self.table = LookupTableCostModel(analysis, mlp_table)

        def latencies(self, archs):  # the dense model as measured when the table was profiled, 40 % slow
            return [1.4 * (self.table.measured_dense() if a == {} else self.table.latency(a)) for a in archs]

        def shares_of(self, archs, reference):  # beside the dense model: both as slow, the table's shares
            assert reference == {}
            return Alongside([self.table.latency(a) / self.table.measured_dense() for a in archs], [], 0.0)

    monkeypatch.setattr(verify, "MeasuredLatencyCostModel", Busy)
    cfg = config(tmp_path, "random", "busy", rerank_top=0)
    cfg.cost_model, cfg.table, cfg.budget, cfg.episodes = "lut", str(mlp_table), table_budget(mlp_table), 8
    summary = SearchRun(cfg, splits=splits, progress=False).run()
    checked = pd.read_csv(tmp_path / "busy" / "verification.csv")
    assert (checked["measured_ms"] > summary["verification"]["budget_ms"] * 1.05).any()  # raw readings over
    assert checked["fits"].all() and summary["verification"]["machine_speed"] == pytest.approx(1 / 1.4, rel=1e-3)
    assert summary["table_check"]["measured_over_predicted"] == pytest.approx(1.0, rel=1e-3)  # a slow machine,
    assert "suggested_budget" not in summary["table_check"]  # not a wrong table: no warning before the search
    assert summary["verification"]["chosen_episode"] == checked.loc[0, "episode"]


def test_a_speed_switch_during_verification_does_not_reject_the_best_candidates(tmp_path, splits, mlp_table,
                                                                              monkeypatch):
    import autoprune.search.timing as verify
    from autoprune.costs import LookupTableCostModel

    class Switching:  # 1.6x slow while the first half of the candidates is timed, back to speed after
        def __init__(self, analysis, settings):
            self.table = LookupTableCostModel(analysis, mlp_table)

        def latencies(self, archs):
            *archs, dense = archs
            slow = (len(archs) + 1) // 2
            return [(1.6 if i < slow else 1.0) * self.table.latency(a) for i, a in enumerate(archs)] + [
                self.table.measured_dense()]

        def shares_of(self, archs, reference):  # beside the reference, each as fast as the table says
            shares = [self.table.latency(a) / self.table.latency(reference) for a in archs]
            return Alongside(shares, [self.table.latency(a) for a in archs], self.table.latency(reference))

    monkeypatch.setattr(verify, "MeasuredLatencyCostModel", Switching)
    cfg = config(tmp_path, "random", "switch", rerank_top=0, verify_top=4)
    cfg.cost_model, cfg.table, cfg.budget, cfg.episodes = "lut", str(mlp_table), table_budget(mlp_table), 10
    summary = SearchRun(cfg, splits=splits, progress=False).run()
    checked = pd.read_csv(tmp_path / "switch" / "verification.csv")
    first_half = checked.iloc[:(len(checked) + 1) // 2]
    assert len(checked) >= 3 and (first_half["measured_ms"] > 1.55 * first_half["latency_ms"]).all()
    again = checked[checked["retimed_against"].notna()]
    assert 0 in again.index and summary["verification"]["retimed"] == len(again)  # the best one read over
    assert checked["fits"].all() and summary["verification"]["chosen_episode"] == checked.loc[0, "episode"]
    assert summary["best"]["episode"] == checked.loc[0, "episode"]


def test_when_no_candidate_fits_this_machine_the_warning_names_a_budget_that_would(tmp_path, splits, mlp_table,
                                                                                   monkeypatch, capsys):
    import autoprune.search.timing as verify
    from autoprune.budget import BudgetSpec
    from autoprune.costs import LookupTableCostModel

    class Slow:  # a stale table: this machine runs every pruned candidate 1.15x its prediction
        def __init__(self, analysis, settings):
            self.table = LookupTableCostModel(analysis, mlp_table)

        def latencies(self, archs):
            return [self.table.measured_dense() if a == {} else 1.15 * self.table.latency(a) for a in archs]

        def shares_of(self, archs, reference):
            assert reference == {}
            return Alongside([1.15 * self.table.latency(a) / self.table.measured_dense() for a in archs], [], 0.0)

    monkeypatch.setattr(verify, "MeasuredLatencyCostModel", Slow)
    cfg = config(tmp_path, "random", "stale", rerank_top=0)
    cfg.cost_model, cfg.table, cfg.budget, cfg.episodes = "lut", str(mlp_table), table_budget(mlp_table), 8
    summary = SearchRun(cfg, splits=splits, progress=False).run()
    found, early = summary["verification"], summary["table_check"]
    assert early["measured_over_predicted"] == pytest.approx(1.15, rel=1e-3)  # said before the first episode
    assert early["suggested_budget"] == BudgetSpec.parse(cfg.budget).tightened(1.15)
    assert found["chosen_episode"] is None and found["measured_over_predicted"] == pytest.approx(1.15, rel=1e-3)
    assert found["suggested_budget"] == BudgetSpec.parse(cfg.budget).tightened(1.15)
    assert float(found["suggested_budget"][:-1]) < float(cfg.budget[:-1]) / 1.15
    printed = capsys.readouterr()
    said = printed.out + printed.err
    assert f"search with --budget {found['suggested_budget']}" in said
    assert said.index("this machine runs an architecture at the budget 1.15x") < said.index("none of the")
    cfg.budget, cfg.out = found["suggested_budget"], str(tmp_path / "again")  # the advice, on the same machine
    SearchRun(cfg, splits=splits, progress=False).run()
    timed = pd.read_csv(tmp_path / "again" / "verification.csv")  # on the table's clock, as the first search's
    assert (timed["adjusted_ms"] <= found["budget_ms"]).all()  # within the budget first asked for, no tolerance


def test_verification_is_skipped_where_it_cannot_hold(tmp_path, splits, mlp_table):
    flops = SearchRun(config(tmp_path, "random", "f"), splits=splits, progress=False).run()
    assert "not measured latency" in flops["verification"]["skipped"]
    cfg = config(tmp_path, "random", "off", verify_top=0)
    cfg.cost_model, cfg.table, cfg.budget = "lut", str(mlp_table), table_budget(mlp_table)
    assert "switched off" in SearchRun(cfg, splits=splits, progress=False).run()["verification"]["skipped"]
    moved = tmp_path / "elsewhere.csv"
    moved.write_text(mlp_table.read_text().replace('"cores": ', '"cores": 1000', 1))
    cfg = config(tmp_path, "random", "moved")
    cfg.cost_model, cfg.table, cfg.budget = "lut", str(moved), table_budget(mlp_table)
    assert "not on this machine" in SearchRun(cfg, splits=splits, progress=False).run()["verification"]["skipped"]
    assert not (tmp_path / "moved" / "verification.csv").exists()


def test_search_best_is_never_worse_than_its_seeds(tmp_path, splits):
    cfg = config(tmp_path, "random", "seeded", rerank_top=0)
    cfg.episodes = 8
    summary = SearchRun(cfg, splits=splits, progress=False).run()
    history = read_history(tmp_path / "seeded" / "history.csv")
    seeds = history[history["source"].str.startswith("seed:")]
    assert list(seeds["episode"]) == [0, 1, 2]
    assert summary["best"]["score"] >= seeds["score"].max()


def test_second_stage_ranks_a_known_better_candidate_first(splits):
    """Two candidates: the same widths, one with its best channels ranked away (scrambled ranking):
    the short fine-tune must put the one with the kept, trained channels first."""
    import torch

    from autoprune.analysis import analyse_model
    from autoprune.checkpoint import load_or_create
    from autoprune.evaluation import CandidateEvaluator
    from autoprune.pruning import rank_channels
    from autoprune.training import TrainConfig, train

    torch.manual_seed(0)
    model = load_or_create("mlp", None, require_weights=False)
    train(model, lambda e: splits.train(64, seed=e), TrainConfig(epochs=2, lr=0.05, augment=False), progress=False)
    analysis = analyse_model(model.eval(), torch.randn(1, *splits.input_shape))
    good = rank_channels(analysis, "l1")
    bad = {n: r.flip(0) for n, r in good.items()}  # keeps the least important channels
    kept = {g.name: max(1, g.channels // 8) for g in analysis.groups}
    scores = [CandidateEvaluator(analysis, r, splits, 256, 2).finetuned(kept, 30) for r in (good, bad)]
    assert scores[0] > scores[1], scores


def test_report_and_its_plots_are_written_and_referenced(tmp_path, splits):
    cfg = config(tmp_path, "amc-ddpg", "rep")
    cfg.episodes = 6
    SearchRun(cfg, splits=splits, progress=False).run()
    folder = tmp_path / "rep"
    text = (folder / "report.md").read_text()
    images = [line[line.index("(") + 1:-1] for line in text.splitlines() if line.startswith("![")]
    assert {"progress.png", "candidates.png", "ratios.png"} <= set(images)
    assert all((folder / name).stat().st_size > 1000 for name in images)
    policy = json.loads((folder / "best_policy.json").read_text())
    assert all(f"`{g}`" in text for g in policy["ratios"]) and "agent: amc-ddpg" in text
    assert (folder / "sb3_log" / "progress.csv").is_file()  # SB3's own logger, in the run folder


def test_cmaes_search_resumed_equals_an_uninterrupted_one(tmp_path, splits):
    frames = []
    for name, stops in (("whole", [10]), ("parts", [6, 10])):
        for i, episodes in enumerate(stops):
            cfg = config(tmp_path, "cmaes", name, rerank_top=0)
            cfg.episodes = episodes
            SearchRun(cfg, splits=splits, progress=False).run(resume=i > 0)
        frames.append(read_history(tmp_path / name / "history.csv").drop(columns=["score_s", "wall_s"]))
    pd.testing.assert_frame_equal(frames[0], frames[1])
    assert list(frames[0]["source"][3:]) == ["cmaes"] * 7


def test_settings_from_a_config_file_and_the_command_line_wins(tmp_path):
    import yaml

    (tmp_path / "s.yaml").write_text(yaml.safe_dump({
        "model": "mlp", "data": "synthetic", "cost_model": "flops", "budget": "40%", "val_size": 64, "bn_batches": 1,
        "agent": "td3", "preset": "quick", "episodes": 3, "rerank_top": 0, "seeds": [],
        "agent_params": {"warmup_episodes": 1}, "out": str(tmp_path / "from_file")}))
    assert main(["search", "--config", str(tmp_path / "s.yaml"), "--budget", "60%"]) == 0
    run = tmp_path / "from_file"  # the file's folder: --out was left at its default
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["budget"] == "60%" and saved["agent"] == "td3" and saved["episodes"] == 3
    params = yaml.safe_load((run / "agent_params.yaml").read_text())
    assert params["agent"] == "td3" and params["preset"] == "quick"
    assert params["params"]["warmup_episodes"] == 1 and "learning_rate" in params["params"]  # the preset, resolved
    assert main(["search", "--config", str(tmp_path / "s.yaml"), "--out", str(tmp_path / "given")]) == 0
    assert (tmp_path / "given" / "history.csv").is_file()


def test_a_bad_config_file_is_one_line(tmp_path, capsys):
    (tmp_path / "bad.yaml").write_text("budgett: 50%\n")
    assert main(["search", "--config", str(tmp_path / "bad.yaml"), "--out", str(tmp_path / "r")]) == 2
    assert "unknown setting 'budgett'" in capsys.readouterr().err
    assert main(["search", "--config", str(tmp_path / "none.yaml"), "--out", str(tmp_path / "r")]) == 2
    assert not (tmp_path / "r").exists()


def test_a_pipeline_reads_its_history_file_at_most_once(tmp_path, monkeypatch):
    """The search keeps its history in memory: verification, re-ranking, refinement, the report and
    the pipeline's later stages never read history.csv back (a resume reads it once)."""
    import autoprune.search.history as history_module
    import autoprune.search.report as report_module
    import autoprune.search.run as run_module

    calls = []

    def counting(path):
        calls.append(path)
        return history_module.read_history(path)

    for module in (run_module, report_module):
        monkeypatch.setattr(module, "read_history", counting)
    common = ["-q", "pipeline", *TINY, "--agent", "random", "--rerank-top", "2", "--rerank-steps", "2", "--refine", "2",
              "--epochs", "1", "--out", str(tmp_path / "p")]
    assert run_cli(*common[1:], "--episodes", "6").returncode == 0
    assert calls == []
    (tmp_path / "p" / "finetune" / "finetune.json").unlink()
    assert run_cli("pipeline", "--resume", "--episodes", "8", "--out", str(tmp_path / "p")).returncode == 0
    assert len(calls) == 1  # the resumed search's one read
    search = tmp_path / "p" / "search"
    run = SearchRun(SearchConfig.load(search / "config.yaml"), progress=False)
    assert run.run(resume=True) and len(calls) == 2
    pd.testing.assert_frame_equal(run.writer.frame(), history_module.read_history(search / "history.csv"))


def test_a_search_validates_its_settings_and_builds_its_agent_once(tmp_path, monkeypatch):
    """The command line validates before it names a folder and the search again when it starts: the
    second validation of the unchanged config repeats nothing (the agent is checked once, built once)."""
    import autoprune.agents.sb3 as sb3_module
    import autoprune.search.run as run_module
    from autoprune.errors import ConfigError

    checks, created = [], []
    real_check, real_create = sb3_module.SB3Searcher.check, run_module.create_searcher
    monkeypatch.setattr(sb3_module.SB3Searcher, "check", lambda self: checks.append(1) or real_check(self))
    monkeypatch.setattr(run_module, "create_searcher", lambda *a, **k: created.append(1) or real_create(*a, **k))
    assert run_cli("search", *TINY, "--agent", "amc-ddpg", "--preset", "quick", "--episodes", "3", "--rerank-top", "0",
                   "--out", str(tmp_path / "run")).returncode == 0
    assert (len(checks), len(created)) == (1, 1)
    config = SearchConfig(model="mlp", data="synthetic", agent="amc-ddpg", preset="quick").validate()
    config.episodes = 0  # a changed config is validated again
    with pytest.raises(ConfigError, match="--episodes"):
        config.validate()


def test_a_finished_search_writes_its_summary_once(tmp_path, monkeypatch):
    import autoprune.search.run as run_module

    written = []
    real = run_module.write_json_atomic
    monkeypatch.setattr(run_module, "write_json_atomic", lambda path, data: written.append(path.name) or real(path, data))
    assert run_cli("search", *TINY, "--agent", "random", "--episodes", "4", "--rerank-top", "2", "--rerank-steps", "2",
                   "--out", str(tmp_path / "run")).returncode == 0
    assert written.count("summary.json") == 1
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert {"verification", "rerank", "best", "wall_s"} <= set(summary)
