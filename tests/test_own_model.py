"""A user's own model, data, score and hardware settings: by reference from the CLI, and in one Python call."""

import json
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

import autoprune
from autoprune.checkpoint import load_model
from autoprune.cli.main import main
from autoprune.data import load_splits

NET = textwrap.dedent('''
    import torch
    from torch import nn

    class Net(nn.Module):
        """3-channel images, 4 classes."""
        def __init__(self, width=16, classes=4, in_ch=3):
            super().__init__()
            self.body = nn.Sequential(
                nn.Conv2d(in_ch, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
                nn.Conv2d(width, 2 * width, 3, padding=1, stride=2), nn.BatchNorm2d(2 * width), nn.ReLU(),
                nn.AdaptiveAvgPool2d(1), nn.Flatten())
            self.head = nn.Linear(2 * width, classes)
        def forward(self, x):
            return self.head(self.body(x))

    def build(width=16, classes=4, in_ch=3):
        torch.manual_seed(0)  # stands in for loading trained weights: the same model every call
        return Net(width, classes, in_ch)

    def vectors():
        torch.manual_seed(0)
        return nn.Sequential(nn.Linear(20, 32), nn.ReLU(), nn.Linear(32, 24), nn.ReLU(), nn.Linear(24, 3))

    def fresh():
        return Net()

    class TwoIn(nn.Module):
        def __init__(self):
            super().__init__(); self.a = nn.Linear(8, 16); self.b = nn.Linear(16, 2)
        def forward(self, x, y):
            return self.b(self.a(x) + y)

    def two_inputs():
        torch.manual_seed(0)
        return TwoIn()

    class Branchy(nn.Module):
        def __init__(self):
            super().__init__(); self.a = nn.Linear(8, 16); self.b = nn.Linear(16, 2); self.c = nn.Linear(16, 2)
        def forward(self, x):
            h = self.a(x)
            return self.b(h) if x.sum() > 0 else self.c(h)

    def branchy():
        torch.manual_seed(0)
        return Branchy()

    def not_a_model():
        return 42

    def broken():
        raise RuntimeError("weights server down")

    def fewest_params(model, batches):
        """A score that is not accuracy: smaller is better, so minus the parameter count."""
        return -sum(p.numel() for p in model.parameters()) / 1e3
''')

DATA = textwrap.dedent('''
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    def _images(n, seed):
        g = torch.Generator().manual_seed(seed)
        y = torch.randint(0, 4, (n,), generator=g)
        return TensorDataset(torch.randn(n, 3, 32, 32, generator=g) * 0.5 + y[:, None, None, None].float(), y)

    def datasets():
        return _images(192, 0), _images(96, 1)

    def loaders():
        return (DataLoader(_images(192, 0), batch_size=32, shuffle=True), DataLoader(_images(96, 1), batch_size=48),
                DataLoader(_images(64, 2), batch_size=64))

    def augmented():
        return _images(64, 0), _images(32, 1)
    augmented.augment = "crop,flip"

    def vectors():
        g = torch.Generator().manual_seed(0)
        y = torch.randint(0, 3, (160,), generator=g)
        x = torch.randn(160, 20, generator=g) + torch.nn.functional.one_hot(y, 20).float() * 2
        return TensorDataset(x[:96], y[:96]), TensorDataset(x[96:], y[96:])

    def not_data():
        return "train.csv"
''')

QUICK = ["--cost-model", "flops", "--agent", "random", "--episodes", "4", "--budget", "60%", "--val-size", "64",
         "--bn-batches", "1", "--rerank-top", "0", "--seeds"]


@pytest.fixture
def user(tmp_path, monkeypatch):
    """A user's project: ownnet.py (models, a score) and owndata.py (data), importable as modules too."""
    (tmp_path / "ownnet.py").write_text(NET)
    (tmp_path / "owndata.py").write_text(DATA)
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


@pytest.mark.parametrize("form", ["file", "module"])
def test_own_model_and_data_go_through_analyse_search_apply_export(user, tmp_path, monkeypatch, capsys, form):
    model = f"{user}/ownnet.py:build" if form == "file" else "ownnet:build"
    data = f"{user}/owndata.py:datasets" if form == "file" else "owndata:datasets"
    assert main(["analyse", "--model", model, "--input-shape", "3,32,32"]) == 0
    assert "2 prunable groups" in capsys.readouterr().out
    run = tmp_path / "run"
    assert main(["search", "--model", model, "--data", data, *QUICK, "--out", str(run)]) == 0
    policy = json.loads((run / "best_policy.json").read_text())
    assert policy["input_shape"] == [3, 32, 32]
    assert policy["model"] == (f"{(user / 'ownnet.py').resolve()}:build" if form == "file" else "ownnet:build")
    assert main(["apply", str(run / "best_policy.json"), "--model", model, "--data", data,
                 "--out", str(tmp_path / "a")]) == 0  # naming the policy's factory consents to running it
    applied = json.loads((tmp_path / "a" / "apply.json").read_text())
    assert applied["test_split"].startswith("val")  # the data factory gave no test split, and it says so
    # BN recalibrated on the search's batches: the applied model reproduces the search's score
    assert applied["val_score"] == pytest.approx(policy["score"]["val"], abs=1e-6)
    assert main(["export", str(tmp_path / "a" / "model.pt"), "--model", model, "--out", str(tmp_path / "e")]) == 0
    exported = json.loads((tmp_path / "e" / "export.json").read_text())
    assert exported["latency_ms"] > 0 and exported["model"] == policy["model"]
    monkeypatch.chdir(tmp_path.parent)  # the recorded reference rebuilds the model from anywhere
    with autoprune.consent(policy["model"]):
        model_, payload = load_model(tmp_path / "e" / "model.pt")
    assert model_(torch.randn(2, 3, 32, 32)).shape == (2, 4)
    assert [m.out_channels for m in model_.modules() if isinstance(m, torch.nn.Conv2d)] == [
        policy["channels"]["body.0"], policy["channels"]["body.3"]]


def test_model_args_and_a_plain_state_dict(user, tmp_path, capsys):
    import ownnet

    trained = ownnet.build(width=8)
    torch.nn.init.constant_(trained.head.bias, 0.25)
    torch.save(trained.state_dict(), tmp_path / "sd.pt")
    model, payload = load_model(tmp_path / "sd.pt", f"{user}/ownnet.py:build", {"width": 8})
    assert torch.equal(model.head.bias, trained.head.bias) and payload.model_args == {"width": 8}
    assert main(["analyse", "--model", f"{user}/ownnet.py:build", "--model-args", "width: 8", "--weights",
                 str(tmp_path / "sd.pt"), "--input-shape", "3,32,32"]) == 0
    assert "channels" in capsys.readouterr().out
    # a built-in's plain state dict loads too
    torch.save(autoprune.models.create_model("mlp").state_dict(), tmp_path / "mlp.pt")
    assert main(["analyse", "--model", "mlp", "--weights", str(tmp_path / "mlp.pt")]) == 0


def test_data_factories_returning_datasets_and_dataloaders(user):
    for name, val_batches in (("datasets", 1), ("loaders", 2)):
        splits = load_splits(f"{user}/owndata.py:{name}")
        assert splits.input_shape == (3, 32, 32) and splits.augment == ()  # off for data by reference
        assert splits.num_classes == 4  # from the labels: the data declares none
        assert splits.val_length() == 96
        assert sum(len(y) for _, y in splits.train(32, limit=100)) == 100
        assert len(list(splits.val(batch_size=96 if name == "datasets" else 500))) == val_batches
        first = [y.tolist() for _, y in splits.val(limit=50)]
        assert first == [y.tolist() for _, y in splits.val(limit=50)]  # the scoring slice is fixed
        bn = [y.tolist() for _, y in splits.train(32, shuffle=False, limit=64)]
        assert bn == [y.tolist() for _, y in splits.train(32, shuffle=False, limit=64)]  # a shuffling loader too
    assert load_splits(f"{user}/owndata.py:augmented").augment == ("crop", "flip")  # declared by the factory
    assert load_splits(f"{user}/owndata.py:augmented", augment="none").augment == ()
    assert load_splits("synthetic").augment == ("crop", "flip")
    assert load_splits(f"{user}/owndata.py:loaders").has_test


def test_search_streams_dataloaders(user, tmp_path):
    run = tmp_path / "r"
    assert main(["search", "--model", f"{user}/ownnet.py:build", "--data", f"{user}/owndata.py:loaders",
                 *QUICK, "--out", str(run)]) == 0
    history = pd.read_csv(run / "history.csv")
    assert len(history) == 4 and history["score"].between(0, 1).all()


def _png_tree(root, size=(12, 10), classes=("cat", "dog"), per_class=6):
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for k, c in enumerate(classes):
            (root / split / c).mkdir(parents=True)
            for i in range(per_class):
                pixels = rng.integers(0, 80, (*size, 3), dtype=np.uint8) + 120 * k
                Image.fromarray(pixels.astype(np.uint8)).save(root / split / c / f"{i}.png")


def test_image_folder_of_pngs(user, tmp_path):
    _png_tree(tmp_path / "imgs")
    splits = load_splits(f"imagefolder:{tmp_path / 'imgs'}")
    assert splits.input_shape == (3, 12, 10) and splits.num_classes == 2 and splits.val_length() == 12
    x, y = next(iter(splits.val(batch_size=12)))
    assert x.shape == (12, 3, 12, 10) and 0 <= float(x.min()) and float(x.max()) <= 1
    assert y.tolist() == [0] * 6 + [1] * 6 and float(x[6:].mean()) > float(x[:6].mean())
    resized = load_splits(f"imagefolder:{tmp_path / 'imgs'}", input_shape=(3, 16, 16))
    assert resized.input_shape == (3, 16, 16)
    run = tmp_path / "run"
    assert main(["search", "--model", f"{user}/ownnet.py:build", "--model-args", '{"classes": 2}',
                 "--data", f"imagefolder:{tmp_path / 'imgs'}", *QUICK, "--val-size", "12", "--out", str(run)]) == 0
    assert json.loads((run / "best_policy.json").read_text())["input_shape"] == [3, 12, 10]


def test_a_custom_score_drives_the_search(user, tmp_path):
    run = tmp_path / "s"
    assert main(["search", "--model", f"{user}/ownnet.py:build", "--data", f"{user}/owndata.py:datasets",
                 *QUICK, "--episodes", "6", "--score", f"{user}/ownnet.py:fewest_params", "--out", str(run)]) == 0
    history = pd.read_csv(run / "history.csv")
    summary = json.loads((run / "summary.json").read_text())
    assert summary["score"] == "fewest_params" and "validation fewest_params" in (run / "report.md").read_text()
    # the score is the function's value (a pruned copy's weights, biases and BN included), and the
    # best policy is the candidate that maximises it
    assert (history["score"] < 0).all()
    assert summary["best"]["episode"] == int(history.loc[history["score"].idxmax(), "episode"])
    assert history["params"].iloc[history["score"].argmax()] == history["params"].min()


def test_a_non_image_model_on_vectors(user, tmp_path):
    run = tmp_path / "v"
    assert main(["search", "--model", f"{user}/ownnet.py:vectors", "--data", f"{user}/owndata.py:vectors",
                 *QUICK, "--out", str(run)]) == 0
    policy = json.loads((run / "best_policy.json").read_text())
    assert policy["input_shape"] == [20] and set(policy["ratios"]) == {"0", "2"}
    assert main(["apply", str(run / "best_policy.json"), "--model", f"{user}/ownnet.py:vectors",
                 "--data", f"{user}/owndata.py:vectors", "--out", str(tmp_path / "a")]) == 0
    model, _ = load_model(tmp_path / "a" / "model.pt", f"{user}/ownnet.py:vectors")
    assert model(torch.randn(5, 20)).shape == (5, 3)


def test_one_python_call(user):
    import ownnet

    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 4, (160,), generator=g)
    x = torch.randn(160, 3, 32, 32, generator=g) + y[:, None, None, None].float()
    result = autoprune.prune_to_budget(ownnet.build(), x[:1], (x[:96], y[:96]), (x[96:], y[96:]), budget="60%",
                                       cost_model="flops", agent="random", episodes=4, out=user / "one",
                                       progress=False, rerank_top=0, seeds=[])
    assert (user / "one" / "best_policy.json").is_file() and result.folder == user / "one"
    widths = [m.out_channels for m in result.model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert widths == [result.policy.channels["body.0"], result.policy.channels["body.3"]] and widths != [16, 32]
    assert autoprune.evaluation.evaluate(result.model, [(x[96:], y[96:])]) == pytest.approx(result.val_score)
    tuned = autoprune.finetune_model(result.model, (x[:96], y[:96]), (x[96:], y[96:]), epochs=1)
    exported = autoprune.export_model(tuned, user / "onnx", x[:1], result.policy, dense=ownnet.build())
    assert exported["latency_ms"] > 0 and (user / "onnx" / "model.onnx").is_file()
    assert exported["dense_timed_alongside"] is True and exported["dense_latency_ms"] > 0


@pytest.mark.parametrize("args, message", [
    (["--model", "{u}/missing.py:build"], "does not exist"),
    (["--model", "{u}/ownnet.py:nope"], "has no 'nope'"),
    (["--model", "no_such_pkg.mod:build"], "no module named 'no_such_pkg'"),
    (["--model", "{u}/ownnet.py:not_a_model"], "not a torch nn.Module"),
    (["--model", "{u}/ownnet.py:broken"], "weights server down"),
    (["--model", "{u}/ownnet.py:build", "--model-args", "[1, 2]"], "--model-args must be key-values"),
    (["--model", "{u}/ownnet.py:build", "--model-args", '{"depth": 3}'], "check --model-args"),
    (["--model", "resnet20", "--model-args", '{"width": 3}'], "built-in 'resnet20'"),
    (["--model", "{u}/ownnet.py:fresh"], "different weights on every call"),
    (["--model", "{u}/ownnet.py:two_inputs", "--input-shape", "8"], "takes more than one input"),
    (["--model", "{u}/ownnet.py:branchy", "--input-shape", "8"], "runs different layers"),
    (["--model", "{u}/ownnet.py:build", "--input-shape", "8"], "pass the shape of one input"),
    (["--model", "{u}/ownnet.py:build", "--input-shape", "3,x,32"], "--input-shape must be"),
    (["--val-size", "500"], "more than the 96 samples"),
    (["--data", "{u}/owndata.py:not_data"], "must return (train, val)"),
    (["--data", "imagefolder:{u}/nothing"], "no such folder"),
    (["--provider", "warp-drive"], "this onnxruntime offers"),
    (["--score", "{u}/ownnet.py:nope"], "has no 'nope'"),
    (["--torch-device", "tpu7"], "--torch-device"),
    (["--latency-threads", "0"], "--latency-threads"),
    (["--augment", "rotate"], "--augment 'rotate' is not known"),
])
def test_bad_own_inputs_are_one_line_exit_2(user, tmp_path, capsys, args, message):
    args = [a.replace("{u}", str(user)) for a in args]
    base = ["--model", f"{user}/ownnet.py:build", "--data", f"{user}/owndata.py:datasets"]
    code = main(["search", *base, *QUICK, "--out", str(tmp_path / "run"), *args])
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1, err
    assert not (tmp_path / "run").exists()


def test_cuda_is_refused_in_one_line_where_there_is_none(user, tmp_path, capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    code = main(["search", "--model", f"{user}/ownnet.py:build", "--data", f"{user}/owndata.py:datasets", *QUICK,
                 "--torch-device", "cuda", "--out", str(tmp_path / "run")])
    assert code == 2 and "not available on this machine" in capsys.readouterr().err


def test_provider_reaches_the_latency_settings(user, tmp_path):
    run = tmp_path / "p"
    assert main(["search", "--model", f"{user}/ownnet.py:build", "--data", f"{user}/owndata.py:datasets",
                 *QUICK, "--out", str(run)]) == 0
    assert main(["apply", str(run / "best_policy.json"), "--model", f"{user}/ownnet.py:build",
                 "--data", f"{user}/owndata.py:datasets", "--out", str(tmp_path / "a")]) == 0
    assert main(["export", str(tmp_path / "a" / "model.pt"), "--model", f"{user}/ownnet.py:build", "--provider", "cpu",
                 "--out", str(tmp_path / "e")]) == 0
    exported = json.loads((tmp_path / "e" / "export.json").read_text())
    assert exported["latency_settings"]["provider"] == "CPUExecutionProvider"


def test_a_module_reference_from_the_working_directory(user, tmp_path):
    import subprocess
    import sys

    script = Path(sys.executable).parent / "autoprune"  # the console script: the folder is not on sys.path
    run = subprocess.run([str(script), "-q", "search", "--model", "ownnet:build",
                          "--data", "owndata:datasets", *QUICK, "--out", "r"], cwd=user, capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert json.loads((user / "r" / "best_policy.json").read_text())["model"] == "ownnet:build"


def test_train_sensitivity_and_pipeline_take_references(user, tmp_path):
    model, data = f"{user}/ownnet.py:build", f"{user}/owndata.py:loaders"
    assert main(["train", "--model", model, "--model-args", "width: 8", "--data", data, "--epochs", "1",
                 "--lr", "0.05", "--out", str(tmp_path / "t")]) == 0
    trained, payload = load_model(tmp_path / "t" / "model.pt", model)
    assert payload.model_args == {"width": 8} and payload.input_shape == (3, 32, 32)
    assert main(["sensitivity", "--model", model, "--model-args", "width: 8", "--weights", str(tmp_path / "t" / "model.pt"),
                 "--data", data, "--ratios", "0.5", "--val-size", "48", "--out", str(tmp_path / "s")]) == 0
    assert set(pd.read_csv(tmp_path / "s" / "sensitivity.csv")["group"]) == {"body.0", "body.3"}
    assert main(["pipeline", "--model", model, "--model-args", "width: 8", "--weights", str(tmp_path / "t" / "model.pt"),
                 "--data", data, *QUICK, "--budget", "80%", "--round-to", "4", "--epochs", "1", "--distill",
                 "--out", str(tmp_path / "p")]) == 0
    summary = json.loads((tmp_path / "p" / "pipeline.json").read_text())
    assert summary["latency_ms"] > 0 and summary["params"][1] < summary["params"][0]
    tuned, payload = load_model(tmp_path / "p" / "finetune" / "model.pt", model)
    assert payload.model_args == {"width": 8} and tuned(torch.randn(1, 3, 32, 32)).shape == (1, 4)
