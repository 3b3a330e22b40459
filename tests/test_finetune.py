"""Fine-tuning modes on tiny models: schedule, distillation, gradual channels, sparsity, rewinding."""

import copy

import pytest
import torch
from conftest import TinyResNet
from torch import nn
from torch.nn import functional as F

from autoprune.analysis import analyse_model
from autoprune.errors import ConfigError
from autoprune.finetune import (
    FinetuneConfig,
    GradualChannelPruning,
    MagnitudeSparsity,
    PolynomialDecay,
    distillation_loss,
    finetune,
    rewind,
    sparsity_report,
)
from autoprune.models import create_model
from autoprune.pruning import MaskedPruner, architecture_for, prune_physically, rank_channels
from autoprune.pruning.record import PruningRecord
from autoprune.training import evaluate

FAST = dict(epochs=2, lr=0.05, batch_size=64, augment=False)


def test_the_guides_schedule_equals_tf_mots_documented_formula_at_every_step():
    """TF-MOT ``PolynomialDecay(0, 0.5, begin_step=2000, end_step=10000, power=3, frequency=100)``:
    ``final + (initial - final) * (1 - p) ** power`` with ``p`` clipped to [0, 1]; masks change at
    ``begin + k * frequency`` up to ``end_step``."""
    s = PolynomialDecay(0.0, 0.5, begin_step=2000, end_step=10000, power=3, frequency=100)
    for step in range(0, 12001):
        p = min(1.0, max(0.0, (step - 2000) / 8000))
        assert s.value(step) == pytest.approx(0.5 + (0.0 - 0.5) * (1 - p) ** 3, abs=1e-12)
        assert s.should_update(step) == (2000 <= step <= 10000 and (step - 2000) % 100 == 0)


def test_polynomial_decay_follows_tf_mot():
    s = PolynomialDecay(0.1, 0.8, begin_step=10, end_step=110, power=3, frequency=25)
    assert s.value(0) == 0.0 and s.value(10) == pytest.approx(0.1) and s.value(110) == pytest.approx(0.8)
    assert s.value(60) == pytest.approx(0.8 + (0.1 - 0.8) * 0.5 ** 3)
    values = [s.value(t) for t in range(10, 200)]
    assert values == sorted(values) and s.value(500) == pytest.approx(0.8)
    assert [t for t in range(200) if s.should_update(t)] == [10, 35, 60, 85, 110]
    for bad in [dict(initial=0.9, final=0.5), dict(final=1.0), dict(begin_step=5, end_step=5), dict(frequency=0)]:
        with pytest.raises(ConfigError):
            PolynomialDecay(**{**dict(initial=0.0, final=0.5, begin_step=0, end_step=10), **bad})


def test_distillation_loss_terms():
    torch.manual_seed(0)
    teacher = nn.Linear(4, 3)
    x, y = torch.randn(8, 4), torch.randint(0, 3, (8,))
    logits = torch.randn(8, 3)
    assert distillation_loss(teacher, alpha=0.0)(logits, y, x) == pytest.approx(F.cross_entropy(logits, y).item())
    same = teacher(x).detach()
    assert distillation_loss(teacher, alpha=1.0)(same, y, x).item() == pytest.approx(0.0, abs=1e-6)
    assert distillation_loss(teacher, alpha=1.0)(logits, y, x).item() > 0.01
    assert all(p.requires_grad for p in teacher.parameters())  # the teacher is not altered


def test_a_teacher_is_left_prunable(tiny_analysis):
    """Distilling from the model an analysis traced leaves its parameters trainable, so the analysis
    still prunes it (Torch-Pruning traces through gradients; a frozen first layer falls out)."""
    model = tiny_analysis.model
    loss = distillation_loss(model)
    x = torch.randn(4, 1, 28, 28)
    assert loss(torch.randn(4, 10, requires_grad=True), torch.randint(0, 10, (4,)), x).requires_grad
    assert all(p.requires_grad for p in model.parameters())
    ranking = rank_channels(tiny_analysis, "l1")
    pruned = prune_physically(tiny_analysis, ranking, {g.name: g.channels // 2 for g in tiny_analysis.groups})
    assert pruned.stem[0].out_channels == tiny_analysis.group("stem.0").channels // 2


def test_finetune_improves_and_keeps_the_best_epoch(splits):
    torch.manual_seed(0)
    model = create_model("mlp")
    before = evaluate(model, splits.val())
    seen = []
    result = finetune(model, splits, FinetuneConfig(**FAST), on_best=lambda m, e, v: seen.append((e, v)),
                      progress=False)
    assert result.best_val > before + 0.3
    assert result.best_val == max(r["val_acc"] for r in result.history)
    assert evaluate(result.model, splits.val()) == pytest.approx(result.best_val)
    assert seen and seen[-1] == (result.best_epoch, result.best_val)


def test_distillation_from_a_teacher_trains(splits):
    torch.manual_seed(0)
    teacher = finetune(create_model("mlp"), splits, FinetuneConfig(**FAST), progress=False).model
    student = create_model("mlp")
    result = finetune(student, splits, FinetuneConfig(**FAST, kd_alpha=0.7), teacher=teacher, progress=False)
    assert result.best_val > 0.5


def gradual_setup(final=0.5):
    torch.manual_seed(0)
    analysis = analyse_model(TinyResNet(), torch.randn(1, 1, 28, 28))
    ratios = {g.name: final for g in analysis.groups}
    return analysis, ratios


def test_gradual_channel_pruning_raises_ratios_and_never_unprunes():
    analysis, ratios = gradual_setup()
    hook = GradualChannelPruning(analysis, ratios, begin_step=0, end_step=40, frequency=10, power=1)
    removed_before: dict[str, set] = {g.name: set() for g in analysis.groups}
    opt = torch.optim.SGD(analysis.model.parameters(), lr=0.1)
    for step in range(41):
        hook.on_step(step)
        for g in analysis.groups:
            gone = set(hook.ranking[g.name][: g.channels - hook.kept[g.name]].tolist())
            assert removed_before[g.name] <= gone  # pruned channels stay pruned
            removed_before[g.name] = gone
        loss = analysis.model(torch.randn(8, 1, 28, 28)).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert hook.updates == 5 and hook.done(40)
    assert hook.kept == architecture_for(analysis.groups, ratios)
    x = torch.randn(4, 1, 28, 28)
    analysis.model.eval()
    masked = analysis.model(x)
    pruned, record = hook.finalize()
    assert record.kept == hook.kept
    assert torch.allclose(pruned.eval()(x), masked, atol=1e-5)
    assert sum(p.numel() for p in pruned.parameters()) < sum(p.numel() for p in analysis.model.parameters())


def test_gradual_pruning_inside_finetune(splits):
    torch.manual_seed(0)
    analysis = analyse_model(create_model("mlp"), torch.randn(1, 1, 28, 28))
    ratios = {g.name: 0.75 for g in analysis.groups}
    per_epoch = len(splits.train(64))
    hook = GradualChannelPruning(analysis, ratios, begin_step=0, end_step=per_epoch + 1, frequency=2)
    cfg = FinetuneConfig(**{**FAST, "epochs": 3})
    result = finetune(analysis.model, splits, cfg, hooks=[hook], progress=False)
    assert result.best_epoch >= 2  # epoch 1 ended mid-schedule: not a candidate for the best checkpoint
    pruned, record = hook.finalize()
    assert record.kept == architecture_for(analysis.groups, ratios)
    assert evaluate(pruned, splits.val()) == pytest.approx(result.best_val) and result.best_val > 0.5


@pytest.mark.parametrize("scope", ["layer", "global"])
def test_magnitude_sparsity_schedule_and_strip(scope):
    torch.manual_seed(0)
    model = create_model("mlp")
    hook = MagnitudeSparsity(model, PolynomialDecay(0.0, 0.8, 0, 30, power=2, frequency=10), scope)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    zeros_before = None
    for step in range(31):
        hook.on_step(step)
        zeros = torch.cat([(m.weight == 0).flatten() for m, _ in hook.params])
        if zeros_before is not None:
            assert bool((zeros | ~zeros_before).all())  # zeros stay zero
        zeros_before = zeros
        loss = model(torch.randn(16, 1, 28, 28)).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    hook.strip()
    assert not any("_orig" in k or "_mask" in k for k in model.state_dict())
    report = sparsity_report(model)
    assert report["weight_sparsity"] == pytest.approx(0.8, abs=0.01)
    if scope == "layer":
        for m, _ in hook.params:
            assert float((m.weight == 0).float().mean()) == pytest.approx(0.8, abs=0.01)
    dense = sparsity_report(create_model("mlp"))
    assert report["gzip_bytes"] < 0.5 * dense["gzip_bytes"]


def test_rewinding_keeps_the_structure_and_takes_early_weights():
    torch.manual_seed(0)
    early = create_model("resnet20").eval()
    trained = copy.deepcopy(early)
    with torch.no_grad():
        for p in trained.parameters():
            p.add_(torch.randn_like(p))
    analysis = analyse_model(trained, torch.randn(1, 1, 28, 28))
    ranking = rank_channels(analysis, "l1")
    kept = architecture_for(analysis.groups, {g.name: 0.5 for g in analysis.groups})
    record = PruningRecord.from_ranking(analysis, ranking, kept)
    pruned = prune_physically(analysis, ranking, kept)
    rewound = rewind(early, record, torch.randn(1, 1, 28, 28))
    assert [p.shape for p in rewound.parameters()] == [p.shape for p in pruned.parameters()]
    keep = sorted(set(range(16)) - set(record.removed["conv1"]))
    assert torch.equal(rewound.conv1.weight, early.conv1.weight[keep])
    assert not torch.equal(rewound.conv1.weight, pruned.conv1.weight)


def test_masked_pruner_can_keep_statistics_for_training():
    analysis, ratios = gradual_setup()
    pruner = MaskedPruner(analysis, rank_channels(analysis), restore_bn=False)
    pruner.apply(architecture_for(analysis.groups, ratios))
    analysis.model.train()
    analysis.model(torch.randn(16, 1, 28, 28) * 3)
    stats = analysis.model.stem[1].running_var.clone()
    pruner.remove()
    assert torch.equal(analysis.model.stem[1].running_var, stats)
