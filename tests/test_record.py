"""Pruned checkpoints: the pruning record rebuilds the structure; nothing but weights is unpickled."""

import pytest
import torch

from autoprune.analysis import analyse_model
from autoprune.checkpoint import load_model, save_checkpoint
from autoprune.errors import ConfigError
from autoprune.models import create_model
from autoprune.pruning import architecture_for, prune_physically, rank_channels
from autoprune.pruning.record import PruningRecord, rebuild_pruned


def pruned_resnet(ratio=0.5, seed=0):
    torch.manual_seed(seed)
    dense = create_model("resnet20").eval()
    analysis = analyse_model(dense, torch.randn(1, 1, 28, 28))
    ranking = rank_channels(analysis, "l1")
    kept = architecture_for(analysis.groups, {g.name: ratio for g in analysis.groups})
    return analysis, PruningRecord.from_ranking(analysis, ranking, kept), prune_physically(analysis, ranking, kept)


def test_record_removes_the_least_important_channels():
    analysis, record, _ = pruned_resnet()
    ranking = rank_channels(analysis, "l1")
    for g in analysis.groups:
        assert record.kept[g.name] == g.channels - g.channels // 2
        assert set(record.removed[g.name]) == set(ranking[g.name][: g.channels // 2].tolist())


def test_pruned_checkpoint_reloads_with_equal_outputs(tmp_path):
    analysis, record, pruned = pruned_resnet()
    save_checkpoint(tmp_path / "p.pt", pruned, "resnet20", pruning=record, meta={"stage": "apply"})
    payload = torch.load(tmp_path / "p.pt", weights_only=True)  # plain tensors and JSON-able values
    assert payload["format_version"] == 2 and payload["pruning"]["removed"] == record.removed
    loaded, _ = load_model(tmp_path / "p.pt")
    x = torch.randn(4, 1, 28, 28)
    assert torch.allclose(loaded(x), pruned.eval()(x), atol=1e-6)
    assert sum(p.numel() for p in loaded.parameters()) < sum(p.numel() for p in analysis.model.parameters()) / 2


def test_rebuild_takes_the_recorded_channels_from_other_weights():
    analysis, record, _ = pruned_resnet()
    torch.manual_seed(1)
    other = create_model("resnet20").eval()
    rebuilt = rebuild_pruned(analyse_model(other, torch.randn(1, 1, 28, 28)), record)
    kept_stem = sorted(set(range(16)) - set(record.removed["conv1"]))
    assert torch.equal(rebuilt.conv1.weight, other.conv1.weight[kept_stem])


@pytest.mark.parametrize("bad", [
    {"channels": {"conv1": 16}, "removed": {"conv1": [16]}},           # index out of range
    {"channels": {"conv1": 16}, "removed": {"conv1": list(range(16))}},  # nothing left
    {"channels": {"conv1": 16}, "removed": {"conv1": [1, 1]}},         # repeated
    {"channels": {"conv1": "16"}, "removed": {}},                        # wrong type
    {"channels": [], "removed": {}},
])
def test_malformed_records_are_refused(bad):
    with pytest.raises(ConfigError, match="pruning record"):
        PruningRecord.from_dict(bad)


def test_record_of_another_model_is_refused(tmp_path):
    _, record, pruned = pruned_resnet()
    save_checkpoint(tmp_path / "p.pt", pruned, "resnet20", pruning=record)
    payload = torch.load(tmp_path / "p.pt", weights_only=True)
    payload["model"] = "resnet56"
    torch.save(payload, tmp_path / "q.pt")
    with pytest.raises(ConfigError, match="does not match this model's groups"):
        load_model(tmp_path / "q.pt")
