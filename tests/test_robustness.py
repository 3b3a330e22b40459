"""A careless or hostile input ends in one line (exit 2), never a traceback; training never saves NaN
over a good model; sizes a file or option controls are bounded; workers die with their search."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch
from conftest import one_line, tiny_search
from PIL import Image

from autoprune.checkpoint import save_checkpoint
from autoprune.cli.main import main
from autoprune.models import create_model

TINY = tiny_search("50%")

USER = textwrap.dedent("""
    import math
    import torch
    from torch.utils.data import TensorDataset

    STEPS = {"n": 0}

    def nan_later(output, target):
        STEPS["n"] += 1
        loss = torch.nn.functional.cross_entropy(output, target)
        return loss * math.nan if STEPS["n"] > 3 else loss

    def text_loss(output, target):
        return "low"

    def vector_loss(output, target):
        return torch.nn.functional.cross_entropy(output, target, reduction="none")

    def raising_loss(output, target):
        raise ValueError("bad batch")

    def raising_score(model, batches):
        raise RuntimeError("metric server down")

    def nan_score(model, batches):
        return math.nan

    def late_raising_score(model, batches):  # fine for the check of the unpruned model, then down
        from pathlib import Path

        if Path("scored").exists():
            raise RuntimeError("metric server down")
        Path("scored").touch()
        return 0.5

    def text_score(model, batches):
        return "good"

    def _data(x, y):
        return TensorDataset(x[:96], y[:96]), TensorDataset(x[96:], y[96:])

    def nan_inputs():
        x = torch.randn(128, 1, 28, 28)
        x[5, 0, 0, 0] = math.nan
        return _data(x, torch.randint(0, 10, (128,)))

    def label_ten():
        y = torch.randint(0, 10, (128,))
        y[3] = 10
        return _data(torch.randn(128, 1, 28, 28), y)

    def label_minus_one():
        y = torch.randint(0, 10, (128,))
        y[7] = -1
        return _data(torch.randn(128, 1, 28, 28), y)

    def no_val():
        x, y = torch.randn(64, 1, 28, 28), torch.randint(0, 10, (64,))
        return TensorDataset(x, y), TensorDataset(x[:0], y[:0])

    class Flaky(torch.utils.data.Dataset):
        def __len__(self):
            return 128

        def __getitem__(self, i):
            if i == 70:
                raise RuntimeError("network share went away")
            return torch.randn(1, 28, 28), i % 10

    def flaky():
        return Flaky(), TensorDataset(torch.randn(32, 1, 28, 28), torch.randint(0, 10, (32,)))
""")


@pytest.fixture
def user(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "user.py").write_text(USER)
    return tmp_path



def _checkpoint(tmp_path):
    torch.manual_seed(0)
    return save_checkpoint(tmp_path / "dense.pt", create_model("mlp"), "mlp", input_shape=(1, 28, 28))


def test_a_nan_loss_stops_training_and_leaves_the_saved_model_untouched(user, tmp_path, capsys):
    checkpoint = _checkpoint(tmp_path)
    out = tmp_path / "ft"
    assert main(["-q", "finetune", str(checkpoint), "--data", "synthetic", "--epochs", "1", "--out", str(out)]) == 0
    good = (out / "model.pt").read_bytes()
    capsys.readouterr()
    assert main(["-q", "finetune", str(checkpoint), "--data", "synthetic", "--epochs", "2",
                 "--loss", "user.py:nan_later", "--out", str(out), "--overwrite"]) == 2
    err = one_line(capsys)
    assert "--loss" in err and "nan" in err and "step 4" in err
    assert (out / "model.pt").read_bytes() == good


def test_nan_weights_are_never_saved(tmp_path):
    from autoprune.errors import TrainingError

    model = create_model("mlp")
    path = save_checkpoint(tmp_path / "m.pt", model, "mlp")
    before = path.read_bytes()
    with torch.no_grad():
        next(model.parameters())[0, 0] = float("inf")
    with pytest.raises(TrainingError, match="NaN or infinite"):
        save_checkpoint(path, model, "mlp")
    assert path.read_bytes() == before


@pytest.mark.parametrize("data,message", [
    ("user.py:nan_inputs", "NaN or infinite"), ("user.py:label_ten", "label 10 is not a class"),
    ("user.py:label_minus_one", "label -1 is not a class"), ("user.py:flaky", "network share went away")])
def test_bad_training_data_is_refused_in_one_line(user, capsys, data, message):
    assert main(["-q", "train", "--model", "mlp", "--data", data, "--epochs", "1", "--out", "t"]) == 2
    assert message in one_line(capsys)
    assert not (user / "t" / "model.pt").exists()


@pytest.mark.parametrize("loss,message", [("text_loss", "returned str"), ("vector_loss", "shape (64,)"),
                                          ("raising_loss", "raised ValueError: bad batch")])
def test_a_loss_that_misbehaves_is_named_in_one_line(user, tmp_path, capsys, loss, message):
    checkpoint = _checkpoint(tmp_path)
    assert main(["-q", "finetune", str(checkpoint), "--data", "synthetic", "--epochs", "1", "--batch-size", "64",
                 "--loss", f"user.py:{loss}", "--out", "f"]) == 2
    err = one_line(capsys)
    assert f"user.py:{loss}" in err and message in err


@pytest.mark.parametrize("score,message", [("raising_score", "raised RuntimeError: metric server down"),
                                           ("nan_score", "returned nan"), ("text_score", "returned a str")])
def test_a_score_that_misbehaves_is_named_before_the_search(user, capsys, score, message):
    args = ["-q", "search", *TINY, "--agent", "random", "--episodes", "3", "--score", f"user.py:{score}",
            "--out", "s"]
    assert main(args) == 2
    err = one_line(capsys)
    assert message in err and "user.py:" + score in err and "(episode" not in err
    assert not (user / "s" / "history.csv").exists()  # found on the unpruned model, before any episode


@pytest.mark.parametrize("executor", ["local", pytest.param("processes", marks=pytest.mark.slow)])
def test_a_score_that_fails_during_the_search_is_named_with_its_episode(user, capsys, executor):
    args = ["-q", "search", *TINY, "--agent", "random", "--episodes", "3", "--score", "user.py:late_raising_score",
            "--executor", executor, "--workers", "1", "--out", "s"]
    assert main(args) == 2
    err = one_line(capsys)
    assert "raised RuntimeError: metric server down" in err and "user.py:late_raising_score" in err
    assert "(episode 0" in err


def test_a_timeout_too_short_says_timed_out(tmp_path, capsys):
    args = ["-q", "search", *TINY, "--agent", "random", "--episodes", "2", "--executor", "processes",
            "--workers", "1", "--worker-timeout", "0.001", "--out", str(tmp_path / "s")]
    assert main(args) == 2
    assert "timed out" in one_line(capsys)


def test_workers_are_capped_by_the_machine(tmp_path, capsys):
    from autoprune.parallel import cap_workers

    assert cap_workers(1000) <= (os.cpu_count() or 1)
    assert "capped" in capsys.readouterr().err
    assert cap_workers(1) == 1


@pytest.mark.slow
def test_workers_die_when_their_search_is_killed(tmp_path):
    out = tmp_path / "s"
    cmd = [sys.executable, "-m", "autoprune.cli.main", "-q", "search", *TINY, "--agent", "random",
           "--episodes", "100000", "--executor", "processes", "--workers", "2", "--out", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    from autoprune.search import read_history

    deadline = time.time() + 300
    while time.time() < deadline and len(read_history(out / "history.csv")) < 4:  # workers up and scoring
        time.sleep(0.2)
    workers = _children(proc.pid)
    assert len(workers) >= 2, "the workers did not start"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.time() + 10
    while time.time() < deadline and any(_alive(pid) for pid in workers):
        time.sleep(0.2)
    alive = [pid for pid in workers if _alive(pid)]
    assert not alive, f"workers {alive} outlived their search"


def _children(pid: int) -> list[int]:
    found = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in found.split()]


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except OSError:
        return False


def test_a_resumed_pipeline_fine_tunes_with_the_interrupted_runs_settings(tmp_path, capsys):
    out = tmp_path / "p"
    common = ["-q", "pipeline", *TINY, "--agent", "uniform", "--episodes", "1", "--out", str(out)]
    assert main([*common, "--epochs", "2", "--lr", "0.003"]) == 0
    (out / "finetune" / "finetune.json").unlink()  # as if it stopped during the fine-tune
    (out / "export" / "export.json").unlink()
    assert main(["-q", "pipeline", "--resume", "--out", str(out)]) == 0
    tuned = json.loads((out / "finetune" / "finetune.json").read_text())
    assert tuned["config"]["epochs"] == 2 and tuned["config"]["lr"] == 0.003


def _png_tree(root, broken: str):
    for split in ("train", "val"):
        for c in ("a", "b"):
            (root / split / c).mkdir(parents=True)
            for i in range(3):
                Image.new("L", (8, 8), color=i * 40).save(root / split / c / f"{i}.png")
    bad = root / "train" / "a" / "0.png"
    if broken == "truncated":
        bad.write_bytes(bad.read_bytes()[:40])
    else:
        Image.MAX_IMAGE_PIXELS, saved = None, Image.MAX_IMAGE_PIXELS
        Image.new("1", (20000, 20000)).save(bad)
        Image.MAX_IMAGE_PIXELS = saved
    return bad


@pytest.mark.parametrize("broken", ["truncated", "huge"])
def test_an_unreadable_image_is_named_in_one_line(tmp_path, capsys, broken):
    bad = _png_tree(tmp_path / "img", broken)
    assert main(["-q", "train", "--model", "mlp", "--data", f"imagefolder:{tmp_path / 'img'}", "--epochs", "1",
                 "--out", str(tmp_path / "t")]) == 2
    err = one_line(capsys)
    assert str(bad) in err and "disk" not in err


def test_an_empty_validation_split_is_named(user, capsys):
    assert main(["-q", "search", *TINY[:2], "--data", "user.py:no_val", *TINY[4:], "--agent", "uniform",
                 "--episodes", "1", "--out", "s"]) == 2
    assert "validation split is empty" in one_line(capsys)


def test_repeated_budgets_are_merged_and_budgets_without_a_policy_reported(tmp_path, capsys):
    from autoprune.search import SearchConfig

    config = SearchConfig(budgets=["0.5", "50%", "30%"]).validate()
    assert config.budgets == ["0.5", "30%"] and capsys.readouterr().err == ""  # validating prints nothing
    assert any("repeats a budget" in note for note in config.notes)  # the search says it when it starts
    budgets = [f"{p}%" for p in range(30, 90, 5)]  # 12 budgets, 9 episodes
    assert main(["search", *TINY[:6], "--budgets", *budgets, "--val-size", "64", "--bn-batches", "1",
                 "--agent", "random", "--episodes", "9", "--rerank-top", "0", "--out", str(tmp_path / "f")]) == 0
    captured = capsys.readouterr()
    assert "no feasible candidate for budget" in captured.out + captured.err


def test_a_policy_with_a_huge_input_shape_is_refused_at_once(tmp_path, capsys):
    assert main(["-q", "search", *TINY, "--agent", "uniform", "--episodes", "1", "--out", str(tmp_path / "s")]) == 0
    policy = json.loads((tmp_path / "s" / "best_policy.json").read_text())
    policy["input_shape"] = [1, 60000, 60000]
    (tmp_path / "p.json").write_text(json.dumps(policy))
    start = time.perf_counter()
    assert main(["apply", str(tmp_path / "p.json"), "--data", "synthetic", "--out", str(tmp_path / "a")]) == 2
    assert "elements per input" in one_line(capsys) and time.perf_counter() - start < 5


@pytest.mark.parametrize("field,value,message", [
    ("input_shape", [1, 60000, 60000], "elements per input"), ("num_classes", 10**12, "num_classes"),
    ("variants", {"50%": {"0": 10**12}}, "keeps"), ("variants", {"50%": {"0": -5}}, "keeps"),
    ("latency_ms", {"50%": -1.0}, "positive"), ("model_args", [1], "model_args")])
def test_dynamic_model_fields_are_checked(tmp_path, field, value, message):
    from autoprune.dynamic import load_dynamic
    from autoprune.errors import ConfigError

    model = create_model("mlp")
    payload = {"format": "autoprune-dynamic", "version": 1, "model": "mlp", "model_args": {},
               "input_shape": [1, 28, 28], "num_classes": 10, "state_dict": model.state_dict(),
               "variants": {}, "latency_ms": {}, "bn_stats": {}}
    if field == "variants":  # the widths given for the model's first group
        from autoprune.analysis import analyse_model

        group = analyse_model(model, torch.zeros(1, 1, 28, 28)).group_names[0]
        value = {label: {group: next(iter(kept.values()))} for label, kept in value.items()}
    payload[field] = value
    torch.save(payload, tmp_path / "dynamic.pt")
    with pytest.raises(ConfigError, match=message):
        load_dynamic(tmp_path / "dynamic.pt")


def test_variant_files_stay_inside_their_folder(tmp_path):
    from autoprune.dynamic import VariantSet
    from autoprune.errors import ConfigError

    data = {"format": "autoprune-variants", "version": 1, "input_shape": [1, 28, 28], "latency_settings": {},
            "variants": [{"label": "50%", "file": "../../../../etc/passwd", "latency_ms": 0.1, "kept": {},
                          "params": 1}]}
    (tmp_path / "variants.json").write_text(json.dumps(data))
    with pytest.raises(ConfigError, match="not a file in"):
        VariantSet.load(tmp_path)


def test_a_negative_calibration_scale_is_refused(tmp_path):
    from autoprune.costs import LatencyTable
    from autoprune.errors import ConfigError

    table = LatencyTable({})
    table.meta = {"calibration": {"scale": -2.0, "offset": 0.0}}
    table.save(tmp_path / "t.csv")
    with pytest.raises(ConfigError, match="scale must be a positive"):
        LatencyTable.load(tmp_path / "t.csv")


def test_a_binary_settings_file_and_a_damaged_checkpoint_are_one_line(tmp_path, capsys):
    (tmp_path / "c.yaml").write_bytes(bytes(range(256)) * 4)
    assert main(["search", "--config", str(tmp_path / "c.yaml"), "--out", str(tmp_path / "s")]) == 2
    assert "not text" in one_line(capsys)
    path = save_checkpoint(tmp_path / "m.pt", create_model("mlp"), "mlp", input_shape=(1, 28, 28))
    payload = torch.load(path, weights_only=True)
    payload["meta"] = [1, 2]
    torch.save(payload, path)
    assert main(["export", str(path), "--out", str(tmp_path / "e")]) == 2
    assert "'meta' must be a mapping" in one_line(capsys)


@pytest.mark.parametrize("body,message", [("raise RuntimeError('npu offline')", "raised RuntimeError: npu offline"),
                                          ("return None", "returned NoneType"), ("return 1.5", "returned float"),
                                          ("return 'fast'", "returned str")])
def test_a_cost_plugin_that_misbehaves_is_one_line(tmp_path, capsys, monkeypatch, body, message):
    from autoprune.costs import COST_MODELS, CostModel

    class Broken(CostModel):
        name = "broken"

        def cost(self, arch):
            exec(body.replace("return", "self.value ="), {}, {"self": self}) if body.startswith("return") else None
            if body.startswith("raise"):
                raise RuntimeError("npu offline")
            return self.value

    monkeypatch.setitem(COST_MODELS._factories, "broken", lambda analysis, **options: Broken(analysis.layers))
    args = ["search", *TINY[:4], "--cost-model", "broken", "--budget", "50%", "--agent", "uniform",
            "--episodes", "1", "--out", str(tmp_path / "s")]
    assert main(args) == 2
    assert message in one_line(capsys)
