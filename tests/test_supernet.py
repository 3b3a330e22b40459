"""The once-for-all width supernet: slices equal pruned models, samples stay in the space and the
budgets, scoring is deterministic, training resumes exactly, and a search scores with it."""

import copy

import numpy as np
import pandas as pd
import pytest
import torch

from autoprune.cli.main import main
from autoprune.costs import FlopsCostModel
from autoprune.data import synthetic_splits
from autoprune.dynamic.model import DynamicModel
from autoprune.dynamic.supernet import (
    SupernetScorer,
    SupernetSettings,
    read_supernet,
    train_supernet,
)
from autoprune.pruning import rank_channels
from autoprune.pruning.physical import prune_physically
from autoprune.pruning.widths import WidthChoices
from autoprune.search import read_history
from autoprune.search.supernet import ArchitectureSampler


def _sampler(analysis, widths=(0.25, 0.5, 0.75, 1.0), low=0.3, high=0.6):
    choices = WidthChoices.listing(analysis.groups, list(widths))
    return ArchitectureSampler(analysis, FlopsCostModel(analysis.layers), choices, low, high), choices


def test_a_slice_of_the_untrained_supernet_is_the_separately_pruned_model(tiny_analysis):
    ranking = rank_channels(tiny_analysis, "l1")
    supernet = DynamicModel(tiny_analysis, ranking, {}).eval()
    sampler, _ = _sampler(tiny_analysis)
    x = torch.randn(3, 1, 28, 28)
    rng = np.random.default_rng(0)
    for kept in [sampler.narrowest(), *(sampler.sample(rng) for _ in range(5))]:
        pruned = prune_physically(tiny_analysis, ranking, kept).eval()
        assert torch.allclose(supernet.set_widths(kept)(x), pruned(x), atol=1e-5)


def test_sampled_architectures_keep_to_the_widths_and_the_budget_range(tiny_analysis):
    sampler, choices = _sampler(tiny_analysis, low=0.3, high=0.6)
    cost = FlopsCostModel(tiny_analysis.layers)
    dense = cost.dense_cost().flops
    rng = np.random.default_rng(1)
    for _ in range(40):
        kept = sampler.sample(rng)
        assert all(kept[g] in choices.levels[g] for g in kept)
        assert cost.cost(kept).flops <= 0.6 * dense * (1 + 1e-9)
    assert [sampler.sample(np.random.default_rng(5)) for _ in range(2)] == \
        [sampler.sample(np.random.default_rng(5)) for _ in range(2)]


def _train(analysis, folder, batches, epochs=2):
    """A supernet trained ``epochs`` into ``folder`` (resumed when it holds a checkpoint)."""
    supernet = DynamicModel(analysis, rank_channels(analysis, "l1"), {})
    sampler, _ = _sampler(analysis)
    train_supernet(supernet, sampler.widest(), sampler.narrowest(), sampler.sample, batches,
                   SupernetSettings(epochs=epochs, sampled=1, batch_size=32), copy.deepcopy(analysis.model), folder, "k")
    return supernet


def test_supernet_training_resumes_exactly(tiny_analysis, tmp_path):
    splits = synthetic_splits(n_train=128, n_val=64, n_test=32, seed=0)

    def batches(epoch):
        return splits.train(32, shuffle=True, seed=epoch)

    class Killed(Exception):
        pass

    def killed_in_epoch_two(epoch):
        if epoch == 1:
            raise Killed
        return batches(epoch)

    straight = _train(tiny_analysis, tmp_path / "straight", batches)
    with pytest.raises(Killed):
        _train(tiny_analysis, tmp_path / "cut", killed_in_epoch_two)
    assert read_supernet(tmp_path / "cut")["epoch"] == 1  # the first epoch's checkpoint
    resumed = _train(tiny_analysis, tmp_path / "cut", batches)
    a, b = straight.net.state_dict(), resumed.net.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_supernet_scores_are_deterministic_and_follow_the_slice(tiny_analysis):
    ranking = rank_channels(tiny_analysis, "l1")
    supernet = DynamicModel(tiny_analysis, ranking, {})
    splits = synthetic_splits(n_train=128, n_val=64, n_test=32, seed=0)
    bn, val = list(splits.train(32, shuffle=False)), list(splits.val(64))
    scorer = SupernetScorer(supernet, bn, val, 2)
    sampler, _ = _sampler(tiny_analysis)
    kept = sampler.sample(np.random.default_rng(0))
    assert scorer(kept) == scorer(kept) == SupernetScorer(supernet, bn, val, 2)(kept)


def test_a_search_scores_with_the_supernet_and_reuses_it(tmp_path, capsys):
    common = ["-q", "search", "--model", "mlp", "--data", "synthetic", "--cost-model", "flops", "--budget", "40%",
              "--scorer", "supernet", "--supernet", str(tmp_path / "sn"), "--supernet-epochs", "1",
              "--agent", "random", "--episodes", "6", "--val-size", "64", "--bn-batches", "2", "--rerank-top", "0"]
    assert main([*common, "--out", str(tmp_path / "a")]) == 0
    trained = (tmp_path / "sn" / "supernet.pt").stat().st_mtime_ns
    assert main([*common, "--out", str(tmp_path / "b")]) == 0  # the same supernet, reused: the same scores
    assert (tmp_path / "sn" / "supernet.pt").stat().st_mtime_ns == trained
    a, b = (read_history(tmp_path / r / "history.csv")["score"].tolist() for r in "ab")
    assert a == b and all(0 <= v <= 1 for v in a)
    assert main([*common[:-10], "--supernet-epochs", "2", "--agent", "random", "--episodes", "2", "--val-size", "64",
                 "--bn-batches", "2", "--rerank-top", "0", "--out", str(tmp_path / "c")]) == 2  # other settings
    assert "another model, search space or settings" in capsys.readouterr().err


def test_apply_can_start_from_the_supernets_slice(tmp_path, capsys):
    common = ["-q", "search", "--model", "mlp", "--data", "synthetic", "--cost-model", "flops", "--budget", "40%",
              "--scorer", "supernet", "--supernet-epochs", "1", "--agent", "random", "--episodes", "4",
              "--val-size", "64", "--bn-batches", "2", "--rerank-top", "0", "--out", str(tmp_path / "s")]
    assert main(common) == 0
    policy = tmp_path / "s" / "best_policy.json"
    assert main(["-q", "apply", str(policy), "--data", "synthetic", "--out", str(tmp_path / "dense")]) == 0
    assert main(["-q", "apply", str(policy), "--data", "synthetic", "--init", "supernet", "--supernet",
                 str(tmp_path / "s" / "supernet"), "--out", str(tmp_path / "sn")]) == 0
    from autoprune.checkpoint import load_model

    a, info_a = load_model(tmp_path / "dense" / "model.pt")
    b, info_b = load_model(tmp_path / "sn" / "model.pt")
    assert info_a.pruning.kept == info_b.pruning.kept  # the same architecture ...
    sa, sb = a.state_dict(), b.state_dict()
    assert any(not torch.equal(sa[k], sb[k]) for k in sa)  # ... with the supernet's weights
    assert main(["-q", "apply", str(policy), "--data", "synthetic", "--init", "supernet",
                 "--out", str(tmp_path / "x")]) == 2
    assert "--supernet DIR" in capsys.readouterr().err


SN_SEARCH = ["-q", "search", "--model", "mlp", "--data", "synthetic", "--cost-model", "flops", "--scorer", "supernet",
             "--supernet-epochs", "1", "--val-size", "64", "--bn-batches", "2", "--rerank-top", "0"]


def test_one_supernet_serves_a_front_of_an_agent_and_a_resumed_search(tmp_path):
    """An SB3 agent searching several budgets at once on one supernet; interrupted (fewer episodes),
    resumed: the supernet is not trained again and the resumed history continues the first."""
    sn, out = tmp_path / "sn", tmp_path / "front"
    common = [*SN_SEARCH, "--supernet", str(sn), "--budgets", "30%", "60%", "--agent", "amc-ddpg", "--preset", "quick",
              "--agent-param", "warmup_episodes=2", "--out", str(out)]
    assert main([*common, "--episodes", "4"]) == 0
    trained = (sn / "supernet.pt").stat().st_mtime_ns
    first = read_history(out / "history.csv")
    assert main([*SN_SEARCH[:2], "--resume", "--episodes", "8", "--out", str(out)]) == 0
    after = read_history(out / "history.csv")
    assert (sn / "supernet.pt").stat().st_mtime_ns == trained
    assert list(after["episode"]) == list(range(8)) and after["score"].iloc[:4].tolist() == first["score"].tolist()
    assert (after["cost"] <= after["budget"] * (1 + 1e-9)).all() and after["budget"].nunique() == 2
    assert len(list(out.glob("policies/*.json"))) == 2 and len(pd.read_csv(out / "front.csv")) == 2


@pytest.mark.slow
def test_supernet_scores_are_the_same_on_worker_processes(tmp_path):
    sn = tmp_path / "sn"
    common = [*SN_SEARCH, "--supernet", str(sn), "--budget", "40%", "--agent", "random", "--episodes", "6"]
    assert main([*common, "--out", str(tmp_path / "local")]) == 0
    assert main([*common, "--executor", "processes", "--workers", "2", "--out", str(tmp_path / "workers")]) == 0
    local, workers = (read_history(tmp_path / r / "history.csv") for r in ("local", "workers"))
    assert local["score"].tolist() == workers["score"].tolist()
