import pytest
import torch

from autoprune.errors import ConfigError
from autoprune.models import MODELS, create_model, list_models


def test_builtin_models_are_listed():
    assert {"resnet20", "resnet56", "vgg_small", "mobilenetv2_small", "mlp"} <= set(list_models())


@pytest.mark.parametrize("name", ["resnet20", "resnet56", "vgg_small", "mobilenetv2_small", "mlp", "seed_mlp",
                                  "vit_tiny"])
def test_builtin_models_forward(name):
    model = create_model(name, in_channels=1, num_classes=7)
    assert model(torch.randn(3, 1, 28, 28)).shape == (3, 7)


def test_seed_mlp_is_the_guides_784_128_64_10_network():
    model = create_model("seed_mlp")
    widths = [(m.in_features, m.out_features) for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert widths == [(784, 128), (128, 64), (64, 10)]
    assert sum(p.numel() for p in model.parameters()) == 784 * 128 + 128 + 128 * 64 + 64 + 64 * 10 + 10
    assert model(torch.randn(2, 1, 28, 28)).shape == (2, 10)


def test_resnet_depths():
    def convs(m):
        return sum(isinstance(x, torch.nn.Conv2d) and x.kernel_size == (3, 3) for x in m.modules())
    assert convs(create_model("resnet20")) == 19
    assert convs(create_model("resnet56")) == 55


def test_mobilenet_has_depthwise_convs():
    m = create_model("mobilenetv2_small")
    assert any(isinstance(x, torch.nn.Conv2d) and x.groups == x.in_channels > 1 for x in m.modules())


def test_unknown_model_lists_known_names():
    with pytest.raises(ConfigError, match="unknown model 'resnet99'; known: .*resnet20"):
        MODELS.get("resnet99")


def test_vit_tiny_prunes_whole_heads_mlp_and_hidden_widths():
    """Its attention reshapes q, k and v into 4 heads of 16: each block's q/k/v group is pruned in
    whole heads (the module's head count follows); the MLP widths and the hidden width (with the
    class token and position embeddings) prune too."""
    from autoprune.analysis import analyse_model
    from autoprune.pruning import rank_channels
    from autoprune.pruning.physical import prune_physically
    from autoprune.pruning.prunability import keep_unprunable_whole

    model = create_model("vit_tiny").eval()
    x = torch.randn(1, 1, 28, 28)
    analysis, dropped = keep_unprunable_whole(analyse_model(model, x), lambda e: analyse_model(model, x, exclude=e))
    assert not dropped
    assert analysis.group_names == ["patch", *[n for i in range(4) for n in (f"blocks.{i}.attn.q", f"blocks.{i}.fc1")]]
    assert set(analysis.group("patch").parameters) == {"cls_token", "pos_embed"}
    assert (analysis.group("blocks.0.attn.q").step, analysis.group("blocks.0.attn.q").heads) == (16, ("blocks.0.attn",))
    pruned = prune_physically(analysis, rank_channels(analysis, "l1"), {"blocks.0.attn.q": 32})
    assert pruned.blocks[0].attn.num_heads == 2 and pruned(x).shape == (1, 10)


def test_vit_tiny_attention_is_priced_per_head_as_the_independent_count_finds_and_profiled_in_onnx():
    """The matmuls of each attention module are a layer of the cost models (tokens^2 x channels,
    twice): the FLOPs model equals FlopCounterMode at any heads kept, and the lookup table's graph
    of it runs in ONNX Runtime with that many heads."""
    import onnxruntime as ort
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    from autoprune.analysis import analyse_model
    from autoprune.costs import create_cost_model
    from autoprune.costs.layer_graphs import check_graph, layer_graph, layer_input
    from autoprune.pruning import rank_channels
    from autoprune.pruning.physical import prune_physically

    model, x = create_model("vit_tiny").eval(), torch.randn(1, 1, 28, 28)
    analysis = analyse_model(model, x)
    attention = [s for s in analysis.layers if s.kind == "attention"]
    assert [s.name for s in attention] == [f"blocks.{i}.attn" for i in range(4)]
    cost = create_cost_model("flops", analysis)
    kept = {"blocks.0.attn.q": 16, "blocks.2.attn.q": 48, "blocks.1.fc1": 64}
    pruned = prune_physically(analysis, rank_channels(analysis, "l1"), kept)
    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        pruned(x)
    assert cost.cost(kept).flops == counter.get_total_flops() // 2 and cost.fixed_macs == 0
    graph = layer_graph(attention[0], 32, 32)
    check_graph(graph)
    out = ort.InferenceSession(graph).run(None, {"x": layer_input(attention[0], 32)})[0]
    assert out.shape == (1, 2, 50, 16)  # two heads of 16 over 50 tokens
