"""Hugging Face ``transformers`` models built from small configs (random weights, no download): each
prunes with every output (a ``ModelOutput``) of its dense shape and equal to the masked reference,
or is refused in one line naming the group or the cause."""

import pytest
import torch

transformers = pytest.importorskip("transformers")

from autoprune.analysis import analyse_model  # noqa: E402
from autoprune.analysis.layers import example_input  # noqa: E402
from autoprune.outputs import output_shapes, scored_output  # noqa: E402
from autoprune.pruning import rank_channels  # noqa: E402
from autoprune.pruning.physical import prune_physically  # noqa: E402
from autoprune.pruning.prunability import check_prunable, pruning_problem  # noqa: E402
from autoprune.pruning.ratios import channels_kept  # noqa: E402


def _resnet():
    config = transformers.ResNetConfig(num_channels=1, embedding_size=16, hidden_sizes=[16, 32], depths=[1, 1],
                                       num_labels=10)
    return transformers.ResNetForImageClassification(config), (1, 28, 28)


def _mobilenet():
    config = transformers.MobileNetV2Config(num_channels=1, image_size=28, depth_multiplier=0.35, num_labels=10)
    return transformers.MobileNetV2ForImageClassification(config), (1, 28, 28)


def _convnext():
    config = transformers.ConvNextConfig(num_channels=1, hidden_sizes=[16, 32], depths=[1, 1], num_stages=2,
                                         num_labels=10, patch_size=2)
    return transformers.ConvNextForImageClassification(config), (1, 28, 28)


def _bert():
    config = transformers.BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                     intermediate_size=64, num_labels=10, max_position_embeddings=32)
    return transformers.BertForSequenceClassification(config), (16,)


def _gpt2():
    config = transformers.GPT2Config(vocab_size=100, n_embd=32, n_layer=2, n_head=4, n_positions=32, num_labels=10,
                                     pad_token_id=0, bos_token_id=1, eos_token_id=2)
    return transformers.GPT2ForSequenceClassification(config), (16,)


def _built(factory):
    torch.manual_seed(0)
    model, shape = factory()
    return model.eval(), shape


def _prunes_like_the_masked_reference(analysis, x):
    ranking = rank_channels(analysis, "l1")
    dense = output_shapes(analysis.model(x))
    for ratio in (0.3, 0.6):
        kept = {g.name: channels_kept(g.channels, ratio, 1, g.step) for g in analysis.groups}
        assert pruning_problem(analysis, kept, ranking) is None
        assert output_shapes(prune_physically(analysis, ranking, kept).eval()(x)) == dense


@pytest.mark.parametrize("factory", [_resnet, _mobilenet, _convnext])
def test_a_hugging_face_convnet_prunes_and_its_logits_are_scored(factory):
    """ConvNeXt: a channels-first layer norm and a layer scale parameter along the channels."""
    model, shape = _built(factory)
    x = example_input(model, shape, batch=2, random=True)
    analysis = analyse_model(model, x[:1])
    check_prunable(analysis)
    assert len(analysis.groups) >= 4 and "classifier" not in analysis.group_names
    assert scored_output(model(x)).shape == (2, 10)  # the ModelOutput's logits
    _prunes_like_the_masked_reference(analysis, x)


def test_bert_takes_token_ids_and_its_attention_is_pruned_in_whole_heads():
    model, shape = _built(_bert)
    x = example_input(model, shape, batch=2, random=True)
    assert x.dtype == torch.long
    analysis = analyse_model(model, x[:1])
    check_prunable(analysis)
    query = analysis.group("bert.encoder.layer.0.attention.self.query")  # q, k, v and the output projection
    assert (query.step, query.heads) == (8, ("bert.encoder.layer.0.attention.self",))  # 4 heads of 8
    assert any(g.name.endswith("intermediate.dense") for g in analysis.groups)
    _prunes_like_the_masked_reference(analysis, x)
    ranking = rank_channels(analysis, "l1")
    pruned = prune_physically(analysis, ranking, {query.name: 16})
    attention = pruned.get_submodule("bert.encoder.layer.0.attention.self")
    assert (attention.num_attention_heads, attention.all_head_size, attention.query.out_features) == (2, 16, 16)


def test_gpt2_prunes_whole_heads_of_its_fused_projection_its_mlp_and_hidden_width():
    """GPT-2's Conv1D (a Linear stored transposed) roots groups, prunes and is scored by magnitude;
    its fused query/key/value projection, split in three, is one head group whose channel c is query,
    key and value c: whole heads go from all three slices, the module runs fewer heads of the same
    size; pruned, it equals the masked model, counts the MACs the cost model prices, and exports."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    from autoprune.costs import create_cost_model
    from autoprune.errors import AutopruneError
    from autoprune.latency import LatencySettings, measure_latency
    from autoprune.onnx_export import max_output_difference, to_onnx_bytes

    model, shape = _built(_gpt2)
    x = example_input(model, shape, batch=2, random=True)
    analysis = analyse_model(model, x[:1])
    check_prunable(analysis)
    attn = analysis.group("transformer.h.0.attn.c_attn")
    assert (attn.channels, attn.fold, attn.step, attn.heads) == (32, 3, 8, ("transformer.h.0.attn",))  # 4 heads of 8
    assert {"transformer.h.0.mlp.c_fc", "transformer.wte"} <= set(analysis.group_names)
    fc = next(s for s in analysis.layers if s.name == "transformer.h.0.mlp.c_fc")
    assert (fc.kind, fc.in_channels, fc.out_channels, fc.in_hw) == ("linear", 32, 128, (16, 1))
    ranking = rank_channels(analysis, "l1")
    assert not torch.equal(ranking["transformer.h.0.mlp.c_fc"], torch.arange(128))  # scored, not index order
    _prunes_like_the_masked_reference(analysis, x)
    kept = {attn.name: 16, "transformer.h.0.mlp.c_fc": 40, "transformer.wte": 24}
    pruned = prune_physically(analysis, ranking, kept).eval()
    block = pruned.transformer.h[0]
    assert (block.attn.num_heads, block.attn.head_dim, block.attn.split_size) == (2, 8, 16)
    assert (tuple(block.attn.c_attn.weight.shape), tuple(block.attn.c_proj.weight.shape)) == ((24, 48), (16, 24))
    assert (block.mlp.c_fc.nf, tuple(block.mlp.c_proj.weight.shape)) == (40, (40, 24))
    heads = ranking[attn.name][:16].view(-1, 8)  # the two heads removed: whole ones
    assert all(int(h[0]) % 8 == 0 and torch.equal(h, torch.arange(int(h[0]), int(h[0]) + 8)) for h in heads)

    def macs(m):  # the attention's matmuls counted too (the math kernel, not the fused one)
        with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
            m(x[:1])
        return counter.get_total_flops() // 2

    flops = create_cost_model("flops", analysis)
    assert flops.cost(kept).flops / flops.cost({}).flops == pytest.approx(macs(pruned) / macs(model), rel=0.02)
    # with its attention mask (as Hugging Face models are called) the TorchScript exporter writes it;
    # from token IDs alone GPT-2 finds its last token with aten::diff, which needs --exporter dynamo
    inputs = {"input_ids": x, "attention_mask": torch.ones_like(x)}
    assert max_output_difference(to_onnx_bytes(pruned, inputs), pruned, inputs) < 1e-4  # the logits, no cache
    with pytest.raises(AutopruneError, match=r"aten::diff.*try --exporter dynamo$"):
        to_onnx_bytes(pruned, x)
    assert measure_latency(pruned, shape, LatencySettings(warmup=1, repeats=3)) > 0  # timed as dynamo exports it


FACTORY = '''
import torch
import transformers


def vit(**_):
    torch.manual_seed(0)
    config = transformers.ViTConfig(image_size=28, patch_size=7, num_channels=1, hidden_size=32, num_hidden_layers=2,
                                    num_attention_heads=4, intermediate_size=64, num_labels=10)
    return transformers.ViTForImageClassification(config).eval()
'''


def test_a_vit_from_a_config_searches_its_widths_to_a_flops_budget_by_the_independent_count(tmp_path, capsys):
    import json

    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    from autoprune.checkpoint import load_model
    from autoprune.cli.main import main
    from autoprune.references import consent

    (tmp_path / "hfvit.py").write_text(FACTORY)
    ref = f"{tmp_path / 'hfvit.py'}:vit"
    common = ["--model", ref, "--input-shape", "1,28,28", "--data", "synthetic"]
    assert main(["-q", "search", *common, "--cost-model", "flops", "--budget", "90%", "--agent", "random",
                 "--episodes", "3", "--round-to", "1", "--val-size", "64", "--bn-batches", "1", "--rerank-top", "0",
                 "--verify-top", "0", "--out", str(tmp_path / "s")]) == 0
    assert "the hidden width (group 'vit.embeddings.patch_embeddings.projection') kept whole" in \
        capsys.readouterr().out
    policy = json.loads((tmp_path / "s" / "best_policy.json").read_text())
    assert sorted(policy["ratios"]) == ["vit.layers.0.attention.q_proj", "vit.layers.0.mlp.fc1",  # heads and MLPs
                                        "vit.layers.1.attention.q_proj", "vit.layers.1.mlp.fc1"]
    assert policy["exclude"] == ["vit.embeddings.patch_embeddings.projection"]  # recorded: apply keeps it whole
    assert main(["-q", "search", *common, "--cost-model", "flops", "--budget", "90%", "--agent", "uniform",
                 "--prune-hidden", "--round-to", "1", "--val-size", "64", "--bn-batches", "1", "--rerank-top", "0",
                 "--verify-top", "0", "--out", str(tmp_path / "h")]) == 0
    hidden = json.loads((tmp_path / "h" / "best_policy.json").read_text())  # the hidden width, with the class token
    assert "vit.embeddings.patch_embeddings.projection" in hidden["ratios"] and not hidden["exclude"]
    assert main(["-q", "apply", str(tmp_path / "s" / "best_policy.json"), *common, "--out", str(tmp_path / "a")]) == 0
    with consent(ref):
        pruned, _ = load_model(tmp_path / "a" / "model.pt")

    def macs(model):
        with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
            model.eval()(torch.randn(1, 1, 28, 28))
        return counter.get_total_flops() // 2

    with consent(ref):
        from autoprune.models import create_model

        dense = create_model(ref)
    assert macs(pruned) <= policy["budget"]["fraction"] * macs(dense) * 1.02
    assert pruned(torch.randn(2, 1, 28, 28)).logits.shape == (2, 10)


BERT = dict(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
            num_labels=10, max_position_embeddings=32)


def test_a_saved_pretrained_folder_is_searched_applied_reloaded_and_exported_by_reference(tmp_path, capsys):
    import json

    from autoprune.checkpoint import load_model
    from autoprune.cli.main import main

    torch.manual_seed(0)
    transformers.BertForSequenceClassification(transformers.BertConfig(**BERT)).save_pretrained(tmp_path / "bert")
    ref = f"hf:{tmp_path / 'bert'}"
    data = str(__import__("pathlib").Path(__file__).parent / "structures.py") + ":token_data"
    common = ["--model", ref, "--input-shape", "16", "--data", data]
    assert main(["-q", "search", *common, "--cost-model", "flops", "--budget", "90%", "--agent", "random",
                 "--episodes", "3", "--round-to", "1", "--val-size", "64", "--bn-batches", "1", "--rerank-top", "0",
                 "--verify-top", "0", "--out", str(tmp_path / "s")]) == 0
    policy = json.loads((tmp_path / "s" / "best_policy.json").read_text())
    assert policy["model"] == ref and "bert.encoder.layer.0.intermediate.dense" in policy["ratios"]
    assert main(["-q", "apply", str(tmp_path / "s" / "best_policy.json"), "--data", data,
                 "--out", str(tmp_path / "a")]) == 0
    pruned, _ = load_model(tmp_path / "a" / "model.pt")  # a folder of data: rebuilt without consent
    ids = torch.randint(0, 100, (2, 16))
    assert pruned.eval()(ids).logits.shape == (2, 10)
    assert main(["-q", "export", str(tmp_path / "a" / "model.pt"), "--out", str(tmp_path / "e")]) == 0
    from autoprune.onnx_export import max_output_difference

    assert json.loads((tmp_path / "e" / "export.json").read_text())["latency_ms"] > 0  # timed with token IDs
    assert max_output_difference((tmp_path / "e" / "model.onnx").read_bytes(), pruned, ids) < 1e-4  # every output


def test_a_transformers_class_builds_from_its_config_and_a_pickled_folder_is_refused(tmp_path):
    from autoprune.errors import ConfigError
    from autoprune.models import create_model

    model = create_model("transformers:BertForSequenceClassification", args=BERT)
    assert type(model).__name__ == "BertForSequenceClassification" and model.config.hidden_size == 32
    with pytest.raises(ConfigError, match="building it from --model-args failed"):
        create_model("transformers:BertForSequenceClassification", args={**BERT, "vocab_size": -1})
    bert = transformers.BertForSequenceClassification(transformers.BertConfig(**BERT))
    bert.config.save_pretrained(tmp_path / "pickled")  # a folder of pickled weights, as older savers wrote
    torch.save(bert.state_dict(), tmp_path / "pickled" / "pytorch_model.bin")
    with pytest.raises(ConfigError, match="holds no .safetensors weights, and autoprune reads no pickled ones"):
        create_model(f"hf:{tmp_path / 'pickled'}")
    with pytest.raises(ConfigError, match="holds no config.json"):
        create_model(f"hf:{tmp_path}")
