"""The README's examples, run as written (with small settings where the text says so)."""

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def block_after(heading: str, lang: str, first_line: str | None = None, text: str = README) -> str:
    """The first ``lang`` code block after ``heading`` (whose first line is ``first_line`` if given)."""
    text = text[text.index(heading):]
    for match in re.finditer(rf"```{lang}\n(.*?)```", text, re.S):
        if first_line is None or match.group(1).startswith(first_line):
            return match.group(1)
    raise AssertionError(f"no {lang} block after {heading!r}")


def test_lower_level_python_api_example_runs_as_written(tmp_path):
    code = block_after("# The lower-level Python API", "python", text=(ROOT / "docs" / "python-api.md").read_text())
    knobs = 'MODEL, DATA, COST, EPISODES, EPOCHS, OUT = "resnet20", "fashion-mnist", "lut", 100, 8, "runs/api"'
    assert knobs in code  # the one line the test changes: a tiny model, synthetic data, FLOPs, few episodes
    code = code.replace(knobs, 'MODEL, DATA, COST, EPISODES, EPOCHS, OUT = "mlp", "synthetic", "flops", 5, 1, "runs/api"')
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    from autoprune.checkpoint import load_model

    model, payload = load_model(tmp_path / "runs/api/export/model.pt")  # reloads: the record kept its exclusions
    assert (tmp_path / "runs/api/export/model.onnx").is_file() and payload.pruning is not None
    exported = json.loads((tmp_path / "runs/api/export/export.json").read_text())
    assert exported["dense_timed_alongside"] is True and exported["dense_latency_ms"] > 0


@pytest.mark.slow
def test_plugin_example_installs_and_searches_as_written(tmp_path):
    docs = (ROOT / "docs" / "cost-models.md").read_text()
    package = tmp_path / "my-npu"
    (package / "my_npu").mkdir(parents=True)
    (package / "my_npu" / "__init__.py").write_text("")
    (package / "my_npu" / "cost.py").write_text(block_after("## Your own cost model", "python", "# my_npu/cost.py",
                                                            docs))
    (package / "pyproject.toml").write_text(block_after("## Your own cost model", "toml", "# pyproject.toml", docs))
    site = tmp_path / "site"
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                          "--target", str(site), str(package)], capture_output=True, text=True, timeout=300)
    assert pip.returncode == 0, pip.stderr[-2000:]
    assert (site / "my_npu" / "cost.py").is_file()  # my_npu.cost, not a top-level cost module
    env = {**os.environ, "PYTHONPATH": str(site)}
    for model in ("resnet20", "mlp"):  # the example's cost model reaches the README's 50 % budget
        done = subprocess.run([sys.executable, "-m", "autoprune.cli.main", "-q", "search", "--cost-model", "my-npu",
                               "--budget", "50%", "--model", model, "--data", "synthetic", "--agent", "random",
                               "--episodes", "3", "--val-size", "64", "--bn-batches", "1", "--rerank-top", "0",
                               "--out", str(tmp_path / model)], capture_output=True, text=True, timeout=300, env=env)
        assert done.returncode == 0, done.stderr[-2000:]
        assert '"cost_model": "my-npu"' in (tmp_path / model / "best_policy.json").read_text()


@pytest.mark.slow  # the one-call API also runs in the default run (test_own_model.py::test_one_python_call)
def test_one_call_python_example_runs_as_written(tmp_path):
    code = block_after("## Your own model and data", "python")
    knobs = 'COST, AGENT, EPISODES, EPOCHS = "lut", "thompson", 300, 5'
    assert knobs in code  # the one line the test changes: FLOPs, a random search, few episodes, one epoch
    code = code.replace(knobs, 'COST, AGENT, EPISODES, EPOCHS = "flops", "random", 4, 1')
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    latency, dense, verdict = done.stdout.strip().splitlines()[-1].split()  # measured side by side
    assert float(latency) > 0 and float(dense) > 0 and verdict == "None"  # a FLOPs budget: no latency verdict
    assert (tmp_path / "runs/mine/best_policy.json").is_file() and (tmp_path / "runs/mine/export/model.onnx").is_file()


MY_NET = """
import torch
from torch import nn

def build(width=16):
    torch.manual_seed(0)  # stands in for loading trained weights
    return nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, 4))
"""
MY_DATA = """
import torch
from torch.utils.data import TensorDataset

def splits():
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 4, (192,), generator=g)
    x = torch.randn(192, 3, 16, 16, generator=g) + y[:, None, None, None]
    return TensorDataset(x[:128], y[:128]), TensorDataset(x[128:], y[128:])
"""


@pytest.mark.slow  # the own-model CLI also runs in the default run (test_own_model.py)
def test_own_model_cli_example_runs_as_written(tmp_path):
    (tmp_path / "my_project").mkdir()
    (tmp_path / "my_project" / "net.py").write_text(MY_NET)
    (tmp_path / "my_project" / "data.py").write_text(MY_DATA)
    command = shlex.split(block_after("## Your own model and data", "bash").replace("\\\n", " "))  # as a shell reads it
    assert command[:2] == ["autoprune", "pipeline"]
    quick = ["--cost-model", "flops", "--agent", "random", "--episodes", "3", "--val-size", "64", "--bn-batches", "1",
             "--rerank-top", "0", "--round-to", "4", "--epochs", "1"]  # small settings, last on the line
    args = command[1:]
    done = subprocess.run([sys.executable, "-m", "autoprune.cli.main", "-q", *args, *quick], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "runs/mine/export/model.onnx").is_file()
