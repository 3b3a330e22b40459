"""Iterative pruning: prune -> fine-tune cycles toward a policy, and IMP rounds with rewinding."""

import json

import pandas as pd
import pytest
import torch

import autoprune.workflow.iterative as iterative
from autoprune.analysis import analyse_model
from autoprune.checkpoint import load_model, save_checkpoint
from autoprune.cli.main import main
from autoprune.finetune.iterative import channel_schedule, imp_schedule
from autoprune.models import create_model
from autoprune.policy import PruningPolicy
from autoprune.pruning import MaskedPruner

SYN = ["--data", "synthetic", "--no-augment"]


def test_channel_schedules_end_exactly_at_the_policy():
    dense, final = {"a": 64, "b": 16, "c": 8}, {"a": 8, "b": 12, "c": 8}
    for kind in ("geometric", "linear"):
        plan = channel_schedule(dense, final, 4, kind)
        assert plan[-1] == final and len(plan) == 4
        for name in dense:
            widths = [dense[name]] + [p[name] for p in plan]
            assert widths == sorted(widths, reverse=True)  # never grows back
    geometric = [p["a"] for p in channel_schedule(dense, final, 3, "geometric")]
    linear = [p["a"] for p in channel_schedule(dense, final, 3, "linear")]
    assert geometric == [32, 16, 8] and linear == [45, 27, 8]  # the same share / the same number per step


@pytest.fixture
def dense_resnet(tmp_path):
    torch.manual_seed(0)
    model = create_model("resnet20").eval()
    for m in model.modules():  # BN statistics that make a wrong channel visible
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    save_checkpoint(tmp_path / "dense.pt", model, "resnet20", input_shape=(1, 28, 28))
    analysis = analyse_model(model, torch.randn(1, 1, 28, 28))
    ratios = {g.name: (0.5 if i % 2 else 0.75) for i, g in enumerate(analysis.groups)}
    PruningPolicy.for_model(analysis, ratios, "resnet20", round_to=4).save(tmp_path / "policy.json")
    return tmp_path, model, analysis


def test_after_k_steps_the_model_has_the_policy_channels_and_its_masked_outputs(dense_resnet):
    tmp, dense, analysis = dense_resnet
    out = tmp / "it"
    assert main(["finetune", str(tmp / "dense.pt"), *SYN, "--iterative", str(tmp / "policy.json"), "--steps", "3",
                 "--epochs-per-step", "0", "--out", str(out)]) == 0
    model, payload = load_model(out / "model.pt")
    record = payload.pruning
    policy = PruningPolicy.load(tmp / "policy.json")
    assert record.kept == policy.channels
    steps = pd.read_csv(out / "steps.csv")
    assert list(steps["step"]) == [1, 2, 3] and steps["params"].is_monotonic_decreasing
    assert [json.loads(c) for c in steps["channels"]][-1] == policy.channels
    x = torch.randn(4, 1, 28, 28)
    with MaskedPruner(analysis, record.ranking()).applied(record.kept):
        reference = dense(x)
    assert torch.allclose(model(x), reference, atol=1e-4)  # the same channels as masking them on the dense model
    for k in (1, 2):  # every intermediate model reloads with its own record
        step_model, step_payload = load_model(out / f"step{k}" / "model.pt")
        assert step_payload.pruning.kept == json.loads(steps["channels"][k - 1])


def test_an_interrupted_iterative_run_resumes_at_the_step_it_stopped(dense_resnet, monkeypatch):
    tmp, _, _ = dense_resnet
    calls = {"prune": 0}
    real_prune = iterative.prune_further

    def counting(*args, **kwargs):
        calls["prune"] += 1
        if calls["prune"] == 3:
            raise KeyboardInterrupt
        return real_prune(*args, **kwargs)

    monkeypatch.setattr(iterative, "prune_further", counting)
    argv = ["finetune", str(tmp / "dense.pt"), *SYN, "--iterative", str(tmp / "policy.json"), "--steps", "4",
            "--epochs-per-step", "1", "--batch-size", "64", "--out", str(tmp / "r")]
    assert main(argv) == 130  # Ctrl-C: what is finished is kept
    assert len(pd.read_csv(tmp / "r" / "steps.csv")) == 2
    assert main(argv) == 0
    assert calls["prune"] == 5  # steps 1-2, the interrupted 3, then only 3 and 4 again
    assert list(pd.read_csv(tmp / "r" / "steps.csv")["step"]) == [1, 2, 3, 4]
    final = load_model(tmp / "r" / "model.pt")[1].pruning.kept
    assert final == PruningPolicy.load(tmp / "policy.json").channels
    changed = [*argv[:-4], "--steps", "5", "--out", str(tmp / "r")]
    assert main(changed) == 2  # another run's folder: refused, not mixed


@pytest.fixture
def trained_mlp(tmp_path):
    assert main(["train", "--model", "mlp", *SYN, "--epochs", "2", "--save-epochs", "1", "--lr", "0.02",
                 "--out", str(tmp_path / "t")]) == 0
    return tmp_path / "t"


def test_imp_rounds_follow_the_schedule_and_rewind_the_survivors(trained_mlp, tmp_path):
    out = tmp_path / "imp"
    assert main(["finetune", str(trained_mlp / "model.pt"), *SYN, "--sparsity", "0.9", "--rounds", "3",
                 "--rewind-from", str(trained_mlp / "model_epoch1.pt"), "--epochs-per-step", "0",
                 "--out", str(out)]) == 0
    rounds = pd.read_csv(out / "rounds.csv")
    assert list(rounds["mask_sparsity"]) == pytest.approx(imp_schedule(0.9, 3), abs=1e-3)
    masks = [iterative.load_masks(out / "masks" / f"round{r}.pt") for r in (1, 2, 3)]
    for small, large in zip(masks[1:], masks):  # every round prunes among the weights still there
        assert all(bool((small[n] <= large[n]).all()) for n in small)
    early, _ = load_model(trained_mlp / "model_epoch1.pt")
    final, _ = load_model(out / "model.pt")
    for name, mask in masks[-1].items():
        w, w0 = final.get_parameter(name), early.get_parameter(name)
        assert torch.equal(w[mask], w0[mask]) and bool((w[~mask] == 0).all())  # rewound survivors, zeros elsewhere


def test_imp_with_training_keeps_its_sparsity(trained_mlp, tmp_path):
    out = tmp_path / "imp2"
    assert main(["finetune", str(trained_mlp / "model.pt"), *SYN, "--sparsity", "0.75", "--rounds", "2",
                 "--epochs", "2", "--lr", "0.02", "--out", str(out)]) == 0
    summary = json.loads((out / "finetune.json").read_text())
    assert summary["mode"] == "imp" and summary["sparsity"]["weight_sparsity"] == pytest.approx(0.75, abs=0.01)
    assert summary["test_acc"] > 0.5


@pytest.mark.parametrize("extra, message", [
    (["--iterative", "{policy}", "--steps", "0"], "--steps and --rounds must be >= 1"),
    (["--sparsity", "0.5", "--rewind-from", "{ckpt}"], "--rewind-from goes with"),
    (["--iterative", "{policy}", "--gradual", "{policy}"], "choose one fine-tuning mode"),
    (["--sparsity", "1.5", "--rounds", "3"], "--sparsity must be in (0, 1)"),
])
def test_iterative_bad_input_is_one_line(dense_resnet, capsys, extra, message):
    tmp, _, _ = dense_resnet
    extra = [e.replace("{policy}", str(tmp / "policy.json")).replace("{ckpt}", str(tmp / "dense.pt")) for e in extra]
    assert main(["finetune", str(tmp / "dense.pt"), *SYN, *extra, "--out", str(tmp / "bad")]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err
