"""Files that travel are data: a reference (``module:name``, ``file.py:name``) read from a policy,
checkpoint, run folder or dynamic model runs only when the user names it for this run."""

import json
import textwrap

import pytest
import torch
import yaml
from conftest import tiny_search

import autoprune
from autoprune.checkpoint import load_model, save_checkpoint
from autoprune.cli.main import main
from autoprune.dynamic import load_dynamic
from autoprune.errors import ConfigError
from autoprune.models import create_model

TINY = tiny_search("50%")


@pytest.fixture
def attacker(tmp_path, monkeypatch):
    """References an attacker would plant: a shell command, a Python file and a module in the
    working directory, each of which would create ``marker`` if it ever ran."""
    monkeypatch.chdir(tmp_path)
    marker = tmp_path / "marker"
    code = f"import pathlib\npathlib.Path({str(marker)!r}).write_text('ran')\ndef build(**kw):\n    return None\n"
    (tmp_path / "evil.py").write_text(code)
    (tmp_path / "evilmod.py").write_text(code)
    refs = {"os": ("os:system", {"command": f"touch {marker}"}), "file": (f"{tmp_path / 'evil.py'}:build", {}),
            "module": ("evilmod:build", {})}
    return marker, refs


def _error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    return err


def _policy(tmp_path, ref, args):
    main(["-q", "search", *TINY, "--agent", "uniform", "--episodes", "1", "--out", str(tmp_path / "s")])
    data = json.loads((tmp_path / "s" / "best_policy.json").read_text())
    data.update(model=ref, model_args=args, fingerprint=None)
    path = tmp_path / "shared_policy.json"
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize("kind", ["os", "file", "module"])
def test_a_policy_naming_code_runs_nothing_and_says_how_to_consent(attacker, tmp_path, capsys, kind):
    marker, refs = attacker
    ref, args = refs[kind]
    path = _policy(tmp_path, ref, args)
    capsys.readouterr()
    assert main(["apply", str(path), "--data", "synthetic", "--out", str(tmp_path / "o")]) == 2
    err = _error_line(capsys)
    assert "names code to run" in err and "add --model" in err and ref.split(":")[-1] in err
    assert main(["dynamic", str(path), "--data", "synthetic", "--out", str(tmp_path / "d")]) == 2
    _error_line(capsys)
    assert not marker.exists()
    assert not (tmp_path / "o").exists()  # refused before any work: no folder left


@pytest.mark.parametrize("kind", ["os", "file", "module"])
def test_a_checkpoint_naming_code_runs_nothing(attacker, tmp_path, capsys, kind):
    marker, refs = attacker
    ref, args = refs[kind]
    path = save_checkpoint(tmp_path / "model.pt", create_model("mlp"), "mlp", input_shape=(1, 28, 28))
    payload = torch.load(path, weights_only=True)
    payload.update(model=ref, model_args=args)
    torch.save(payload, path)
    with pytest.raises(ConfigError, match="names code to run"):
        load_model(path)
    for command in (["export", str(path), "--out", str(tmp_path / "e")],
                    ["finetune", str(path), "--data", "synthetic", "--epochs", "1", "--out", str(tmp_path / "f")]):
        assert main(command) == 2
        assert "names code to run" in _error_line(capsys)
    assert not marker.exists()


@pytest.mark.parametrize("setting", ["model", "data", "score", "loss"])
def test_a_run_folder_naming_code_is_not_resumed_without_consent(attacker, tmp_path, capsys, setting):
    marker, refs = attacker
    out = tmp_path / "run"
    assert main(["-q", "search", *TINY, "--agent", "random", "--episodes", "2", "--out", str(out)]) == 0
    config = yaml.safe_load((out / "config.yaml").read_text())
    config[setting] = refs["file"][0]
    (out / "config.yaml").write_text(yaml.safe_dump(config))
    capsys.readouterr()
    assert main(["search", "--resume", "--episodes", "4", "--out", str(out)]) == 2
    assert f"--{setting}" in _error_line(capsys)
    settings = tmp_path / "shared.yaml"  # a settings file passed with --config is checked the same way
    settings.write_text(yaml.safe_dump({setting: refs["module"][0]}))
    assert main(["search", "--config", str(settings), "--out", str(tmp_path / "other")]) == 2
    assert "names code to run" in _error_line(capsys)
    assert not marker.exists()


def test_a_dynamic_model_naming_code_runs_nothing(attacker, tmp_path):
    marker, refs = attacker
    payload = {"format": "autoprune-dynamic", "version": 1, "model": refs["os"][0], "model_args": refs["os"][1],
               "input_shape": [1, 28, 28], "num_classes": 10, "state_dict": {}, "variants": {}, "latency_ms": {},
               "bn_stats": {}}
    torch.save(payload, tmp_path / "dynamic.pt")
    with pytest.raises(ConfigError, match="names code to run"):
        load_dynamic(tmp_path / "dynamic.pt")
    assert not marker.exists()


def test_naming_the_same_reference_consents(tmp_path, monkeypatch, capsys):
    """The user's own factory, named again on the command line (or in Python), is used as before."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "net.py").write_text(textwrap.dedent("""
        import torch
        from torch import nn

        def build(width=8):
            torch.manual_seed(0)
            return nn.Sequential(nn.Flatten(), nn.Linear(784, width), nn.ReLU(), nn.Linear(width, 10))
    """))
    out = tmp_path / "s"
    assert main(["-q", "search", *TINY[2:], "--model", "net.py:build", "--model-args", '{"width": 16}',
                 "--input-shape", "1,28,28", "--data", "synthetic", "--agent", "uniform", "--episodes", "1",
                 "--out", str(out)]) == 0
    policy = out / "best_policy.json"
    assert main(["apply", str(policy), "--data", "synthetic", "--out", str(tmp_path / "a")]) == 2
    assert "--model" in _error_line(capsys)
    assert main(["apply", str(policy), "--model", "net.py:build", "--model-args", '{"width": 16}',
                 "--data", "synthetic", "--out", str(tmp_path / "a")]) == 0
    checkpoint = tmp_path / "a" / "model.pt"
    with pytest.raises(ConfigError, match="names code to run"):
        load_model(checkpoint)
    with autoprune.consent("net.py:build"):
        model, info = load_model(checkpoint)
    assert info.model.endswith("net.py:build") and model(torch.randn(2, 1, 28, 28)).shape == (2, 10)
    assert load_model(checkpoint, model_name="net.py:build")[1].pruning is not None  # naming it consents
    assert main(["export", str(checkpoint), "--model", "net.py:build", "--out", str(tmp_path / "e")]) == 0
