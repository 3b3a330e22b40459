"""Policies for several budgets -> one dynamic model: nested, BN statistics per width, each variant
exported to ONNX and measured, the weights stored once."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from autoprune.analysis import analyse_model
from autoprune.analysis.layers import example_input
from autoprune.atomic import write_json_atomic
from autoprune.budget import MEASURED_TOLERANCE, Budget
from autoprune.costs import FlopsCostModel
from autoprune.data import Splits
from autoprune.dynamic import DynamicModel, nest_variants
from autoprune.dynamic.joint import joint_finetune
from autoprune.dynamic.variants import export_variants, save_dynamic
from autoprune.errors import ConfigError
from autoprune.evaluation import search_bn_batches
from autoprune.export import budget_verdict
from autoprune.finetune import FinetuneConfig
from autoprune.inputs import InputSpec, in_channels_of
from autoprune.latency import LatencySettings
from autoprune.model_source import ModelSource
from autoprune.policy import PruningPolicy
from autoprune.pruning import rank_channels
from autoprune.training import evaluate


@dataclass(frozen=True)
class VariantReport:
    """One variant of ``dynamic.json``: its budget, what nesting changed, accuracy and latency."""

    label: str
    policy: str
    budget_ms: float | None
    measured_ms: float
    within_budget: bool | None  # judged as a share of the dense model timed alongside (see export.budget_verdict)
    test_acc: float
    channels_cut_by_nesting: dict[str, int]
    share_of_dense: float | None = None
    budget_share_of_dense: float | None = None


def dynamic_stage(policies: Sequence[str | Path], source: ModelSource, splits: Splits, out: str | Path,
                  settings: LatencySettings = LatencySettings(), bn_batches: int = 20,
                  require_weights: bool = True, finetune: FinetuneConfig | None = None,
                  distill: bool = True, progress: bool = True) -> list[VariantReport]:
    """Nest the policies' architectures, build the :class:`DynamicModel`, recalibrate BN per width,
    fine-tune every width jointly when ``finetune`` is given (distilled from the dense model when
    ``distill``), export and measure every variant; writes ``variants.json``, ``dynamic.pt`` and
    ``dynamic.json``."""
    out = Path(out)
    loaded = [PruningPolicy.load(p) for p in policies]
    first = loaded[0]
    if any(p.exclude != first.exclude or p.importance != first.importance for p in loaded):
        raise ConfigError("the policies differ in excluded modules or channel importance; give policies of "
                          "one model searched with the same settings")
    shape = source.shape(first.signature or splits.input_shape)
    if isinstance(shape, InputSpec):
        raise ConfigError(f"dynamic pruning exports one ONNX variant per width for models of one input tensor; this "
                          f"model takes several ({shape.describe()}): use autoprune apply and export per policy")
    dense = source.load(require_weights, in_channels_of(shape) or 1, splits.num_classes)
    timed_dense = copy.deepcopy(dense).eval()  # the unpruned architecture, timed beside the variants
    analysis = analyse_model(dense, example_input(dense, shape), exclude=first.exclude)
    labels = {}
    for path, policy in zip(policies, loaded):
        policy.validate_for(analysis, source=f"policy {path}")
        labels[_label(policy, path, labels)] = (str(path), policy)
    ranking = rank_channels(analysis, first.importance, batches=splits.train(64, shuffle=False))
    flops = FlopsCostModel(analysis.layers)
    wanted = {label: policy.architecture(analysis) for label, (_, policy) in labels.items()}
    nested = nest_variants(wanted, size=lambda kept: flops.cost(kept).flops)
    model = DynamicModel(analysis, ranking, nested).eval()
    bn = search_bn_batches(splits, bn_batches)
    model.recalibrate(bn, bn_batches)
    joint = []
    if finetune is not None and finetune.epochs > 0:
        joint = joint_finetune(model, lambda e: splits.train(finetune.batch_size, augment=finetune.augment,
                                                             seed=finetune.seed * 1000 + e),
                               splits.val(), bn, finetune, dense.eval() if distill else None, progress=progress).history
    accuracy = {}
    for label in nested:
        accuracy[label] = evaluate(model.set_variant(label), splits.test())
    budgets = {label: _latency_budget(policy) for label, (_, policy) in labels.items()}
    found = export_variants(model, out, shape, settings, accuracy,
                            {label: None if b is None else b.value for label, b in budgets.items()}, dense=timed_dense)
    save_dynamic(out / "dynamic.pt", model, source.ref, shape, splits.num_classes, source.args)
    reports = [_report(v.label, labels[v.label][0], budgets[v.label], v.latency_ms, found.dense_latency_ms,
                       accuracy[v.label], wanted[v.label], nested[v.label]) for v in found.variants]
    write_json_atomic(out / "dynamic.json", {"model": source.ref, "variants": [asdict(r) for r in reports],
                                             "tolerance": MEASURED_TOLERANCE, "joint_finetune": joint,
                                             "finetune": None if finetune is None else asdict(finetune)})
    return reports


def _label(policy: PruningPolicy, path: str | Path, taken: dict) -> str:
    """``"40%"`` for a policy searched at 40 % of the dense cost, else the file's name."""
    label = f"{round(100 * Budget.from_dict(policy.budget).fraction)}%" if policy.budget else Path(path).stem
    if label in taken:
        raise ConfigError(f"two policies are for the same budget ({label}); give one policy per budget")
    return label


def _latency_budget(policy: PruningPolicy) -> Budget | None:
    budget = Budget.from_dict(policy.budget) if policy.budget else None
    return budget if budget is not None and budget.metric == "latency_ms" else None


def _report(label: str, policy: str, budget: Budget | None, measured: float, dense_ms: float | None, acc: float,
            wanted: dict[str, int], nested: dict[str, int]) -> VariantReport:
    cut = {g: wanted[g] - nested[g] for g in wanted if nested[g] < wanted[g]}
    if budget is None:
        return VariantReport(label, policy, None, measured, None, acc, cut)
    judged = budget_verdict(budget, measured, dense_ms)
    return VariantReport(label, policy, budget.value, measured, judged["within_budget_tolerance"], acc, cut,
                         judged.get("share_of_dense"), judged.get("budget_share_of_dense"))
