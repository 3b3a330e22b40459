"""First-run paths: input refused before any work, defaults taken from the policy, quiet logs."""

import json

import pytest
import torch

from autoprune.analysis import analyse_model
from autoprune.apply import apply_policy
from autoprune.cli.main import build_parser, main
from autoprune.models import create_model
from autoprune.policy import PruningPolicy
from autoprune.progress import bar_disabled

SYN = ["--model", "mlp", "--data", "synthetic", "--val-size", "64", "--bn-batches", "1"]


@pytest.mark.parametrize("bad", [["--budget", "abc"], ["--budget", "inf"], ["--budget", "150%"],
                                 ["--agent-param", "bogus=1"], ["--agent", "nope"], ["--reward", "speed"],
                                 ["--seeds", "magic"], ["--table", "missing.csv"]])
def test_bad_search_input_is_refused_before_anything_is_created(tmp_path, capsys, bad):
    out = tmp_path / "run"
    assert main(["search", *SYN, *bad, "--out", str(out)]) == 2  # default cost model: lut, not profiled
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not out.exists()  # no latency table profiled, no folder that blocks the next try


def test_a_refused_search_does_not_block_the_corrected_rerun(tmp_path):
    out = tmp_path / "run"
    assert main(["search", *SYN, "--cost-model", "flops", "--agent-param", "bogus=1", "--out", str(out)]) == 2
    assert main(["search", *SYN, "--cost-model", "flops", "--agent", "random", "--episodes", "4",
                 "--rerank-steps", "5", "--out", str(out)]) == 0


def test_apply_takes_the_model_from_the_policy(tmp_path):
    analysis = analyse_model(create_model("mlp"), torch.randn(1, 1, 28, 28))
    PruningPolicy.for_model(analysis, {"body.0": 0.5}, model_name="mlp").save(tmp_path / "p.json")
    assert main(["apply", str(tmp_path / "p.json"), "--data", "synthetic", "--out", str(tmp_path / "a")]) == 0
    assert json.loads((tmp_path / "a" / "apply.json").read_text())["model"] == "mlp"


def test_apply_policy_keeps_the_policys_exclusions_in_the_record():
    model = create_model("mlp")
    analysis = analyse_model(model, torch.randn(1, 1, 28, 28), exclude=["body.0"])
    policy = PruningPolicy.for_model(analysis, {"body.2": 0.5}, model_name="mlp", exclude=["body.0"])
    _, record = apply_policy(analysis, policy)
    assert record.exclude == ["body.0"]


def test_progress_bars_follow_the_terminal_and_tqdm_disable(monkeypatch):
    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    assert bar_disabled(True) is None and bar_disabled(False) is True
    monkeypatch.setenv("TQDM_DISABLE", "1")
    assert bar_disabled(True) is True


def test_every_command_help_shows_defaults_and_examples():
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices
    for name, command in commands.items():
        text = command.format_help()
        assert "examples:\n  autoprune " + name in text, name
    assert "(default: 300)" in " ".join(commands["search"].format_help().split())


@pytest.mark.slow
def test_dynamo_exporter_writes_a_checked_onnx_file(tmp_path):
    from autoprune.onnx_export import export_onnx

    model = create_model("mlp").eval()
    path = export_onnx(model, torch.randn(1, 1, 28, 28), tmp_path / "m.onnx", exporter="dynamo")
    assert path.stat().st_size > 1000  # checked by onnx.checker and against torch inside export_onnx


def test_exploration_never_collapses_to_a_point():
    from autoprune.agents import DecayingTruncatedNormalNoise, load_preset

    for agent in ("amc-ddpg", "td3"):
        floor = load_preset(agent, "default")["noise_min_sigma"]
        noise = DecayingTruncatedNormalNoise(0.5, 0.95, warmup_episodes=100, min_sigma=floor)
        noise.episodes = 1000
        assert noise.sigma == floor > 0


def test_a_search_logged_to_a_file_prints_plain_progress_lines(tmp_path):
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "autoprune.cli.main", "search", *SYN, "--cost-model", "flops",
                           "--agent", "random", "--episodes", "10", "--rerank-top", "0", "--out", str(tmp_path / "r")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "search: episode 10/10" in done.stderr and "\r" not in done.stderr  # no bar redraws in the log


@pytest.mark.parametrize("command", [["apply", "missing.json"], ["finetune", "missing.pt"], ["export", "missing.pt"],
                                     ["sensitivity", "--model", "mlp", "--weights", "missing.pt"]])
def test_every_refused_command_leaves_no_output_folder(tmp_path, capsys, command):
    out = tmp_path / "out"
    assert main([*command, "--out", str(out)]) == 2
    assert "Traceback" not in capsys.readouterr().err and not out.exists()


def test_resuming_a_copied_run_folder_writes_into_the_copy(tmp_path, monkeypatch):
    import shutil

    from autoprune.search import read_history

    first, copy = tmp_path / "R", tmp_path / "R2"
    args = ["--cost-model", "flops", "--agent", "random", "--rerank-top", "0"]
    assert main(["search", *SYN, *args, "--episodes", "4", "--out", str(first)]) == 0
    shutil.copytree(first, copy)
    monkeypatch.chdir(tmp_path / "..")  # another working directory, the copy given by absolute path
    assert main(["search", "--resume", "--episodes", "6", "--out", str(copy)]) == 0
    assert len(read_history(copy / "history.csv")) == 6 and len(read_history(first / "history.csv")) == 4
