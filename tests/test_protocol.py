"""The benchmarks' protocol fine-tune (benchmarks/protocol.py): one implementation, seeded, and a
worker's state made once per process."""

import torch
from protocol import per_process, protocol_finetune  # benchmarks/protocol.py (pytest's pythonpath)

from autoprune.analysis import analyse_model
from autoprune.models import create_model
from autoprune.pruning import architecture_for, rank_channels
from autoprune.pruning.physical import prune_physically
from autoprune.training import evaluate


def _pruned(splits):
    torch.manual_seed(0)
    dense = create_model("mlp")  # untrained: the protocol does not care
    analysis = analyse_model(dense.eval(), torch.zeros(1, 1, 28, 28))
    kept = architecture_for(analysis.groups, {g.name: 0.5 for g in analysis.groups})
    return dense, prune_physically(analysis, rank_channels(analysis, "l1"), kept)


def test_the_protocol_fine_tune_is_seeded_and_scores_before_and_after(splits):
    dense, pruned = _pruned(splits)
    first = protocol_finetune(pruned, splits, epochs=1, seed=3, teacher=dense)
    again = protocol_finetune(_pruned(splits)[1], splits, epochs=1, seed=3, teacher=dense)
    assert first.test_ft == again.test_ft and first.test_bn == again.test_bn  # the same seed, the same model
    assert first.test_ft == evaluate(first.model, splits.test()) and first.seconds > 0
    assert first.best_epoch == 1 and 0.0 <= first.best_val <= 1.0
    assert any(not torch.equal(a, b) for a, b in zip(first.model.parameters(), _pruned(splits)[1].parameters()))


def test_a_workers_state_is_made_once_per_process():
    calls = []

    def setup(name: str) -> dict:
        calls.append(name)
        return {"name": name}

    assert per_process(setup, "a") is per_process(setup, "a") and per_process(setup, "b")["name"] == "b"
    assert calls == ["a", "b"]
