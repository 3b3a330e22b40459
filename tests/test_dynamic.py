"""Dynamic pruning: nested variants of one model, switched at run time, each equal to the model
pruned separately from the same weights and channels; exported per variant and picked by latency."""

import json

import numpy as np
import pytest
import torch
from test_concat import Dense, Inception, flattened
from torch import nn

from autoprune.analysis import analyse_model
from autoprune.dynamic import DynamicModel, check_nested, nest_variants
from autoprune.dynamic.variants import VariantSet, export_variants, load_dynamic, save_dynamic
from autoprune.errors import ConfigError
from autoprune.models import create_model
from autoprune.pruning import rank_channels
from autoprune.pruning.physical import prune_physically
from autoprune.training import evaluate, recalibrate_bn


def _random_bn(model: nn.Module) -> nn.Module:
    for m in model.modules():  # non-trivial statistics, so a wrong channel shows in the output
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
    return model.eval()


def _setup(build, shape):
    torch.manual_seed(0)
    model = _random_bn(build())
    x = torch.randn(4, *shape)
    analysis = analyse_model(model, x[:1])
    ranking = rank_channels(analysis, "l1")
    rng = np.random.default_rng(0)
    big = {g.name: int(rng.integers(max(1, g.channels // 2), g.channels + 1)) for g in analysis.groups}
    small = {g.name: int(rng.integers(1, g.channels // 2 + 1)) for g in analysis.groups}
    small[analysis.groups[0].name] = big[analysis.groups[0].name]  # equal in one group: still nested
    return model, x, analysis, ranking, {"70%": big, "40%": small}


BUILDS = [(lambda: create_model("resnet20"), (1, 28, 28)), (lambda: create_model("mobilenetv2_small"), (1, 28, 28)),
          (Inception, (3, 12, 12)), (Dense, (3, 12, 12)), (flattened, (3, 12, 12))]


@pytest.mark.parametrize("build,shape", BUILDS, ids=["resnet20", "mobilenetv2", "inception", "densenet", "flatten"])
def test_each_width_gives_exactly_the_separately_pruned_model(build, shape):
    model, x, analysis, ranking, variants = _setup(build, shape)
    dynamic = DynamicModel(analysis, ranking, variants).eval()
    with torch.no_grad():
        assert torch.allclose(dynamic(x), model(x), atol=1e-5)  # reordering keeps the function
    for label, kept in variants.items():
        separate = prune_physically(analysis, ranking, kept).eval()
        dynamic.set_variant(label)
        with torch.no_grad():
            assert torch.allclose(dynamic(x), separate(x), atol=1e-5), label
            assert torch.allclose(dynamic.pruned(label)(x), separate(x), atol=1e-5), label
    dynamic.set_variant(None)
    with torch.no_grad():
        assert torch.allclose(dynamic(x), model(x), atol=1e-5)


def test_bn_statistics_are_kept_per_width():
    model, x, analysis, ranking, variants = _setup(lambda: create_model("resnet20"), (1, 28, 28))
    batches = [(torch.randn(16, 1, 28, 28), None) for _ in range(3)]
    dynamic = DynamicModel(analysis, ranking, variants).eval()
    dynamic.recalibrate(batches, 3)
    for label in ["40%", "70%", "40%"]:  # switching back restores that width's statistics
        separate = prune_physically(analysis, ranking, variants[label]).eval()
        recalibrate_bn(separate, batches, 3)
        dynamic.set_variant(label)
        with torch.no_grad():
            assert torch.allclose(dynamic(x), separate(x), atol=1e-4), label


def test_switching_allocates_no_parameters_or_buffers():
    _, x, analysis, ranking, variants = _setup(lambda: create_model("resnet20"), (1, 28, 28))
    dynamic = DynamicModel(analysis, ranking, variants).eval()
    dense_params = sum(p.numel() for p in analysis.model.parameters())
    for label in variants:  # the first switch to each variant builds its slicing plan
        dynamic.set_variant(label)
    before = [(id(t), t.data_ptr(), t.numel()) for t in [*dynamic.parameters(), *dynamic.buffers()]]
    plans = {label: id(plan) for label, plan in dynamic._plans.items()}
    for label in ["40%", "70%", None, "40%"]:
        dynamic.set_variant(label)
        with torch.no_grad():
            dynamic(x)
    after = [(id(t), t.data_ptr(), t.numel()) for t in [*dynamic.parameters(), *dynamic.buffers()]]
    assert after == before and {label: id(plan) for label, plan in dynamic._plans.items()} == plans
    assert sum(p.numel() for p in dynamic.parameters()) == dense_params  # the weights, once


def test_nesting_makes_every_variant_a_subset_of_the_larger_ones():
    crossing = {"a": {"g1": 8, "g2": 2}, "b": {"g1": 4, "g2": 6}, "c": {"g1": 2, "g2": 1}}
    with pytest.raises(ConfigError, match="not nested"):
        check_nested(crossing)
    nested = nest_variants(crossing, size=lambda k: sum(k.values()))
    assert list(nested) == ["a", "b", "c"]
    assert nested == {"a": {"g1": 8, "g2": 2}, "b": {"g1": 4, "g2": 2}, "c": {"g1": 2, "g2": 1}}
    check_nested(nested)


def test_variants_export_run_in_onnx_runtime_and_the_loader_picks_by_latency(tmp_path):
    model, x, analysis, ranking, variants = _setup(lambda: create_model("resnet20"), (1, 28, 28))
    dynamic = DynamicModel(analysis, ranking, variants).eval()
    found = export_variants(dynamic, tmp_path, (1, 28, 28), accuracy={"70%": 0.9, "40%": 0.8})
    loaded = VariantSet.load(tmp_path)
    assert found.dense_latency_ms is None and loaded.dense_latency_ms is None  # no dense model given
    assert [v.label for v in loaded.variants] == [v.label for v in found.variants]
    fast, slow = sorted(loaded.variants, key=lambda v: v.latency_ms)
    assert fast.label == "40%" and slow.label == "70%" and slow.params > fast.params
    assert loaded.pick(slow.latency_ms * 10).label == "70%" and loaded.pick(fast.latency_ms).label == "40%"
    with pytest.raises(ConfigError, match="no variant runs within"):
        loaded.pick(fast.latency_ms / 10)
    session = loaded.session(slow.latency_ms)
    out = session.run(None, {session.get_inputs()[0].name: x[:1].numpy()})[0]
    dynamic.set_variant("70%")
    with torch.no_grad():
        assert np.allclose(out, dynamic(x[:1]).numpy(), atol=1e-4)
    assert dynamic.set_latency_ms(fast.latency_ms).active == "40%"
    save_dynamic(tmp_path / "dynamic.pt", dynamic, "resnet20", (1, 28, 28), 10)
    again = load_dynamic(tmp_path / "dynamic.pt").set_variant("40%")
    dynamic.set_variant("40%")
    with torch.no_grad():
        assert torch.allclose(again(x), dynamic(x), atol=1e-6)
    data = json.loads((tmp_path / "variants.json").read_text())
    data["variants"][0]["file"] = "missing.onnx"
    (tmp_path / "bad.json").write_text(json.dumps(data))
    with pytest.raises(ConfigError, match="missing"):
        VariantSet.load(tmp_path / "bad.json")


def test_a_layer_that_cannot_be_sliced_is_refused_in_one_line():
    class Gn(nn.Module):
        def __init__(self):
            super().__init__()
            self.c1, self.n = nn.Conv2d(1, 8, 3), nn.GroupNorm(2, 8)
            self.c2 = nn.Conv2d(8, 4, 3)

        def forward(self, x):
            return self.c2(self.n(self.c1(x))).mean((2, 3))

    model = Gn().eval()
    analysis = analyse_model(model, torch.randn(1, 1, 8, 8))
    ranking = rank_channels(analysis, "l1")
    with pytest.raises(ConfigError, match="does not support GroupNorm"):
        DynamicModel(analysis, ranking, {"half": {g.name: 4 for g in analysis.groups}})


def test_dynamic_command_nests_searched_policies_and_exports_each_width(tmp_path, capsys):
    from autoprune.cli.main import main

    common = ["--model", "mlp", "--data", "synthetic", "--cost-model", "flops", "--verify-top", "0",
              "--rerank-top", "0", "--val-size", "64", "--bn-batches", "1"]
    for budget in ("70%", "40%"):
        assert main(["-q", "search", *common, "--agent", "random", "--episodes", "3", "--budget", budget,
                     "--out", str(tmp_path / budget)]) == 0
    policies = [str(tmp_path / b / "best_policy.json") for b in ("70%", "40%")]
    assert main(["-q", "dynamic", *policies, "--data", "synthetic", "--bn-batches", "2", "--epochs", "1",
                 "--augment", "none", "--out", str(tmp_path / "d")]) == 0
    report = json.loads((tmp_path / "d" / "dynamic.json").read_text())
    assert [set(r) >= {"val_70%", "val_40%"} for r in report["joint_finetune"]] == [True]  # one joint epoch
    assert [v["label"] for v in report["variants"]] == ["70%", "40%"]
    variants = VariantSet.load(tmp_path / "d")
    assert variants.dense_latency_ms > 0  # the dense model timed in the same passes as the variants
    for v in report["variants"]:  # a FLOPs policy: no latency verdict
        assert v["budget_ms"] is None and v["within_budget"] is None and v["share_of_dense"] is None
    large, small = (v.kept for v in variants.variants)
    assert all(small[g] <= large[g] for g in large)  # nested, group by group
    assert load_dynamic(tmp_path / "d" / "dynamic.pt").set_budget("40%").active == "40%"
    capsys.readouterr()
    assert main(["dynamic", policies[0], str(tmp_path / "nope.json"), "--data", "synthetic",
                 "--out", str(tmp_path / "e")]) == 2
    assert main(["dynamic", policies[0], policies[0], "--data", "synthetic", "--out", str(tmp_path / "f")]) == 2
    assert main(["dynamic", policies[0], "--epochs", "-1", "--data", "synthetic", "--out", str(tmp_path / "g")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and "nope.json" in err[0] and "same budget" in err[1] and "--epochs" in err[2]


def test_joint_finetuning_trains_every_width_of_the_shared_weights():
    from autoprune.data import synthetic_splits
    from autoprune.dynamic.joint import joint_finetune
    from autoprune.finetune import FinetuneConfig
    from autoprune.training import TrainConfig, train

    torch.manual_seed(0)
    splits = synthetic_splits(n_train=512, n_val=256)
    model = create_model("mlp")
    train(model, lambda e: splits.train(64, augment=False, seed=e), TrainConfig(epochs=1, lr=0.05, device="cpu"),
          progress=False)  # a dense model to start from and distil
    model.eval()
    analysis = analyse_model(model, torch.randn(1, 1, 28, 28))
    ranking = rank_channels(analysis, "l1")
    variants = nest_variants({"wide": {g.name: max(1, g.channels // 2) for g in analysis.groups},
                              "narrow": {g.name: max(1, g.channels // 8) for g in analysis.groups}},
                             size=lambda k: sum(k.values()))
    dynamic = DynamicModel(analysis, ranking, variants)
    bn = list(splits.train(64, shuffle=False, augment=False))[:4]
    dynamic.recalibrate(bn, 4)
    before = {v: evaluate(dynamic.set_variant(v).eval(), splits.val()) for v in variants}
    ids = [id(p) for p in dynamic.parameters()]
    result = joint_finetune(dynamic, lambda e: splits.train(64, augment=False, seed=e), splits.val(), bn,
                            FinetuneConfig(epochs=2, lr=0.05, device="cpu"), teacher=model, progress=False)
    last = result.history[-1]
    assert all(last[f"val_{v}"] >= min(0.95, before[v] + 0.1) for v in variants), (before, last)  # each learnt
    assert [id(p) for p in dynamic.parameters()] == ids  # still one set of weights
    for label in variants:  # each width is still exactly its separately pruned model
        separate = dynamic.pruned(label)
        dynamic.set_variant(label)
        x = torch.randn(3, 1, 28, 28)
        with torch.no_grad():
            assert torch.allclose(dynamic(x), separate(x), atol=1e-5)


def test_a_variant_is_judged_against_its_budget_as_a_share_of_the_dense_model_timed_alongside():
    from autoprune.budget import Budget
    from autoprune.workflow.dynamic_stage import _report

    budget = Budget("latency_ms", 0.35, 0.875, True)  # 40 % of the dense time when the policy was searched
    fast_now = _report("40%", "p.json", budget, 0.30, 0.60, 0.9, {"g": 8}, {"g": 8})  # meets 0.35 ms, but is 50 %
    assert fast_now.within_budget is False and fast_now.share_of_dense == 0.5 and fast_now.budget_share_of_dense == 0.4
    slow_now = _report("40%", "p.json", budget, 0.40, 1.00, 0.9, {"g": 8}, {"g": 6})  # over 0.35 ms, but 40 %
    assert slow_now.within_budget is True and slow_now.channels_cut_by_nesting == {"g": 2}
    alone = _report("40%", "p.json", budget, 0.40, None, 0.9, {"g": 8}, {"g": 8})  # no dense timing: in ms
    assert alone.within_budget is False and alone.share_of_dense is None
