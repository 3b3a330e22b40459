import pytest
import torch
from torch import nn

from autoprune.analysis import analyse_model, group_features, layer_channels, model_fingerprint
from autoprune.errors import AnalysisError
from autoprune.models import create_model
from autoprune.pruning.prunability import check_prunable


@pytest.fixture(scope="module")
def resnet20_analysis():
    return analyse_model(create_model("resnet20"), torch.randn(1, 1, 28, 28))


def test_resnet20_groups(resnet20_analysis):
    a = resnet20_analysis
    assert len(a.groups) == 12  # 9 block-internal convs + 3 residual streams
    residual = {g.name: g for g in a.groups if g.kind == "residual"}
    assert set(residual) == {"conv1", "layer2.0.conv2", "layer3.0.conv2"}
    stream = residual["conv1"]  # stem + the second conv of every stage-1 block share channels
    assert set(stream.producers) == {"conv1", "layer1.0.conv2", "layer1.1.conv2", "layer1.2.conv2"}
    assert "layer2.0.shortcut.0" in stream.consumers and "bn1" in stream.members
    assert set(residual["layer2.0.conv2"].producers) >= {"layer2.0.shortcut.0", "layer2.2.conv2"}


def test_output_layer_and_input_never_pruned(resnet20_analysis):
    a = resnet20_analysis
    assert a.output_layer == "fc"
    assert all("fc" not in g.producers for g in a.groups)
    stem = next(s for s in a.layers if s.name == "conv1")
    assert stem.in_group is None and stem.out_group == "conv1"


def test_depthwise_conv_is_coupled_to_its_producer(tiny_analysis):
    g = tiny_analysis.group("expand.0")
    assert g.kind == "depthwise" and "dw.0" in g.producers and "project.0" in g.consumers
    dw = next(s for s in tiny_analysis.layers if s.name == "dw.0")
    assert dw.kind == "depthwise" and dw.in_group == dw.out_group == "expand.0"
    assert dw.macs(8, 8) == dw.macs() // 2  # depthwise cost is linear in its channels


def test_exclusions_by_name_and_type(tiny_model):
    x = torch.randn(1, 1, 28, 28)
    names = [g.name for g in analyse_model(tiny_model, x, exclude=["expand.0"]).groups]
    assert "expand.0" not in names and "project.0" in names
    vgg = analyse_model(create_model("vgg_small"), x, exclude=[nn.Linear])
    assert "classifier.0" not in vgg.group_names and len(vgg.groups) == 6
    with pytest.raises(AnalysisError, match="no such module"):
        analyse_model(tiny_model, x, exclude=["nope"])


def test_nothing_prunable_is_reported():
    with pytest.raises(AnalysisError, match="nothing to prune"):
        analyse_model(nn.Sequential(nn.Flatten(), nn.Linear(784, 10)), torch.randn(1, 1, 28, 28))


def test_layer_macs_match_hand_count():
    a = analyse_model(create_model("vgg_small"), torch.randn(1, 1, 28, 28))
    convs = [(1, 32, 28), (32, 32, 28), (32, 64, 14), (64, 64, 14), (64, 128, 7), (128, 128, 7)]
    expected = sum(ci * co * 9 * hw * hw for ci, co, hw in convs) + 128 * 128 + 128 * 10
    assert sum(s.macs() for s in a.layers) == expected


def test_architecture_changes_layer_channels(resnet20_analysis):
    spec = next(s for s in resnet20_analysis.layers if s.name == "layer1.0.conv2")
    assert layer_channels(spec, {"layer1.0.conv1": 5, "conv1": 9}) == (5, 9)
    assert layer_channels(spec, {}) == (16, 16)


def test_features_have_one_row_per_group(resnet20_analysis):
    f = group_features(resnet20_analysis)
    assert list(f.index) == resnet20_analysis.group_names
    assert (f["flops"] > 0).all() and f.loc["layer3.0.conv1", "stride"] == 2
    assert f.loc["layer3.0.conv1", "fmap"] == 49


def test_fingerprint_is_structural():
    a, b = create_model("resnet20"), create_model("resnet20")
    assert model_fingerprint(a) == model_fingerprint(b) != model_fingerprint(create_model("resnet56"))


class ChannelPairs(nn.Module):
    """A custom op Torch-Pruning cannot follow: averages the two halves of the channel axis."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        return x.view(n, 2, c // 2, h, w).mean(1)


class PairsNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 8, 3, padding=1)
        self.pairs = ChannelPairs()
        self.conv2 = nn.Conv2d(4, 8, 3, padding=1)
        self.fc = nn.Linear(8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv2(self.pairs(self.conv(x))).mean((2, 3)))


def test_group_broken_by_a_custom_layer_is_named_before_search():
    analysis = analyse_model(PairsNet().eval(), torch.randn(1, 1, 28, 28))
    with pytest.raises(AnalysisError, match=r"group 'conv' cannot be pruned reliably.*--exclude conv"):
        check_prunable(analysis)
    check_prunable(analyse_model(PairsNet().eval(), torch.randn(1, 1, 28, 28), exclude=["conv"]))


def test_built_in_models_prune_cleanly(resnet20_analysis, tiny_analysis):
    check_prunable(resnet20_analysis)
    check_prunable(tiny_analysis)
