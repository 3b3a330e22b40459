"""Hugging Face ``transformers`` models built from small configs (random weights, no download): each
prunes with every output (a ``ModelOutput``) of its dense shape and equal to the masked reference,
or is refused in one line naming the group or the cause."""

import pytest
import torch

transformers = pytest.importorskip("transformers")

from autoprune.analysis import analyse_model  # noqa: E402
from autoprune.analysis.layers import example_input  # noqa: E402
from autoprune.errors import AnalysisError  # noqa: E402
from autoprune.outputs import output_shapes, scored_output  # noqa: E402
from autoprune.pruning import rank_channels  # noqa: E402
from autoprune.pruning.physical import prune_physically  # noqa: E402
from autoprune.pruning.ratios import channels_kept  # noqa: E402
from autoprune.pruning.verify import check_prunable, pruning_problem  # noqa: E402


def _resnet():
    config = transformers.ResNetConfig(num_channels=1, embedding_size=16, hidden_sizes=[16, 32], depths=[1, 1],
                                       num_labels=10)
    return transformers.ResNetForImageClassification(config), (1, 28, 28)


def _mobilenet():
    config = transformers.MobileNetV2Config(num_channels=1, image_size=28, depth_multiplier=0.35, num_labels=10)
    return transformers.MobileNetV2ForImageClassification(config), (1, 28, 28)


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
        kept = {g.name: channels_kept(g.channels, ratio) for g in analysis.groups}
        assert pruning_problem(analysis, kept, ranking) is None
        assert output_shapes(prune_physically(analysis, ranking, kept).eval()(x)) == dense


@pytest.mark.parametrize("factory", [_resnet, _mobilenet])
def test_a_hugging_face_convnet_prunes_and_its_logits_are_scored(factory):
    model, shape = _built(factory)
    x = example_input(model, shape, batch=2, random=True)
    analysis = analyse_model(model, x[:1])
    check_prunable(analysis)
    assert len(analysis.groups) >= 4 and "classifier" not in analysis.group_names
    assert scored_output(model(x)).shape == (2, 10)  # the ModelOutput's logits
    _prunes_like_the_masked_reference(analysis, x)


def test_bert_takes_token_ids_and_its_attention_groups_are_refused_by_name_until_excluded():
    model, shape = _built(_bert)
    x = example_input(model, shape, batch=2, random=True)
    assert x.dtype == torch.long
    analysis = analyse_model(model, x[:1])
    with pytest.raises(AnalysisError, match=r"attention\.self\.query' cannot be pruned reliably"):
        check_prunable(analysis)
    queries = [g.name for g in analysis.groups if g.name.endswith("attention.self.query")]
    analysis = analyse_model(model, x[:1], exclude=queries)
    check_prunable(analysis)
    assert any(g.name.endswith("intermediate.dense") for g in analysis.groups)
    _prunes_like_the_masked_reference(analysis, x)


def test_gpt2_is_refused_in_one_line():
    model, shape = _built(_gpt2)
    with pytest.raises(AnalysisError) as error:
        check_prunable(analyse_model(model, example_input(model, shape, random=True)))
    assert "\n" not in str(error.value)
