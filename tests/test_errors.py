"""Bad input, refused in one line that names the problem and the fix, before any work.

One table per way in: command-line options of ``search`` (exit 2, no history written), and the
settings dataclasses (their declared choices and bounds). Errors met later in a run (damaged
files on resume, data that does not fit, a score that fails) are tested beside the stage they stop.
"""

from __future__ import annotations

import dataclasses

import pytest
from conftest import one_line, tiny_search

from autoprune.cli.main import main
from autoprune.errors import ConfigError
from autoprune.finetune import FinetuneConfig
from autoprune.search import SearchConfig
from autoprune.training import TrainConfig

TINY = [*tiny_search("40%", finish=True), "--episodes", "2"]


@pytest.mark.parametrize("args, message", [
    (["--model", "resnet99"], "unknown model 'resnet99'"),
    (["--data", "cifar"], "unknown data set 'cifar'"),
    (["--weights", "{tmp}/nope.pt"], "does not exist"),
    (["--weights", "{tmp}/junk.pt"], "cannot read checkpoint"),
    (["--cost-model", "npu"], "unknown cost model 'npu'"),
    (["--cost-model", "lut", "--table", "{tmp}/junk.pt"], "not an autoprune latency table"),
    (["--cost-model", "lut", "--table", "{tmp}/missing.csv"], "does not exist"),
    (["--cost-model", "roofline", "--hardware-profile", "{tmp}/junk.pt"], "device"),
    (["--exclude", "no.such.layer"], "no such module"),
    (["--importance", "magic"], "unknown importance 'magic'"),
    (["--agent", "a2c"], "unknown agent 'a2c'"),
    (["--agent-param", "tau"], "key=value"),
    (["--agent", "thompson", "--agent-param", "top=0"], "top >= 1"),
    (["--agent", "evolution", "--agent-param", "sample=50"], "sample <= population"),
    (["--agent", "reinforce", "--agent-param", "learning_rate=-1"], "0 < learning_rate"),
    (["--agent", "cmaes", "--agent-param", "sigma=5"], "0 < sigma <= 2"),
    (["--budget", "fast"], "cannot read budget"),
    (["--budget", "-5%"], "positive"),
    (["--budget", "1%"], "cannot be met"),
    (["--episodes", "0"], "--episodes must be between 1 and"),
    (["--min-ratio", "0.9", "--max-ratio", "0.5"], "--min-ratio"),
    (["--widths", "inf"], "finite"),
    (["--input-shape", "-1,28"], "positive integers"),
])
def test_bad_search_options_are_one_line_exit_2_before_any_work(tmp_path, capsys, args, message):
    (tmp_path / "junk.pt").write_bytes(b"\x00garbage\xff" * 10)
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    assert main(["search", *TINY, "--out", str(tmp_path / "run"), *args]) == 2
    assert message in one_line(capsys)
    assert not (tmp_path / "run" / "history.csv").exists()


@pytest.mark.parametrize("text,message", [
    ('{"a": "' + "x" * 70_000 + '"}', "over the 64 KiB limit"),
    ('{"a": ' * 100_000 + "1" + "}" * 100_000, "model-args"),
    ('{"a": ' * 20 + "1" + "}" * 20, "nested more than")])
def test_model_args_are_bounded(capsys, text, message):
    assert main(["analyse", "--model", "x.py:build", "--model-args", text]) == 2
    assert message in one_line(capsys)


@pytest.mark.parametrize("cls, name, value, message", [
    (SearchConfig, "episodes", 0, "--episodes must be between 1 and 10,000,000, got 0"),
    (SearchConfig, "max_ratio", 1.0, "--max-ratio must be >= 0 and < 1, got 1.0"),
    (SearchConfig, "worker_cpus", 0, "--worker-cpus must be > 0 and <= 1024, got 0.0"),
    (SearchConfig, "eval_mode", "fast", "--eval-mode must be one of physical, masked, got 'fast'"),
    (SearchConfig, "budget_fill", 1.5, "--budget-fill must be between 0.0 and 1.0, got 1.5"),
    (FinetuneConfig, "kd_temperature", 0.0, "--kd-temperature must be > 0, got 0.0"),
    (FinetuneConfig, "val_size", 0, "--ft-val-size must be >= 1, got 0"),
    (TrainConfig, "optimizer", "lbfgs", "--optimizer must be one of sgd, adamw, got 'lbfgs'"),
    (TrainConfig, "epochs", "3", "setting 'epochs' must be int, got str"),
])
def test_ranges_and_choices_are_enforced_as_the_fields_declare_them(cls, name, value, message) -> None:
    config = dataclasses.replace(cls(), **{name: value})
    check = config.validate if cls is SearchConfig else config.check
    with pytest.raises(ConfigError) as caught:
        check()
    assert str(caught.value) == message


def test_an_int_given_for_a_float_setting_becomes_a_float_and_none_means_not_given() -> None:
    config = SearchConfig(min_ratio=0, worker_timeout=None, round_to=None).validate()
    assert isinstance(config.min_ratio, float) and config.worker_timeout is None
    with pytest.raises(ConfigError, match="--min-ratio <= --max-ratio"):  # a rule across fields stays in validate
        SearchConfig(min_ratio=0.5, max_ratio=0.4).validate()


def test_a_control_character_from_a_file_does_not_break_the_error_line(tmp_path, capsys):
    import json

    import torch

    from autoprune.analysis import analyse_model
    from autoprune.models import create_model
    from autoprune.policy import PruningPolicy

    analysis = analyse_model(create_model("mlp"), torch.zeros(1, 1, 28, 28))
    data = PruningPolicy.for_model(analysis, {g: 0.5 for g in analysis.group_names}, model_name="mlp").to_dict()
    data["fingerprint"] = "sha256:\x1e\x1b[2J"  # a record separator and a terminal escape
    (tmp_path / "p.json").write_text(json.dumps(data))
    assert main(["apply", str(tmp_path / "p.json"), "--model", "mlp", "--data", "synthetic",
                 "--out", str(tmp_path / "o")]) == 2
    err = one_line(capsys)
    assert "made for another model" in err and "\\x1e\\x1b[2J" in err and "\x1b" not in err
