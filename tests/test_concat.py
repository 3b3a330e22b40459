"""Channels joined by torch.cat (Inception branches, DenseNet blocks) and a flatten before a Linear:
groups are named once, pruned as a masked reference says, and priced as the pruned model costs."""

import pytest
import torch
from torch import nn

from autoprune.analysis import analyse_model
from autoprune.costs import FlopsCostModel
from autoprune.pruning import MaskedPruner, rank_channels
from autoprune.pruning.physical import prune_physically


def _bn_relu(c):
    return nn.Sequential(nn.BatchNorm2d(c), nn.ReLU())


class Inception(nn.Module):
    """Three branches of different widths concatenated, then fused."""

    def __init__(self):
        super().__init__()
        self.stem, self.s = nn.Conv2d(3, 16, 3, padding=1), _bn_relu(16)
        self.b1, self.n1 = nn.Conv2d(16, 8, 1), _bn_relu(8)
        self.b3, self.n3 = nn.Conv2d(16, 24, 3, padding=1), _bn_relu(24)
        self.b5, self.n5 = nn.Conv2d(16, 12, 5, padding=2), _bn_relu(12)
        self.fuse, self.f = nn.Conv2d(44, 16, 1), _bn_relu(16)
        self.head = nn.Linear(16, 5)

    def forward(self, x):
        x = self.s(self.stem(x))
        x = torch.cat([self.n1(self.b1(x)), self.n3(self.b3(x)), self.n5(self.b5(x))], 1)
        return self.head(self.f(self.fuse(x)).mean((2, 3)))


class Dense(nn.Module):
    """DenseNet-style: every layer sees the concatenation of all earlier outputs."""

    def __init__(self):
        super().__init__()
        self.stem, self.s = nn.Conv2d(3, 16, 3, padding=1), _bn_relu(16)
        self.c1, self.n1 = nn.Conv2d(16, 8, 3, padding=1), _bn_relu(8)
        self.c2, self.n2 = nn.Conv2d(24, 8, 3, padding=1), _bn_relu(8)
        self.fuse, self.f = nn.Conv2d(32, 16, 1), _bn_relu(16)
        self.head = nn.Linear(16, 5)

    def forward(self, x):
        x = self.s(self.stem(x))
        x = torch.cat([x, self.n1(self.c1(x))], 1)
        x = torch.cat([x, self.n2(self.c2(x))], 1)
        return self.head(self.f(self.fuse(x)).mean((2, 3)))


class InceptionResidual(nn.Module):
    """Three branches concatenated and added back to the stem's output (Inception-ResNet style):
    each slice of the stem is tied to one branch, so the stem's output belongs to three groups."""

    def __init__(self):
        super().__init__()
        self.stem, self.s = nn.Conv2d(3, 24, 3, padding=1), _bn_relu(24)
        self.b1, self.n1 = nn.Conv2d(24, 8, 1), _bn_relu(8)
        self.b3, self.n3 = nn.Conv2d(24, 8, 3, padding=1), _bn_relu(8)
        self.b5, self.n5 = nn.Conv2d(24, 8, 5, padding=2), _bn_relu(8)
        self.fuse, self.f = nn.Conv2d(24, 16, 1), _bn_relu(16)
        self.head = nn.Linear(16, 5)

    def forward(self, x):
        x = self.s(self.stem(x))
        x = x + torch.cat([self.n1(self.b1(x)), self.n3(self.b3(x)), self.n5(self.b5(x))], 1)
        return self.head(self.f(self.fuse(x)).mean((2, 3)))


def flattened():
    """A Linear after a flatten: each conv channel feeds 16 input features."""
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(4),
                         nn.Flatten(), nn.Linear(128, 16), nn.ReLU(), nn.Linear(16, 5))


@pytest.mark.parametrize("build", [Inception, Dense, flattened, InceptionResidual])
def test_concatenated_and_flattened_channels_prune_and_price_correctly(build):
    torch.manual_seed(0)
    model = build().eval()
    for m in model.modules():  # non-trivial BN statistics, so a wrong channel shows in the output
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
    x = torch.randn(3, 3, 12, 12)
    analysis = analyse_model(model, x[:1])
    names = analysis.group_names
    assert len(names) == len(set(names)) and len(names) >= 2
    ranking = rank_channels(analysis, "l1")
    flops = FlopsCostModel(analysis.layers)
    generator = torch.Generator().manual_seed(1)
    for _ in range(4):
        kept = {g.name: int(torch.randint(1, g.channels + 1, (1,), generator=generator)) for g in analysis.groups}
        pruned = prune_physically(analysis, ranking, kept).eval()
        with MaskedPruner(analysis, ranking).applied(kept):
            reference = model(x)
        assert torch.allclose(pruned(x), reference, atol=1e-5)
        real = FlopsCostModel(analyse_model(pruned, x[:1]).layers).dense_cost()
        predicted = flops.cost(kept)
        assert (predicted.flops, predicted.params) == (real.flops, real.params)


class Chunked(nn.Module):
    """The channel axis split with torch.chunk: which channels reach which consumer depends on
    where they sit, which Torch-Pruning does not follow; unevenly removed channels break it."""

    def __init__(self):
        super().__init__()
        self.c = nn.Conv2d(3, 16, 3, padding=1)
        self.d, self.e = nn.Conv2d(8, 8, 1), nn.Conv2d(8, 8, 1)
        self.head = nn.Linear(8, 2)

    def forward(self, x):
        a, b = torch.chunk(self.c(x), 2, 1)
        return self.head((self.d(a) + self.e(b)).mean((2, 3)))


def test_a_channel_split_that_cannot_be_pruned_is_refused_before_the_search():
    from autoprune.errors import AnalysisError
    from autoprune.pruning.prunability import check_prunable

    torch.manual_seed(0)
    model = Chunked().eval()
    analysis = analyse_model(model, torch.randn(1, 3, 8, 8))
    with pytest.raises(AnalysisError, match="group 'c' cannot be pruned reliably.*--exclude c"):
        check_prunable(analysis)
    check_prunable(analyse_model(model, torch.randn(1, 3, 8, 8), exclude=["c"]))  # the advice works


def test_a_concatenation_added_to_its_input_is_one_group_per_branch():
    analysis = analyse_model(InceptionResidual().eval(), torch.randn(1, 3, 12, 12))
    assert analysis.group_names == ["b1", "b3", "b5", "fuse"]
    stem = next(spec for spec in analysis.layers if spec.name == "stem")
    assert stem.out_slices == (("b1", 8), ("b3", 8), ("b5", 8))
    assert all(analysis.group(b).consumers == ("b1", "b3", "b5", "fuse") for b in ("b1", "b3", "b5"))


def test_the_inception_residual_block_searches_applies_and_exports_through_the_cli(tmp_path, monkeypatch):
    import onnxruntime as ort

    from autoprune.checkpoint import load_model
    from autoprune.cli.main import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "net.py").write_text(
        "import torch\nfrom torch import nn\n\n\ndef _bn_relu(c):\n    return nn.Sequential(nn.BatchNorm2d(c), nn.ReLU())\n\n\n"
        + __import__("inspect").getsource(InceptionResidual)
        + "\n\ndef build():\n    torch.manual_seed(0)\n    return InceptionResidual()\n")
    ref = ["--model", "net.py:build", "--input-shape", "3,12,12"]
    assert main(["-q", "search", *ref, "--data", "synthetic", "--cost-model", "flops", "--budget", "50%",
                 "--agent", "random", "--episodes", "6", "--val-size", "64", "--bn-batches", "2",
                 "--round-to", "2", "--rerank-top", "0", "--out", "s"]) == 0
    assert main(["-q", "apply", "s/best_policy.json", *ref[:2], "--data", "synthetic", "--out", "a"]) == 0
    assert main(["-q", "export", "a/model.pt", *ref[:2], "--out", "e"]) == 0
    model, info = load_model("a/model.pt", model_name="net.py:build")
    x = torch.randn(2, 3, 12, 12)
    dense = load_model("a/model.pt", model_name="net.py:build")[0]  # the same weights, rebuilt
    session = ort.InferenceSession(str(tmp_path / "e" / "model.onnx"), providers=["CPUExecutionProvider"])
    onnx_out = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    assert torch.allclose(torch.from_numpy(onnx_out), model(x), atol=1e-4)
    assert torch.allclose(dense(x), model(x))
    assert info.pruning is not None and sum(info.pruning.kept.values()) < 40
