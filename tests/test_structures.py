"""The structure suite: models of common structures, each pruned correctly or refused in one line.

For every structure that prunes: at 30 % and 60 % the physically pruned model's every output has
its dense shape and equals the masked reference, and the traced layers hold the MACs an independent
counter (``FlopCounterMode``) finds within 2 %; a short CLI search meets its FLOPs budget by that
independent count. Every other structure is refused with a one-line reason, or its
unprunable part is kept whole with the reason.
"""

import json

import pytest
import torch
from structures import STRUCTURES, UNPRICED
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from autoprune.analysis import analyse_model
from autoprune.analysis.layers import example_input
from autoprune.checkpoint import load_model
from autoprune.cli.main import main
from autoprune.costs import create_cost_model
from autoprune.costs.coverage import check_coverage, coverage
from autoprune.errors import AutopruneError
from autoprune.outputs import output_shapes
from autoprune.pruning import rank_channels
from autoprune.pruning.physical import prune_physically
from autoprune.pruning.prunability import check_prunable, keep_unprunable_whole, pruning_problem
from autoprune.pruning.ratios import channels_kept
from autoprune.references import consent


def _input(model, batch=2):
    return example_input(model, getattr(model, "input_shape", (1, 28, 28)), batch, random=True)
PRUNES = [n for n, (_, refusal) in STRUCTURES.items() if refusal is None]
REFUSED = [n for n, (_, refusal) in STRUCTURES.items() if refusal is not None]


def _macs(model) -> int:
    """Every MAC of one forward (attention's fused kernels switched off: the counter cannot see them)."""
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
            model.eval()(_input(model, 1))
    finally:
        torch.backends.mha.set_fastpath_enabled(True)
    return counter.get_total_flops() // 2


@pytest.mark.parametrize("name", PRUNES)
def test_a_structure_prunes_with_every_output_of_its_dense_shape_and_equal_to_the_masked_reference(name):
    model = STRUCTURES[name][0]()
    x = _input(model)
    analysis = keep_unprunable_whole(analyse_model(model, x[:1]),  # as the tool does: a group that fails whole
                                     lambda extra: analyse_model(model, x[:1], exclude=extra))[0]
    check_prunable(analysis)
    ranking = rank_channels(analysis, "l1")
    dense = output_shapes(model(x))
    for ratio in (0.3, 0.6):
        kept = {g.name: channels_kept(g.channels, ratio, 1, g.step) for g in analysis.groups}
        assert pruning_problem(analysis, kept, ranking) is None
        pruned = prune_physically(analysis, ranking, kept)
        assert output_shapes(pruned.eval()(x)) == dense
        assert all(0 not in p.shape for p in pruned.parameters())


@pytest.mark.parametrize("name", PRUNES)
def test_the_traced_layers_hold_the_macs_an_independent_counter_finds_or_the_rest_is_named(name):
    model = STRUCTURES[name][0]()
    analysis = analyse_model(model, _input(model, 1))
    found = coverage(analysis)
    assert found.total_macs == _macs(analysis.model)
    if name in UNPRICED:
        assert found.uncounted_share > 0.02 and UNPRICED[name] in found.describe()
        with pytest.raises(AutopruneError, match=UNPRICED[name]):
            check_coverage(analysis, "lut", allow_uncounted=False)
    else:
        assert found.counted_macs == pytest.approx(found.total_macs, rel=0.02)
    dense = create_cost_model("flops", analysis).dense_cost().flops
    assert dense == found.total_macs  # the FLOPs model counts every MAC


@pytest.mark.parametrize("name", REFUSED)
def test_a_structure_that_cannot_be_pruned_as_traced_is_refused_with_the_reason(name, tmp_path, capsys):
    build, refusal = STRUCTURES[name]
    with pytest.raises(AutopruneError, match=refusal):
        model = build()
        check_prunable(analyse_model(model, _input(model, 1)))


def test_output_layers_are_kept_whole_with_the_reason_attention_and_a_class_token_pruned_along():
    kept = {n: analyse_model(STRUCTURES[n][0](), _input(STRUCTURES[n][0](), 1)).kept_whole
            for n in ("tuple_out", "class_token", "attention")}
    assert "part of the model's output" in kept["tuple_out"]["c2"]
    assert not kept["class_token"]  # the class token is pruned with the embedding channels it indexes
    token = analyse_model(STRUCTURES["class_token"][0](), _input(STRUCTURES["class_token"][0](), 1))
    assert token.group("embed").parameters == ("cls",)
    assert not kept["attention"]  # the embedding of nn.MultiheadAttention prunes, as many channels per head
    attention = analyse_model(STRUCTURES["attention"][0](), _input(STRUCTURES["attention"][0](), 1))
    assert attention.group("embed").step == 4 and "attn" in attention.group("embed").members
    dict_out = analyse_model(STRUCTURES["dict_out"][0](), _input(STRUCTURES["dict_out"][0](), 1))
    assert set(dict_out.output_layers) == {"feat", "head"} and dict_out.group_names == ["c1"]


def _search_meets_budget_by_independent_count(name, tmp_path, extra=()):
    ref = f"{STRUCTURES_FILE}:build"
    dense = STRUCTURES[name][0]()
    shape = getattr(dense, "input_shape", (1, 28, 28))
    data = f"{STRUCTURES_FILE}:token_data" if len(shape) == 1 else "synthetic"
    args = ["--model-args", json.dumps({"name": name}), "--input-shape", ",".join(map(str, shape))]
    out = tmp_path / name
    code = main(["-q", "search", "--model", ref, *args, "--data", data,
                 "--cost-model", "flops", "--budget", "85%", "--agent", "random", "--episodes", "4", "--round-to", "1",
                 "--val-size", "64", "--bn-batches", "1", "--rerank-top", "0", "--verify-top", "0", *extra,
                 "--out", str(out)])
    assert code == 0
    assert main(["-q", "apply", str(out / "best_policy.json"), "--model", ref, *args, "--data", data,
                 "--out", str(tmp_path / f"{name}-apply")]) == 0
    with consent(ref):
        pruned, _ = load_model(tmp_path / f"{name}-apply" / "model.pt")
    x = _input(dense)
    assert output_shapes(pruned.eval()(x)) == output_shapes(dense(x))
    budget = json.loads((out / "best_policy.json").read_text())["budget"]["fraction"]
    assert _macs(pruned) <= budget * _macs(dense) * 1.02


STRUCTURES_FILE = str(__import__("pathlib").Path(__file__).parent / "structures.py")


@pytest.mark.parametrize("name", ["dict_out", "deep", "attention", "conv1d_net", "text_bag"])
def test_a_short_cli_search_meets_its_flops_budget_by_an_independent_count(name, tmp_path):
    _search_meets_budget_by_independent_count(name, tmp_path)


def test_a_search_on_a_model_with_several_unnamed_outputs_is_refused_naming_them(tmp_path, capsys):
    code = main(["search", "--model", f"{STRUCTURES_FILE}:build", "--model-args", '{"name": "tuple_out"}',
                 "--input-shape", "1,28,28", "--data", "synthetic", "--cost-model", "flops", "--budget", "85%",
                 "--agent", "uniform", "--val-size", "64", "--bn-batches", "1", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "several outputs (0 [1, 10], 1 [1, 16, 28, 28])" in err and "--output" in err
    assert len(err.splitlines()) == 1


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in PRUNES if n not in ("dict_out", "deep", "attention", "tuple_out", "conv1d_net", "text_bag")])
def test_every_prunable_structure_searches_to_its_flops_budget(name, tmp_path):
    _search_meets_budget_by_independent_count(name, tmp_path)


def test_a_group_that_does_not_prune_cleanly_is_kept_whole_and_recorded_in_the_policy(tmp_path, capsys):
    """The split structure: its first conv's group is excluded with the reason; the rest is searched,
    and the policy's exclusion makes apply rebuild the same groups."""
    _search_meets_budget_by_independent_count("split", tmp_path)
    policy = json.loads((tmp_path / "split" / "best_policy.json").read_text())
    assert policy["exclude"] == ["c1"] and "c1" not in policy["ratios"]


@pytest.mark.parametrize("name, whole, pruned", [("chunk", {"c1"}, {"c2"}), ("cat_split", {"a", "b"}, {"c"})])
def test_slices_of_a_split_or_chunk_map_to_their_own_layers_through_a_concatenation(name, whole, pruned):
    """The channel sizes of the concatenations and even splits are those the forward had: the layer
    feeding a concatenation next to a slice prunes; the split or chunked one is kept whole, named."""
    model = STRUCTURES[name][0]()
    example = _input(model)
    analysis, dropped = keep_unprunable_whole(analyse_model(model, example),
                                              lambda extra: analyse_model(model, example, exclude=extra))
    assert set(dropped) == whole and set(analysis.group_names) == pruned
    ranking = rank_channels(analysis, "l1")
    kept = {g: analysis.group(g).channels // 2 for g in pruned}
    assert pruning_problem(analysis, kept, ranking) is None


def test_an_embedding_width_is_a_group_priced_through_the_layers_it_feeds():
    """An nn.Embedding roots a group (a lookup: no MACs of its own); the layer it feeds loses inputs."""
    model = STRUCTURES["text_bag"][0]()
    analysis = analyse_model(model, _input(model, 1))
    embed = analysis.group("embed")
    assert (embed.channels, embed.consumers) == (32, ("fc1",))
    flops = create_cost_model("flops", analysis)
    fc1 = next(s for s in analysis.layers if s.name == "fc1")
    assert flops.dense_cost().flops - flops.cost({"embed": 16}).flops == 16 * fc1.out_channels * fc1.in_hw[0]
    pruned = prune_physically(analysis, rank_channels(analysis, "l1"), {"embed": 16})
    assert (pruned.embed.embedding_dim, pruned.fc1.in_features) == (16, 16)


def test_exclude_takes_a_parameter_name_and_keeps_the_groups_indexing_it_whole():
    model = STRUCTURES["class_token"][0]()
    analysis = analyse_model(model, _input(model, 1), exclude=["cls"])
    assert "embed" not in analysis.group_names and "'cls'" in analysis.kept_whole["embed"]


def test_output_names_the_scored_output_of_a_model_with_several_unnamed_ones(tmp_path, capsys):
    args = ["--model", f"{STRUCTURES_FILE}:build", "--model-args", '{"name": "tuple_out"}', "--input-shape", "1,28,28",
            "--data", "synthetic", "--cost-model", "flops", "--budget", "85%", "--agent", "random", "--episodes", "3",
            "--val-size", "64", "--bn-batches", "1", "--rerank-top", "0", "--verify-top", "0"]
    assert main(["-q", "search", *args, "--output", "0", "--out", str(tmp_path / "run")]) == 0
    capsys.readouterr()
    assert main(["search", *args, "--output", "logits", "--out", str(tmp_path / "bad")]) == 2
    err = capsys.readouterr().err.strip()
    assert "--output 'logits' is not one of the model's outputs (0 [1, 10], 1 [1, 16, 28, 28])" in err
    assert len(err.splitlines()) == 1


def test_an_unreachable_budget_says_what_round_to_1_reaches(tmp_path, capsys):
    code = main(["search", "--model", f"{STRUCTURES_FILE}:build", "--model-args", '{"name": "plain"}',
                 "--input-shape", "1,28,28", "--data", "synthetic", "--cost-model", "flops", "--budget", "5%",
                 "--agent", "uniform", "--val-size", "64", "--bn-batches", "1", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "--round-to 8 now; --round-to 1 reaches" in err and len(err.splitlines()) == 1


def test_a_group_norm_is_pruned_in_whole_norm_groups_and_one_it_cannot_split_keeps_its_group_whole():
    model = STRUCTURES["group_norm"][0]()
    analysis = analyse_model(model, _input(model, 1))
    assert analysis.group("c1").step == 4  # 16 channels in 4 norm groups
    ranking = rank_channels(analysis, "l1")
    gone = ranking["c1"][:8].tolist()
    assert sorted(gone) == sorted({b // 4 * 4 + i for b in gone for i in range(4)})  # two whole blocks first
    pruned = prune_physically(analysis, ranking, {"c1": channels_kept(16, 0.6, 1, 4)})
    assert (pruned.gn.num_groups, pruned.gn.num_channels) == (2, 8)  # blocks of 4 kept, two of them
    whole = analyse_model(STRUCTURES["group_norm_whole"][0](), _input(model, 1)).kept_whole
    assert "normalises 16 channels, of which this group holds 8" in whole["a"]
    assert "has one group" in whole["c"]


def test_a_pruning_record_that_splits_a_norm_group_is_refused():
    from autoprune.pruning.record import PruningRecord, rebuild_pruned

    model = STRUCTURES["group_norm"][0]()
    analysis = analyse_model(model, _input(model, 1))
    with pytest.raises(AutopruneError, match="removes part of a unit of group 'c1'"):
        rebuild_pruned(analysis, PruningRecord({"c1": 16, "c2": 16}, {"c1": [0, 1, 2, 5]}))
    assert rebuild_pruned(analysis, PruningRecord({"c1": 16, "c2": 16}, {"c1": [4, 5, 6, 7]})).gn.num_groups == 3


def test_transposed_convolutions_are_pruned_and_priced_per_input_position():
    model = STRUCTURES["decoder"][0]()
    analysis = analyse_model(model, _input(model, 1))
    assert {"up1", "up2"} <= set(analysis.group_names)
    up2 = next(s for s in analysis.layers if s.name == "up2")
    assert up2.kind == "transpose" and up2.macs() == 24 * 16 * 16 * up2.in_hw[0] * up2.in_hw[1]


def test_an_unreachable_budget_names_the_groups_kept_whole(tmp_path, capsys):
    code = main(["search", "--model", f"{STRUCTURES_FILE}:build", "--model-args", '{"name": "split"}',
                 "--input-shape", "1,28,28", "--data", "synthetic", "--cost-model", "flops", "--budget", "2%",
                 "--agent", "uniform", "--val-size", "64", "--bn-batches", "1", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and "1 group(s) are kept whole ('c1': " in err[-1] and "see autoprune analyse" in err[-1]
    assert err[-1].startswith("autoprune: error: budget")
