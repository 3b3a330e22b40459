"""The README's examples, run as written (with small settings where the text says so)."""

import os
import re
import subprocess
import sys
from pathlib import Path

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def block_after(heading: str, lang: str, first_line: str | None = None) -> str:
    """The first ``lang`` code block after ``heading`` (whose first line is ``first_line`` if given)."""
    text = README[README.index(heading):]
    for match in re.finditer(rf"```{lang}\n(.*?)```", text, re.S):
        if first_line is None or match.group(1).startswith(first_line):
            return match.group(1)
    raise AssertionError(f"no {lang} block after {heading!r}")


def test_python_api_example_runs_as_written(tmp_path):
    code = block_after("### Python API", "python")
    knobs = 'MODEL, DATA, COST, EPISODES, EPOCHS, OUT = "resnet20", "fashion-mnist", "lut", 100, 8, "runs/api"'
    assert knobs in code  # the one line the test changes: a tiny model, synthetic data, FLOPs, few episodes
    code = code.replace(knobs, 'MODEL, DATA, COST, EPISODES, EPOCHS, OUT = "mlp", "synthetic", "flops", 5, 1, "runs/api"')
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    from autoprune.checkpoint import load_model

    model, payload = load_model(tmp_path / "runs/api/export/model.pt")  # reloads: the record kept its exclusions
    assert (tmp_path / "runs/api/export/model.onnx").is_file() and payload["pruning"] is not None


def test_plugin_example_installs_and_searches_as_written(tmp_path):
    package = tmp_path / "my-npu"
    (package / "my_npu").mkdir(parents=True)
    (package / "my_npu" / "__init__.py").write_text("")
    (package / "my_npu" / "cost.py").write_text(block_after("### Your own cost model", "python", "# my_npu/cost.py"))
    (package / "pyproject.toml").write_text(block_after("### Your own cost model", "toml", "# pyproject.toml"))
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
