"""apply / finetune / export / sensitivity / pipeline, through the API and the CLI, on synthetic data."""

import json

import numpy as np
import onnx
import onnxruntime as ort
import pandas as pd
import pytest
import torch

from autoprune.analysis import analyse_model
from autoprune.apply import apply_policy
from autoprune.checkpoint import load_model, save_checkpoint
from autoprune.cli.main import main
from autoprune.errors import ConfigError, PolicyError
from autoprune.evaluation import CandidateEvaluator
from autoprune.export import export_folder
from autoprune.model_source import ModelSource
from autoprune.models import create_model
from autoprune.policy import PruningPolicy
from autoprune.pruning import MaskedPruner, rank_channels
from autoprune.sensitivity import plot_sensitivity, sensitivity_sweep

SYN = ["--data", "synthetic"]
NOAUG = ["--no-augment"]  # crop/flip destroys the synthetic class templates


def resnet_policy(ratio=0.5, **provenance):
    torch.manual_seed(0)
    analysis = analyse_model(create_model("resnet20").eval(), torch.randn(1, 1, 28, 28))
    return analysis, PruningPolicy.for_model(analysis, {g.name: ratio for g in analysis.groups}, "resnet20",
                                             round_to=8, **provenance)


def test_apply_policy_equals_masked_model_and_refuses_other_models(tiny_analysis):
    policy = PruningPolicy.for_model(tiny_analysis, {g.name: 0.5 for g in tiny_analysis.groups})
    pruned, record = apply_policy(tiny_analysis, policy)
    assert record.kept == policy.architecture(tiny_analysis)
    x = torch.randn(4, 1, 28, 28)
    with MaskedPruner(tiny_analysis, rank_channels(tiny_analysis, policy.importance)).applied(record.kept):
        masked = tiny_analysis.model(x)
    assert torch.allclose(pruned.eval()(x), masked, atol=1e-5)
    other, other_policy = resnet_policy()
    with pytest.raises(PolicyError, match="made for another model"):
        apply_policy(tiny_analysis, other_policy)


def test_sensitivity_sweep_one_group_at_a_time(tiny_analysis, splits, tmp_path):
    scorer = CandidateEvaluator(tiny_analysis, rank_channels(tiny_analysis), splits, val_size=64, bn_batches=1)
    calls = []
    frame = sensitivity_sweep(tiny_analysis, lambda kept: calls.append(dict(kept)) or scorer(kept),
                              ratios=[0.0, 0.5], progress=False)
    groups = tiny_analysis.groups
    assert len(frame) == 2 * len(groups) and set(frame["group"]) == {g.name for g in groups}
    for kept in calls[1:]:  # every point prunes exactly one group (or none at ratio 0)
        assert sum(kept[g.name] < g.channels for g in groups) <= 1
    assert len(calls) == 1 + len(groups)  # dense once; ratio 0 keeps every channel and is not rescored
    zero = frame[frame["ratio"] == 0.0]
    assert np.allclose(zero["score"], frame.attrs["dense_score"]) and np.allclose(zero["drop"], 0)
    png = plot_sensitivity(frame, tmp_path / "s.png")
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_export_writes_checked_onnx_weights_policy_and_latency(tmp_path):
    analysis, policy = resnet_policy(budget={"metric": "latency_ms", "value": 10.0, "fraction": 0.5})
    pruned, record = apply_policy(analysis, policy)
    export_folder(pruned, "resnet20", tmp_path, (1, 28, 28), record=record, policy=policy)
    assert {p.name for p in tmp_path.iterdir()} >= {"model.onnx", "model.pt", "policy.json", "export.json"}
    onnx.checker.check_model(onnx.load(tmp_path / "model.onnx"))
    x = torch.randn(3, 1, 28, 28)
    got = ort.InferenceSession(str(tmp_path / "model.onnx")).run(None, {"input": x.numpy()})[0]
    assert np.abs(got - pruned(x).detach().numpy()).max() < 1e-4
    reloaded, _ = load_model(tmp_path / "model.pt")
    assert torch.allclose(reloaded(x), pruned(x), atol=1e-6)
    assert PruningPolicy.load(tmp_path / "policy.json", analysis).ratios == policy.ratios
    saved = json.loads((tmp_path / "export.json").read_text())
    assert saved["latency_ms"] > 0 and saved["budget_ms"] == 10.0 and saved["within_budget_tolerance"] is True


def test_cli_apply_finetune_modes_export_and_sensitivity(tmp_path, capsys):
    t, p = tmp_path / "train", tmp_path / "policy.json"
    assert main(["train", "--model", "mlp", *SYN, "--epochs", "2", "--save-epochs", "1", *NOAUG,
                 "--lr", "0.02", "--out", str(t)]) == 0
    dense, _ = load_model(t / "model.pt")
    analysis = analyse_model(dense, torch.randn(1, 1, 28, 28))
    PruningPolicy.for_model(analysis, {"body.0": 0.5, "body.2": 0.75}, "mlp",
                            budget={"metric": "latency_ms", "value": 1e-6, "fraction": 0.5}).save(p)
    assert main(["apply", str(p), "--model", "mlp", "--weights", str(t / "model.pt"), *SYN,
                 "--out", str(tmp_path / "a")]) == 0
    applied, payload = load_model(tmp_path / "a" / "model.pt")
    assert applied.body[0].out_features == 128 and applied.body[2].out_features == 32
    assert payload.meta["policy"]["ratios"] == {"body.0": 0.5, "body.2": 0.75}
    runs = {
        "plain": ["--distill", "--teacher", str(t / "model.pt")],
        "rewind": ["--rewind-from", str(t / "model_epoch1.pt")],
    }
    for name, extra in runs.items():
        assert main(["finetune", str(tmp_path / "a" / "model.pt"), *SYN, *NOAUG, "--epochs", "2", *extra,
                     "--out", str(tmp_path / name)]) == 0, name
        summary = json.loads((tmp_path / name / "finetune.json").read_text())
        assert summary["mode"] == name and summary["test_acc"] > 0.5
        assert load_model(tmp_path / name / "model.pt")[0].body[2].out_features == 32
    assert main(["finetune", str(t / "model.pt"), *SYN, *NOAUG, "--epochs", "2", "--gradual", str(p), "--frequency", "1",
                 "--out", str(tmp_path / "gradual")]) == 0
    gradual, _ = load_model(tmp_path / "gradual" / "model.pt")
    assert gradual.body[0].out_features == 128 and gradual.body[2].out_features == 32
    assert main(["finetune", str(t / "model.pt"), *SYN, *NOAUG, "--epochs", "2", "--sparsity", "0.9",
                 "--sparsity-scope", "global", "--out", str(tmp_path / "sparse")]) == 0
    sparse = json.loads((tmp_path / "sparse" / "finetune.json").read_text())["sparsity"]
    assert sparse["weight_sparsity"] == pytest.approx(0.9, abs=0.01)
    capsys.readouterr()
    assert main(["export", str(tmp_path / "gradual" / "model.pt"), "--out", str(tmp_path / "x")]) == 0
    line = capsys.readouterr().out
    assert "ms measured" in line and "budget" in line and "OVER" in line  # a 1e-6 ms budget is never met
    assert main(["sensitivity", "--model", "mlp", "--weights", str(t / "model.pt"), *SYN, "--ratios", "0.5",
                 "--val-size", "64", "--out", str(tmp_path / "sens")]) == 0
    assert len(pd.read_csv(tmp_path / "sens" / "sensitivity.csv")) == 2


@pytest.mark.parametrize("argv, message", [
    (["finetune", "{ckpt}", "--sparsity", "0.5", "--rewind-from", "{ckpt}"], "--rewind-from goes with"),
    (["finetune", "{ckpt}", "--sparsity", "0.5", "--gradual", "{policy}"], "choose one fine-tuning mode"),
    (["finetune", "{ckpt}", "--rewind-from", "{ckpt}"], "needs a pruned checkpoint"),
    (["finetune", "{ckpt}", "--sparsity", "1.5"], "need 0 <= initial <= final < 1"),
    (["finetune", "{ckpt}", "--sparsity", "0.5", "--end-step", "99999"], "beyond the"),
    (["finetune", "{tmp}/missing.pt"], "does not exist"),
    (["apply", "{tmp}/missing.json", "--model", "mlp", "--weights", "{ckpt}"], "does not exist"),
    (["apply", "{policy}", "--model", "mlp", "--weights", "{ckpt}"], "made for another model"),
    (["export", "{tmp}/not-a-checkpoint.txt"], "cannot read checkpoint"),
    (["sensitivity", "--model", "mlp", "--weights", "{ckpt}", "--ratios", "0.5,x"], "comma-separated"),
    (["train", "--model", "mlp", "--epochs", "1", "--save-epochs", "3"], "outside 1..1"),
])
def test_cli_bad_input_is_one_line(tmp_path, capsys, argv, message):
    ckpt = tmp_path / "m.pt"
    save_checkpoint(ckpt, create_model("mlp"), "mlp")
    resnet_policy()[1].save(tmp_path / "p.json")
    (tmp_path / "not-a-checkpoint.txt").write_text("hello")
    fill = {"{ckpt}": str(ckpt), "{tmp}": str(tmp_path), "{policy}": str(tmp_path / "p.json")}
    args = [next((a.replace(k, v) for k, v in fill.items() if k in a), a) for a in argv]
    data = [] if args[0] == "export" else SYN
    assert main([*args, *data, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err


def test_cli_pipeline_runs_every_stage_and_resumes(tmp_path, capsys):
    out = tmp_path / "pipe"
    args = ["pipeline", "--model", "mlp", *SYN, "--cost-model", "flops", "--budget", "50%", "--agent", "random",
            "--episodes", "4", "--val-size", "64", "--bn-batches", "1", "--epochs", "2", "--lr", "0.05", "--batch-size", "32", *NOAUG, "--out", str(out)]
    assert main(args) == 0
    for f in ("search/history.csv", "search/best_policy.json", "apply/model.pt", "finetune/finetune.json",
              "export/model.onnx", "export/export.json", "pipeline.json"):
        assert (out / f).is_file(), f
    summary = json.loads((out / "pipeline.json").read_text())
    assert summary["finetuned_test_acc"] > 0.5 and summary["finetune_epochs"] == 2
    assert main(args) == 2 and "pass --resume" in capsys.readouterr().err
    stamp = (out / "finetune" / "finetune.json").stat().st_mtime_ns
    assert main([*args, "--resume"]) == 0
    assert (out / "finetune" / "finetune.json").stat().st_mtime_ns == stamp  # finished stages are skipped


def test_gradual_pruning_keeps_the_policys_exclusions(tmp_path, splits):
    from autoprune.finetune import FinetuneConfig
    from autoprune.workflow import FinetuneMode, finetune_stage

    torch.manual_seed(0)
    dense = create_model("mlp")
    save_checkpoint(tmp_path / "dense.pt", dense, "mlp")
    analysis = analyse_model(dense, torch.randn(1, 1, 28, 28), exclude=["body.0"])
    PruningPolicy.for_model(analysis, {"body.2": 0.5}, "mlp", exclude=["body.0"]).save(tmp_path / "p.json")
    summary = finetune_stage(tmp_path / "dense.pt", splits, FinetuneConfig(epochs=1, augment=False),
                             tmp_path / "out", FinetuneMode(gradual_policy=str(tmp_path / "p.json"), frequency=1),
                             distill=True, progress=False)
    assert summary["channels"] == {"body.2": 64}
    model, payload = load_model(tmp_path / "out" / "model.pt")
    assert model.body[0].out_features == 256 and model.body[2].out_features == 64
    assert payload.pruning.exclude == ["body.0"] and payload.meta["policy"]["exclude"] == ["body.0"]


def test_distillation_teacher_defaults_to_the_weights_the_model_was_pruned_from(tmp_path, splits):
    from autoprune.finetune import FinetuneConfig
    from autoprune.workflow import apply_stage, finetune_stage

    torch.manual_seed(0)
    save_checkpoint(tmp_path / "dense.pt", create_model("mlp"), "mlp")
    analysis = analyse_model(create_model("mlp"), torch.randn(1, 1, 28, 28))
    PruningPolicy.for_model(analysis, {"body.0": 0.5, "body.2": 0.5}, "mlp").save(tmp_path / "p.json")
    apply_stage(tmp_path / "p.json", ModelSource("mlp", weights=str(tmp_path / "dense.pt")), splits, tmp_path / "a")
    summary = finetune_stage(tmp_path / "a" / "model.pt", splits, FinetuneConfig(epochs=1, augment=False),
                             tmp_path / "f", distill=True, progress=False)
    assert summary["distill"] is True and (tmp_path / "f" / "model.pt").is_file()
    (tmp_path / "dense.pt").unlink()  # the teacher is really read from there
    with pytest.raises(ConfigError, match="dense.pt does not exist"):
        finetune_stage(tmp_path / "a" / "model.pt", splits, FinetuneConfig(epochs=1), tmp_path / "g", distill=True,
                       progress=False)


def test_distillation_without_a_teacher_says_which_flag(tmp_path, splits):
    from autoprune.finetune import FinetuneConfig
    from autoprune.workflow import apply_stage, finetune_stage

    analysis = analyse_model(create_model("mlp"), torch.randn(1, 1, 28, 28))
    PruningPolicy.for_model(analysis, {"body.0": 0.5, "body.2": 0.5}, "mlp").save(tmp_path / "p.json")
    apply_stage(tmp_path / "p.json", ModelSource("mlp"), splits, tmp_path / "a", require_weights=False)
    with pytest.raises(ConfigError, match="--distill needs the dense mlp model as teacher; pass --teacher FILE"):
        finetune_stage(tmp_path / "a" / "model.pt", splits, FinetuneConfig(epochs=1), tmp_path / "f",
                       distill=True, progress=False)


def test_export_report_states_the_verdict_and_what_to_do_when_over():
    from autoprune.cli.export_cmd import report

    base = {"latency_ms": 0.11, "dense_latency_ms": 0.26, "budget_ms": 0.1}
    over = report({**base, "latency_over_budget": 1.1, "within_budget_tolerance": False}, "out")
    assert "1.10x, OVER budget + 5 %" in over and "search again with a budget tighter" in over
    within = report({**base, "latency_ms": 0.1, "latency_over_budget": 1.0, "within_budget_tolerance": True}, "out")
    assert within.endswith("1.00x, within budget + 5 %")
    busy = report({**base, "latency_over_budget": 1.25, "within_budget_tolerance": False, "share_of_dense": 0.5,
                   "budget_share_of_dense": 0.5}, "out")  # over in ms while the machine is slow, not relative to dense
    assert "50% of the dense model timed at another time, budget 50%" in busy
    alongside = report({**base, "latency_ms": 0.3437, "dense_latency_ms": 0.6556, "budget_ms": 0.2822,
                        "latency_over_budget": 1.218, "within_budget_tolerance": True, "share_of_dense": 0.5243,
                        "budget_share_of_dense": 0.5, "share_over_budget": 1.0486, "budget_judged_by": "share_of_dense"},
                       "out")
    assert "timed in the same passes): 52.4% of the dense model against a budget of 50.0%: 1.05x, within" in alongside
    assert "1.22x on this machine's speed now" in alongside and "search again" not in alongside


def test_a_budget_is_judged_on_one_clock_when_the_dense_model_is_timed_alongside():
    from autoprune.budget import Budget
    from autoprune.export import budget_verdict

    budget = Budget("latency_ms", 0.2822, 0.5644, True)  # 50 % of the dense time measured at search time
    slower_now = budget_verdict(budget, 0.3437, dense_alongside=0.6556)  # the whole machine 16 % slower
    assert slower_now["latency_over_budget"] > 1.2 and slower_now["within_budget_tolerance"] is True
    assert slower_now["budget_judged_by"] == "share_of_dense" and slower_now["share_over_budget"] == pytest.approx(1.0486, abs=1e-3)
    faster_now = budget_verdict(budget, 0.2800, dense_alongside=0.4600)  # 61 % of dense: a miss the fast clock hid
    assert faster_now["latency_over_budget"] < 1.0 and faster_now["within_budget_tolerance"] is False
    alone = budget_verdict(budget, 0.3437, dense_alongside=None, dense_other=0.6556)  # no common clock: absolute
    assert alone["within_budget_tolerance"] is False and alone["budget_judged_by"] == "absolute"
    assert "share_over_budget" not in alone and alone["share_of_dense"] == pytest.approx(0.5243, abs=1e-4)


def test_export_times_the_dense_model_alongside_and_judges_the_share(tmp_path):
    torch.manual_seed(0)
    model = create_model("mlp").eval()
    analysis = analyse_model(model, torch.randn(1, 1, 28, 28))
    # nothing pruned against a 50 % budget whose absolute value (10 ms) this small model meets anyway
    policy = PruningPolicy.for_model(analysis, {"body.0": 0.0, "body.2": 0.0}, "mlp",
                                     budget={"metric": "latency_ms", "value": 10.0, "fraction": 0.5, "dense": 20.0})
    saved = export_folder(model, "mlp", tmp_path / "x", (1, 28, 28), policy=policy, dense=create_model("mlp"))
    assert saved["dense_timed_alongside"] is True and saved["budget_judged_by"] == "share_of_dense"
    assert saved["latency_over_budget"] < 1.0  # in ms it "fits": the absolute check would have passed it
    assert 0.7 < saved["share_of_dense"] < 1.4 and saved["within_budget_tolerance"] is False
    assert saved["share_over_budget"] == pytest.approx(saved["share_of_dense"] / 0.5, rel=1e-3)
    on_disk = json.loads((tmp_path / "x" / "export.json").read_text())
    assert on_disk["within_budget_tolerance"] is False and on_disk["dense_latency_ms"] == saved["dense_latency_ms"]
    assert len(on_disk["dense_latency_windows_ms"]) == len(on_disk["latency_windows_ms"]) == 5
    assert min(on_disk["dense_latency_windows_ms"]) == on_disk["dense_latency_ms"]


def test_export_records_the_share_of_dense_next_to_the_budget(tmp_path):
    torch.manual_seed(0)
    model = create_model("mlp").eval()
    analysis = analyse_model(model, torch.randn(1, 1, 28, 28))
    policy = PruningPolicy.for_model(analysis, {"body.0": 0.0, "body.2": 0.0}, "mlp",
                                     budget={"metric": "latency_ms", "value": 1e-6, "fraction": 0.5, "dense": 2e-6})
    saved = export_folder(model, "mlp", tmp_path / "x", (1, 28, 28), policy=policy, meta={"dense_latency_ms": 0.2})
    assert saved["share_of_dense"] == pytest.approx(saved["latency_ms"] / 0.2, abs=1e-3)  # latency_ms is rounded
    assert saved["budget_share_of_dense"] == 0.5 and saved["budget_judged_by"] == "absolute"


def test_a_pipeline_piped_to_a_log_says_what_it_is_doing_at_every_stage(tmp_path):
    """Output to a file (no terminal, no bars): a line per stage and within each fine-tune epoch,
    not silence between the search's last episode and the end."""
    import subprocess
    import sys

    command = [sys.executable, "-m", "autoprune.cli.main", "pipeline", "--model", "mlp", "--data", "synthetic",
               "--cost-model", "flops", "--budget", "50%", "--agent", "random", "--episodes", "3", "--val-size", "64",
               "--bn-batches", "1", "--rerank-top", "1", "--rerank-steps", "2", "--epochs", "1", "--out",
               str(tmp_path / "run")]
    env = {k: v for k, v in __import__("os").environ.items() if k != "TQDM_DISABLE"}
    done = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300, env=env)
    log = done.stdout  # both streams, in the order written
    assert done.returncode == 0, log[-2000:]
    order = ["search: episode 3/3", "re-ranking: candidate 1/", "apply: ", "fine-tune: 1 epoch", "epoch 1/1: step 4/4",
             "export: ", "exported "]
    positions = [log.find(line) for line in order]
    assert -1 not in positions and positions == sorted(positions), log[-3000:]
