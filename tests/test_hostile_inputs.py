"""Small hostile files and values: a NaN anywhere stops the stage in one line, a YAML bomb or an
oversized table is refused before it grows, data that does not fit the model is named before
training, and every file read back on resume is checked like the command line."""

import json
import os
import struct
import textwrap
import zlib

import numpy as np
import pytest
import torch
from conftest import one_line, tiny_search
from PIL import Image

from autoprune.checkpoint import save_checkpoint
from autoprune.cli.main import main
from autoprune.errors import ConfigError
from autoprune.models import create_model

TINY = tiny_search("50%")

DATA = textwrap.dedent("""
    import math
    import torch
    from torch.utils.data import TensorDataset

    def _x(n, shape=(1, 28, 28)):
        return torch.randn(n, *shape)

    def _y(n):
        return torch.arange(n) % 10

    def nan_val():
        x = _x(32)
        x[3, 0, 0, 0] = math.nan
        return TensorDataset(_x(96), _y(96)), TensorDataset(x, _y(32))

    def float_labels():
        return TensorDataset(_x(96), _y(96).float()), TensorDataset(_x(32), _y(32).float())

    def empty_train():
        return TensorDataset(_x(0), _y(0)), TensorDataset(_x(32), _y(32))

    def empty_val():
        return TensorDataset(_x(96), _y(96)), TensorDataset(_x(0), _y(0))

    def val_wrong_shape():
        return TensorDataset(_x(96), _y(96)), TensorDataset(_x(32, (1, 20, 20)), _y(32))

    def rgb():
        return TensorDataset(_x(96, (3, 28, 28)), _y(96)), TensorDataset(_x(32, (3, 28, 28)), _y(32))

    STEPS = {"n": 0}

    def nan_later(output, target):
        STEPS["n"] += 1
        loss = torch.nn.functional.cross_entropy(output, target)
        return loss * math.nan if STEPS["n"] > 3 else loss
""")


@pytest.fixture
def user(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "userdata.py").write_text(DATA)
    return tmp_path



def _checkpoint(tmp_path):
    return save_checkpoint(tmp_path / "dense.pt", create_model("mlp"), "mlp", input_shape=(1, 28, 28))


# -- non-finite values ---------------------------------------------------------------------------
def test_a_nan_validation_input_stops_fine_tuning_in_one_line(user, tmp_path, capsys):
    ckpt = _checkpoint(tmp_path)
    code = main(["-q", "finetune", str(ckpt), "--data", "userdata.py:nan_val", "--epochs", "1",
                 "--out", str(tmp_path / "ft")])
    assert code == 2 and "NaN or infinite inputs" in one_line(capsys)
    assert not (tmp_path / "ft" / "model.pt").exists()


def test_a_loss_turning_nan_in_re_ranking_stops_the_search_and_keeps_the_history(user, tmp_path, capsys):
    code = main(["-q", "search", *TINY, "--rerank-top", "2", "--rerank-steps", "8", "--agent", "random",
                 "--episodes", "4", "--loss", "userdata.py:nan_later", "--out", str(tmp_path / "run")])
    err = one_line(capsys)
    assert code == 2 and "re-ranking" in err and "nan" in err
    assert len((tmp_path / "run" / "history.csv").read_text().splitlines()) == 5  # header + 4 episodes


# -- bombs ---------------------------------------------------------------------------------------
BOMB = textwrap.dedent("""
    a: &a [x, x, x, x, x, x, x, x, x, x]
    b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]
    c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]
    d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]
    e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]
    f: [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]
""")


@pytest.mark.parametrize("where", ["config", "model-args", "agent-param", "resume"])
def test_a_yaml_anchor_bomb_is_refused_in_one_line(tmp_path, capsys, where):
    out = str(tmp_path / "run")
    if where == "config":
        (tmp_path / "c.yaml").write_text("agent_params:\n" + textwrap.indent(BOMB, "  "))
        args = ["search", *TINY, "--config", str(tmp_path / "c.yaml"), "--out", out]
    elif where == "model-args":
        args = ["search", *TINY, "--model-args", BOMB, "--out", out]
    elif where == "agent-param":
        args = ["search", *TINY, "--agent", "td3", "--agent-param", "net_arch=[&a 8, *a, *a]", "--out", out]
    else:
        assert main(["-q", "search", *TINY, "--agent", "uniform", "--out", out]) == 0
        config = (tmp_path / "run" / "config.yaml").read_text()
        (tmp_path / "run" / "config.yaml").write_text(config + BOMB)
        capsys.readouterr()
        args = ["search", "--resume", "--out", out]
    assert main(args) == 2
    err = one_line(capsys)
    assert "alias" in err or "YAML" in err


def test_a_diagonal_latency_table_is_refused_before_its_grid_is_built(tmp_path):
    from autoprune.costs.lut import FORMAT, LatencyTable

    rows = "\n".join(f"fc1,{i},{i},0.01" for i in range(1, 20_001))  # as a grid: 400 M cells
    path = tmp_path / "t.csv"
    path.write_text(f"# {json.dumps({'format': FORMAT, 'version': 1})}\nlayer,c_in,c_out,latency_ms\n{rows}\n")
    with pytest.raises(ConfigError, match="incomplete grid"):
        LatencyTable.load(path)


# -- data against the model -----------------------------------------------------------------------
@pytest.mark.parametrize("factory, message", [
    ("float_labels", "not class indices"),
    ("empty_train", "training split is empty"),
    ("empty_val", "validation split is empty"),
    ("val_wrong_shape", "validation inputs have shape [1, 20, 20]"),
    ("rgb", "inputs have shape [3, 28, 28]"),
])
def test_fine_tuning_names_data_that_does_not_fit_the_checkpoint(user, tmp_path, capsys, factory, message):
    ckpt = _checkpoint(tmp_path)
    code = main(["-q", "finetune", str(ckpt), "--data", f"userdata.py:{factory}", "--epochs", "1",
                 "--out", str(tmp_path / "ft")])
    assert code == 2 and message in one_line(capsys)


def _png_header(path, width, height):
    """A PNG whose header claims ``width`` x ``height`` (its pixel data is never read)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16))
                     + chunk(b"IEND", b""))


def _image_tree(root, classes=("a", "b"), size=(28, 28)):
    for split in ("train", "val"):
        for c in classes:
            (root / split / c).mkdir(parents=True, exist_ok=True)
            for i in range(3):
                Image.fromarray(np.full(size, 40 * i, dtype=np.uint8)).save(root / split / c / f"{i}.png")
    return root


@pytest.mark.parametrize("case, message", [
    ("huge", "over the"), ("fifo", "not a regular file"), ("one-class", "one class"), ("mixed", "make them one size"),
])
def test_an_image_folder_is_checked_before_decoding(tmp_path, capsys, case, message):
    root = _image_tree(tmp_path / "imgs", classes=("a",) if case == "one-class" else ("a", "b"))
    if case == "huge":
        _png_header(root / "train" / "a" / "9.png", 9000, 9000)
    elif case == "fifo":
        os.mkfifo(root / "train" / "a" / "pipe.png")
    elif case == "mixed":
        Image.fromarray(np.zeros((20, 20), dtype=np.uint8)).save(root / "train" / "b" / "9.png")
    weights = save_checkpoint(tmp_path / "w.pt", create_model("mlp", num_classes=2), "mlp", num_classes=2,
                              input_shape=(1, 28, 28))
    code = main(["-q", "search", "--model", "mlp", "--weights", str(weights), "--data", f"imagefolder:{root}",
                 "--cost-model", "flops",
                 "--agent", "uniform", "--val-size", "6", "--bn-batches", "1", "--rerank-top", "0",
                 "--verify-top", "0", "--out", str(tmp_path / "run")])
    assert code == 2 and message in one_line(capsys)


# -- files read back on resume --------------------------------------------------------------------
@pytest.mark.parametrize("damage, message", [
    (lambda t: t.replace("score", "scr", 1), "no score column"),
    (lambda t: t.replace("\n1,", "\nlots,", 1), "not a number"),
    (lambda t: t.replace('{"', '["', 1), "ratios or kept cell"),
])
def test_a_damaged_history_is_refused_on_resume(tmp_path, capsys, damage, message):
    out = tmp_path / "run"
    assert main(["-q", "search", *TINY, "--agent", "random", "--episodes", "3", "--out", str(out)]) == 0
    history = out / "history.csv"
    history.write_text(damage(history.read_text()))
    capsys.readouterr()
    assert main(["-q", "search", "--resume", "--episodes", "5", "--out", str(out)]) == 2
    assert message in one_line(capsys)


def test_a_private_agent_parameter_is_refused(tmp_path, capsys):
    code = main(["-q", "search", *TINY, "--agent", "td3", "--agent-param", "_vec_normalize_env=1",
                 "--out", str(tmp_path / "run")])
    assert code == 2 and "not a hyper-parameter name" in one_line(capsys)


def test_damaged_pipeline_settings_are_refused_on_resume(tmp_path):
    from autoprune.finetune import FinetuneConfig
    from autoprune.workflow.pipeline import STAGE_SETTINGS, stage_settings

    stage_settings(tmp_path, FinetuneConfig(), False, resume=False)
    path = tmp_path / STAGE_SETTINGS
    path.write_text(path.read_text().replace("batch_size: 128", "batch_size: 0"))
    with pytest.raises(ConfigError, match="bad setting"):
        stage_settings(tmp_path, FinetuneConfig(), False, resume=True)


def test_a_damaged_iterative_record_is_refused(tmp_path):
    from autoprune.workflow.iterative import IterativeSettings

    (tmp_path / "iterative.json").write_text("{not json")
    with pytest.raises(ConfigError, match="iterative.json"):
        IterativeSettings("ckpt.pt", "channels", 1).claim(tmp_path)


# -- smaller items --------------------------------------------------------------------------------
def test_a_policy_rounding_to_an_absurd_multiple_is_refused(tmp_path, capsys):
    assert main(["-q", "search", *TINY, "--agent", "uniform", "--out", str(tmp_path / "s")]) == 0
    data = json.loads((tmp_path / "s" / "best_policy.json").read_text())
    data["round_to"] = 10 ** 300
    (tmp_path / "p.json").write_text(json.dumps(data))
    capsys.readouterr()
    assert main(["apply", str(tmp_path / "p.json"), "--data", "synthetic", "--out", str(tmp_path / "a")]) == 2
    assert "round_to" in one_line(capsys)


def test_the_built_in_score_on_outputs_that_are_not_class_scores_is_one_line():
    from autoprune.errors import DataError
    from autoprune.scoring import accuracy

    model = torch.nn.Conv2d(1, 4, 3, padding=1)
    batches = [(torch.randn(8, 1, 6, 6), torch.randn(8, 4, 6, 6))]
    with pytest.raises(DataError, match="pass --score"):
        accuracy(model, batches)
