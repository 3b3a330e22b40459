"""Run folders and plug-ins that arrive from elsewhere: a planted plug-in runs no code unless the user
names it; nothing is written through a link or over a folder autoprune did not make; a finished
result is replaced only with ``--overwrite``."""

import json
import os

import pytest
import torch
from conftest import one_line, tiny_search

from autoprune.checkpoint import load_model, save_checkpoint
from autoprune.cli.main import main
from autoprune.errors import ConfigError
from autoprune.models import create_model
from autoprune.run_folder import MARKER, prepare_run_folder

TINY = tiny_search("50%")



# -- planted plug-ins --------------------------------------------------------------------------
@pytest.fixture
def planted(tmp_path, monkeypatch):
    """An unpacked archive: ``evilep.py`` (creates ``marker`` when imported) and a dist-info whose
    entry points name it as a model and an importance; the working directory is on ``sys.path``
    (as with ``python -m`` or a consented ``module:name``)."""
    folder = tmp_path / "unpacked"
    folder.mkdir()
    marker = tmp_path / "marker"
    (folder / "evilep.py").write_text(f"import pathlib\npathlib.Path({str(marker)!r}).write_text('ran')\n"
                                      "def build(**kw):\n    return None\n")
    (folder / "metrics.py").write_text("def score(model, batches):\n    return 0.5\n")
    info = folder / "evilep-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: evilep\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[autoprune.models]\npwnmodel = evilep:build\n"
                                           "[autoprune.importances]\npwnimp = evilep:build\n")
    monkeypatch.chdir(folder)
    monkeypatch.syspath_prepend(str(folder))
    return folder, marker


def _policy_naming(tmp_path, **fields) -> str:
    assert main(["-q", "search", *TINY, "--agent", "uniform", "--episodes", "1", "--out", str(tmp_path / "s")]) == 0
    data = json.loads((tmp_path / "s" / "best_policy.json").read_text())
    data.update(fingerprint=None, **fields)
    path = tmp_path / "pol.json"
    path.write_text(json.dumps(data))
    return str(path)


@pytest.mark.parametrize("field", [{"model": "pwnmodel"}, {"importance": "pwnimp"}])
def test_a_plugin_planted_beside_a_policy_runs_no_code(planted, tmp_path, capsys, field):
    folder, marker = planted
    pol = _policy_naming(tmp_path, **field)
    capsys.readouterr()
    code = main(["apply", pol, "--data", "synthetic", "--score", "metrics:score", "--out", str(tmp_path / "a")])
    assert code == 2
    assert "pwn" in one_line(capsys)
    assert not marker.exists()


def test_a_plugin_planted_beside_a_checkpoint_runs_no_code(planted, tmp_path, capsys):
    folder, marker = planted
    path = save_checkpoint(tmp_path / "ckpt.pt", create_model("mlp"), "mlp", input_shape=(1, 28, 28))
    payload = torch.load(path, weights_only=True)
    payload["model"] = "pwnmodel"
    torch.save(payload, path)
    with pytest.raises(ConfigError, match="pwnmodel"):
        load_model(path)
    assert main(["export", str(path), "--out", str(tmp_path / "e")]) == 2
    one_line(capsys)
    assert not marker.exists()


def test_a_consented_module_reference_does_not_put_the_working_directory_on_the_path(tmp_path, monkeypatch):
    import sys

    from autoprune.references import resolve

    (tmp_path / "mymetric.py").write_text("def score(model, batches):\n    return 1.0\n")
    monkeypatch.chdir(tmp_path)
    assert resolve("mymetric:score", "score function", "--score")(None, None) == 1.0
    assert str(tmp_path) not in sys.path and os.getcwd() not in sys.path


def test_a_plugin_named_on_the_command_line_loads_from_beside(tmp_path, monkeypatch, capsys):
    """The user's own consent: naming a plug-in for the run loads it wherever it was found."""
    (tmp_path / "mynet.py").write_text("from autoprune.models import create_model\n"
                                       "def build(**kw):\n    return create_model('mlp')\n")
    info = tmp_path / "mynet-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: mynet\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[autoprune.models]\nmynet = mynet:build\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    args = [a if a != "mlp" else "mynet" for a in TINY]
    assert main(["-q", "search", *args, "--agent", "uniform", "--out", str(tmp_path / "run")]) == 0


# -- links ---------------------------------------------------------------------------------------
@pytest.fixture
def outside(tmp_path):
    """Files standing for ``authorized_keys``, ``.bashrc`` and a folder outside any run folder."""
    root = tmp_path / "home"
    (root / "keep").mkdir(parents=True)
    (root / "keep" / "precious.txt").write_text("precious")
    (root / "authorized_keys").write_text("ssh-ed25519 AAAA user\n")
    return root


def _snapshot(root):
    return {p: p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("entry", [".write-test", "history.csv", "config.yaml", "agent", "model.pt"])
def test_a_symlink_in_a_run_folder_is_refused_and_nothing_outside_changes(tmp_path, outside, capsys, entry):
    before = _snapshot(outside)
    run = tmp_path / "run"
    run.mkdir()
    (run / MARKER).write_text("made by autoprune\n")
    target = outside / "keep" if entry == "agent" else outside / "authorized_keys"
    os.symlink(target, run / entry)
    assert main(["-q", "search", *TINY, "--agent", "random", "--episodes", "2", "--out", str(run)]) == 2
    assert "symbolic link" in one_line(capsys)
    assert main(["-q", "search", *TINY, "--agent", "random", "--episodes", "2", "--resume", "--out", str(run)]) == 2
    one_line(capsys)
    assert _snapshot(outside) == before


def test_a_symlink_planted_in_a_finished_run_is_refused_on_resume(tmp_path, outside, capsys):
    run = tmp_path / "run"
    assert main(["-q", "search", *TINY, "--agent", "amc-ddpg", "--episodes", "3", "--out", str(run)]) == 0
    before = _snapshot(outside)
    (run / "history.csv").unlink()
    os.symlink(outside / "authorized_keys", run / "history.csv")
    assert main(["-q", "search", "--resume", "--episodes", "5", "--out", str(run)]) == 2
    assert "history.csv is a symbolic link" in one_line(capsys)
    assert _snapshot(outside) == before


def test_a_hard_linked_file_in_a_run_folder_is_refused(tmp_path, outside):
    run = tmp_path / "run"
    run.mkdir()
    os.link(outside / "authorized_keys", run / "history.csv")
    with pytest.raises(ConfigError, match="hard-linked"):
        prepare_run_folder(run, resume=True)


def test_out_itself_a_symlink_is_refused(tmp_path, outside):
    os.symlink(outside, tmp_path / "run")
    with pytest.raises(ConfigError, match="is a symbolic link"):
        prepare_run_folder(tmp_path / "run")


def test_an_atomic_write_replaces_a_link_instead_of_following_it(tmp_path, outside):
    from autoprune.atomic import write_text_atomic

    os.symlink(outside / "authorized_keys", tmp_path / "summary.json")
    write_text_atomic(tmp_path / "summary.json", "{}")
    assert not (tmp_path / "summary.json").is_symlink()
    assert (outside / "authorized_keys").read_text().startswith("ssh-ed25519")


# -- foreign folders and finished results ------------------------------------------------------
def test_search_into_a_folder_autoprune_did_not_make_is_refused(tmp_path, capsys):
    foreign = tmp_path / "mine"
    (foreign / "agent" / "notes").mkdir(parents=True)
    (foreign / "config.yaml").write_text("my: settings\n")
    before = _snapshot(foreign)
    assert main(["-q", "search", *TINY, "--agent", "uniform", "--out", str(foreign)]) == 2
    assert "was not made by autoprune" in one_line(capsys)
    assert _snapshot(foreign) == before and (foreign / "agent" / "notes").is_dir()


@pytest.mark.parametrize("command", ["apply", "finetune", "export"])
def test_a_finished_model_is_replaced_only_with_overwrite(tmp_path, capsys, command):
    pol = _policy_naming(tmp_path)
    ckpt = save_checkpoint(tmp_path / "dense.pt", create_model("mlp"), "mlp", input_shape=(1, 28, 28))
    out = tmp_path / command
    args = {"apply": ["apply", pol, "--data", "synthetic"],
            "finetune": ["finetune", str(ckpt), "--data", "synthetic", "--epochs", "1", "--batch-size", "64"],
            "export": ["export", str(ckpt)]}[command]
    assert main(["-q", *args, "--out", str(out)]) == 0
    first = (out / "model.pt").read_bytes()
    capsys.readouterr()
    assert main(["-q", *args, "--out", str(out)]) == 2
    assert "--overwrite" in one_line(capsys) and (out / "model.pt").read_bytes() == first
    assert main(["-q", *args, "--out", str(out), "--overwrite"]) == 0


def test_a_foreign_model_pt_is_never_replaced(tmp_path, capsys):
    out = tmp_path / "theirs"
    out.mkdir()
    (out / "model.pt").write_bytes(b"their model")
    ckpt = save_checkpoint(tmp_path / "dense.pt", create_model("mlp"), "mlp", input_shape=(1, 28, 28))
    assert main(["-q", "export", str(ckpt), "--out", str(out), "--overwrite"]) == 2
    assert "not made by autoprune" in one_line(capsys)
    assert (out / "model.pt").read_bytes() == b"their model"
