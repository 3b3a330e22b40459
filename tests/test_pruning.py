import pytest
import torch
from conftest import randomise_bn
from torch import nn

from autoprune.analysis import analyse_model
from autoprune.models import create_model
from autoprune.pruning import (
    Importance,
    MaskedPruner,
    architecture_for,
    channels_kept,
    prune_physically,
    rank_channels,
)
from autoprune.training import recalibrate_bn


def test_channels_kept_rounding_and_bounds():
    assert channels_kept(64, 0.5) == 32 and channels_kept(64, 0.0) == 64
    assert channels_kept(64, 0.99) == 1 and channels_kept(60, 0.5, round_to=8) == 32
    assert channels_kept(64, 0.99, round_to=8) == 8 and channels_kept(4, 0.5, round_to=8) == 4
    with pytest.raises(ValueError):
        channels_kept(64, 1.0)


@pytest.mark.parametrize("name", ["resnet20", "vgg_small", "mobilenetv2_small", "mlp"])
def test_masked_and_physical_give_same_outputs(name):
    torch.manual_seed(1)
    model = randomise_bn(create_model(name))
    x = torch.randn(4, 1, 28, 28)
    a = analyse_model(model, x[:1])
    gen = torch.Generator().manual_seed(2)
    ratios = {g.name: float(torch.rand(1, generator=gen)) * 0.9 for g in a.groups}
    kept = architecture_for(a.groups, ratios)
    ranking = rank_channels(a, "l2")
    pruned = prune_physically(a, ranking, kept).eval()
    with torch.no_grad():
        dense = model(x)
        with MaskedPruner(a, ranking).applied(kept):
            masked = model(x)
        assert torch.allclose(masked, pruned(x), atol=1e-5)
        assert torch.equal(model(x), dense)  # masks fully removed
    assert sum(p.numel() for p in pruned.parameters()) < sum(p.numel() for p in model.parameters())


def test_physical_pruning_shrinks_layers_to_kept_channels(tiny_analysis):
    kept = architecture_for(tiny_analysis.groups, {"stem.0": 0.5, "expand.0": 0.3}, round_to=4)
    pruned = prune_physically(tiny_analysis, rank_channels(tiny_analysis), kept)
    assert pruned.stem[0].out_channels == 4 and pruned.conv_b[0].out_channels == 4
    assert pruned.expand[0].out_channels == 12 and pruned.dw[0].groups == 12
    assert pruned.project[0].in_channels == 12
    assert tiny_analysis.model.stem[0].out_channels == 8  # the original is untouched


def test_masked_pruner_restores_bn_statistics(tiny_analysis, splits):
    model = tiny_analysis.model
    before = {k: v.clone() for k, v in model.state_dict().items()}
    pruner = MaskedPruner(tiny_analysis, rank_channels(tiny_analysis))
    with pruner.applied({"stem.0": 3}):
        recalibrate_bn(model, splits.train(32), max_batches=2)
        assert not torch.equal(model.stem[1].running_mean, before["stem.1.running_mean"])
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())


def test_l1_ranking_removes_smallest_norm_channels():
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Conv2d(4, 2, 3))
    with torch.no_grad():
        for i, scale in enumerate([3.0, 0.1, 2.0, 0.5]):
            model[0].weight[i].fill_(scale)
            model[2].weight[:, i].fill_(scale)
    a = analyse_model(model, torch.randn(1, 1, 8, 8))
    assert rank_channels(a, "l1")["0"][:2].tolist() == [1, 3]


class IndexImportance(Importance):
    """A user criterion: later channels are more important."""

    def __call__(self, group):
        return torch.arange(len(group[0].idxs), dtype=torch.float)


def test_user_importance_plugs_in(tiny_analysis):
    ranking = rank_channels(tiny_analysis, IndexImportance())
    pruned = prune_physically(tiny_analysis, ranking, {"expand.0": 10})
    assert torch.equal(pruned.expand[0].weight, tiny_analysis.model.expand[0].weight[6:])


@pytest.mark.parametrize("criterion", ["l1", "l2", "bn_scale", "taylor"])
def test_every_builtin_criterion_ranks_every_group(tiny_analysis, splits, criterion):
    ranking = rank_channels(tiny_analysis, criterion, batches=splits.train(32))
    for g in tiny_analysis.groups:
        assert sorted(ranking[g.name].tolist()) == list(range(g.channels))


def test_taylor_needs_batches(tiny_analysis):
    with pytest.raises(ValueError, match="needs training batches"):
        rank_channels(tiny_analysis, "taylor")


class ConcatNet(nn.Module):
    """Two branches concatenated, then a conv feeding a grouped (non-depthwise) conv."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Sequential(nn.Conv2d(1, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU())
        self.b = nn.Sequential(nn.Conv2d(1, 10, 3, padding=1), nn.BatchNorm2d(10), nn.ReLU())
        self.mix = nn.Sequential(nn.Conv2d(16, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.grouped = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1, groups=2), nn.BatchNorm2d(8), nn.ReLU())
        self.fc = nn.Linear(8, 10)

    def forward(self, x):
        x = self.mix(torch.cat([self.a(x), self.b(x)], 1))
        return self.fc(self.grouped(x).mean((2, 3)))


def test_concatenation_and_grouped_conv():
    torch.manual_seed(0)
    model = randomise_bn(ConcatNet())
    x = torch.randn(3, 1, 12, 12)
    a = analyse_model(model, x[:1])
    assert set(a.group_names) == {"a.0", "b.0", "mix.0", "grouped.0"}  # each concatenated branch is its own group
    # a grouped (non-depthwise) conv's channels go in units: the same position in each of its 2 groups
    assert (a.group("mix.0").step, a.group("mix.0").interleaved) == (2, True) and not a.kept_whole
    assert a.group("mix.0").units().tolist() == [[0, 4], [1, 5], [2, 6], [3, 7]]
    assert "mix.0" in a.group("a.0").consumers and "mix.0" in a.group("b.0").consumers
    kept = {"a.0": 3, "b.0": 4, "mix.0": 4, "grouped.0": 6}
    ranking = rank_channels(a, "l1")
    gone = set(ranking["mix.0"][:4].tolist())
    assert all(len(gone & set(u)) in (0, 2) for u in a.group("mix.0").units().tolist())  # whole units go
    pruned = prune_physically(a, ranking, kept).eval()
    assert pruned.mix[0].in_channels == 7
    assert (pruned.grouped[0].in_channels, pruned.grouped[0].out_channels, pruned.grouped[0].groups) == (4, 6, 2)
    with torch.no_grad(), MaskedPruner(a, ranking).applied(kept):
        assert torch.allclose(model(x), pruned(x), atol=1e-5)


def test_candidate_evaluator_modes_agree(tiny_analysis, splits):
    from autoprune.evaluation import CandidateEvaluator

    ranking = rank_channels(tiny_analysis)
    kept = {"stem.0": 4, "expand.0": 8, "project.0": 6}
    scores = [CandidateEvaluator(tiny_analysis, ranking, splits, val_size=128, bn_batches=2, batch_size=32,
                                 mode=mode)(kept) for mode in ("physical", "masked")]
    assert scores[0] == scores[1]
    before = {k: v.clone() for k, v in tiny_analysis.model.state_dict().items()}
    CandidateEvaluator(tiny_analysis, ranking, splits, val_size=64, mode="physical")(kept)
    assert all(torch.equal(v, tiny_analysis.model.state_dict()[k]) for k, v in before.items())


class TokenMLP(nn.Module):
    """The rows of an image as 7 tokens of 16 features: Linear layers and a LayerNorm on
    (batch, tokens, features), the MLP block of a transformer."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.norm, self.fc2, self.head = nn.Linear(16, 24), nn.LayerNorm(24), nn.Linear(24, 12), nn.Linear(12, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = torch.relu(self.norm(self.fc1(x.reshape(x.shape[0], 7, 16))))
        return self.head(torch.relu(self.fc2(t)).mean(1))


@pytest.mark.parametrize("share", [0.25, 0.5, 0.9])
def test_linear_layers_on_tokens_prune_masked_as_physically(share):
    """Channels are a token layer's last axis, a layer norm normalises over the kept features only,
    and the FLOPs model counts every token."""
    from autoprune.costs import FlopsCostModel
    from autoprune.costs.layer_graphs import layer_graph, layer_input
    from autoprune.pruning.prunability import check_prunable

    torch.manual_seed(0)
    model = TokenMLP().eval()
    with torch.no_grad():
        model.norm.weight.uniform_(0.5, 1.5)
        model.norm.bias.uniform_(-0.5, 0.5)
    analysis = analyse_model(model, torch.randn(1, 7, 16))
    assert [g.name for g in analysis.groups] == ["fc1", "fc2"] and "norm" in analysis.group("fc1").members
    check_prunable(analysis)  # the trial cut agrees with the masked reference
    ranking = rank_channels(analysis, "l1")
    kept = {g.name: max(1, round(g.channels * (1 - share))) for g in analysis.groups}
    pruned = prune_physically(analysis, ranking, kept).eval()
    x = torch.randn(5, 7, 16)
    with torch.no_grad(), MaskedPruner(analysis, ranking).applied(kept):
        masked = model(x)
    assert torch.allclose(masked, pruned(x), atol=1e-5)
    macs = 7 * (pruned.fc1.weight.numel() + pruned.fc2.weight.numel()) + pruned.head.weight.numel()
    assert FlopsCostModel(analysis.layers).cost(kept).flops == macs
    spec = next(s for s in analysis.layers if s.name == "fc1")
    assert spec.in_hw == (7, 1) and layer_input(spec, 16, batch=2).shape == (14, 16)
    assert len(layer_graph(spec, 16, kept["fc1"], batch=2)) > 0


def test_a_transformer_encoder_layer_prunes_its_mlp_and_embedding_and_exports_off_its_fused_path():
    """nn.TransformerEncoderLayer runs fused kernels in inference: tracing, masks and the export use
    the plain path, so its MLP and embedding groups are found, equal the masked model, and export."""
    from autoprune.onnx_export import max_output_difference, to_onnx_bytes
    from autoprune.pruning.physical import prune_physically
    from autoprune.pruning.prunability import pruning_problem

    class Encoder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.proj = nn.Linear(16, 32)
            self.enc = nn.TransformerEncoder(nn.TransformerEncoderLayer(32, 4, 64, batch_first=True, dropout=0.0), 2,
                                             enable_nested_tensor=False)
            self.head = nn.Linear(32, 5)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(self.enc(self.proj(x)).mean(1))

    torch.manual_seed(0)
    model, x = Encoder().eval(), torch.randn(2, 6, 16)
    analysis = analyse_model(model, x[:1])
    assert set(analysis.group_names) == {"proj", "enc.layers.0.linear1", "enc.layers.1.linear1"}
    ranking = rank_channels(analysis, "l1")
    kept = {"proj": 16, "enc.layers.0.linear1": 24, "enc.layers.1.linear1": 40}
    assert pruning_problem(analysis, kept, ranking) is None
    pruned = prune_physically(analysis, ranking, kept)
    assert max_output_difference(to_onnx_bytes(pruned, x), pruned, x) < 1e-4


def test_multihead_attention_prunes_its_embedding_evenly_across_heads_at_the_same_scores():
    """nn.MultiheadAttention's embedding is one group with the layers around it (the hidden width):
    each head loses as many channels, its queries are rescaled for the smaller head size, and the
    pruned model equals the masked one; one with its own key/value widths is kept whole, named."""
    from autoprune.pruning.physical import prune_physically
    from autoprune.pruning.prunability import pruning_problem

    class Block(nn.Module):
        def __init__(self, kdim: int | None = None) -> None:
            super().__init__()
            self.embed, self.attn = nn.Linear(16, 24), nn.MultiheadAttention(24, 4, batch_first=True, kdim=kdim,
                                                                            vdim=kdim)
            self.fc1, self.fc2, self.head = nn.Linear(24, 32), nn.Linear(32, 24), nn.Linear(24, 3)
            self.kv = nn.Linear(16, kdim or 24)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            t, kv = self.embed(x), self.kv(x)
            t = t + self.attn(t, kv if self.kv.out_features != 24 else t, kv if self.kv.out_features != 24 else t,
                              need_weights=False)[0]
            return self.head((t + self.fc2(torch.relu(self.fc1(t)))).mean(1))

    torch.manual_seed(0)
    model = Block().eval()
    analysis = analyse_model(model, torch.randn(1, 7, 16))
    embed = analysis.group("embed")
    assert embed.step == 4 and embed.interleaved and "attn" in embed.members
    assert {s.name for s in analysis.layers if s.module == "attn"} == {
        "attn", "attn.q_proj", "attn.k_proj", "attn.v_proj", "attn.out_proj"}
    ranking = rank_channels(analysis, "l1")
    for kept in ({"embed": 16, "fc1": 20}, {"embed": 8, "fc1": 8}):
        assert pruning_problem(analysis, kept, ranking) is None
        pruned = prune_physically(analysis, ranking, kept)
        assert pruned.attn.embed_dim == kept["embed"] and pruned.attn.head_dim == kept["embed"] // 4
    from autoprune.onnx_export import max_output_difference, to_onnx_bytes

    assert max_output_difference(to_onnx_bytes(pruned, torch.randn(2, 7, 16)), pruned, torch.randn(2, 7, 16)) < 1e-4
    other = analyse_model(Block(kdim=12).eval(), torch.randn(1, 7, 16))
    assert "MultiheadAttention 'attn'" in other.kept_whole["embed"] and "key/value" in other.kept_whole["embed"]
