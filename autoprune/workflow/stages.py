"""The stages after a search, each reading files and writing one folder (used by the CLI and pipeline).

``apply``: policy + dense model -> ``model.pt`` (pruned, BN recalibrated) and ``apply.json``.
``finetune``: a checkpoint -> fine-tuned ``model.pt`` (best epoch) and ``finetune.json``; modes:
plain, gradual channel pruning, lottery-ticket rewinding, unstructured magnitude sparsity.
``export``: a checkpoint -> ``model.onnx``, ``model.pt``, ``policy.json``, ``export.json``.
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from torch import nn

from autoprune.analysis import analyse_model
from autoprune.analysis.layers import example_input
from autoprune.apply import apply_policy, recalibrate_pruned
from autoprune.atomic import write_json_atomic, write_text_atomic
from autoprune.checkpoint import (
    load_model,
    load_or_create,
    save_checkpoint,
    shipped_weights,
)
from autoprune.data import Splits
from autoprune.data.checks import check_training_data
from autoprune.dynamic.model import DynamicModel
from autoprune.dynamic.supernet import load_supernet
from autoprune.errors import ConfigError
from autoprune.evaluation import CandidateEvaluator
from autoprune.export import export_folder
from autoprune.finetune import (
    FinetuneConfig,
    GradualChannelPruning,
    MagnitudeSparsity,
    PolynomialDecay,
    finetune,
    rewind,
    sparsity_report,
)
from autoprune.inputs import Signature, describe_signature, in_channels_of
from autoprune.latency import LatencySettings
from autoprune.model_source import ModelSource
from autoprune.models import create_model, is_builtin, list_models
from autoprune.policy import PruningPolicy, SearchScore
from autoprune.pruning import rank_channels
from autoprune.pruning.prunability import check_prunable
from autoprune.pruning.record import PruningRecord
from autoprune.records import ApplyRecord, ExportRecord, FinetuneRecord
from autoprune.references import require_consent
from autoprune.scoring import LossFn, ScoreFn, accuracy
from autoprune.sensitivity import DEFAULT_RATIOS, plot_sensitivity, sensitivity_sweep
from autoprune.settings import setting
from autoprune.training import evaluate
from autoprune.workflow.iterative import IterativeSettings, imp_stage, iterative_channels_stage


def apply_stage(policy_path: str | Path, source: ModelSource | None, splits: Splits, out: str | Path,
                importance: str | None = None, bn_batches: int | None = None,
                require_weights: bool = True, score: ScoreFn = accuracy,
                supernet: str | Path | None = None, policy: PruningPolicy | None = None) -> ApplyRecord:
    """Prune the dense model to the policy for real, recalibrate BN, save it; returns ``apply.json``.

    ``supernet``: a supernet folder (``--init supernet``): the pruned model starts from the
    supernet's slice of the policy's architecture instead of the dense model's channels.
    ``policy``: the policy ``policy_path`` holds, when the caller has it in memory (not read again).

    The model is ``source``, or the one the policy names (with its factory arguments). The
    modules the search excluded are read from the policy, so its groups match the model's. BN is
    recalibrated on the batches the search scored with (the leading ``bn_batches`` of the
    training split, the policy's count by default), so the applied model reproduces the search's
    validation score (``val_score`` next to the policy's ``val``).
    """
    out = Path(out)
    policy = policy or PruningPolicy.load(policy_path)
    source = source or policy_model_source(policy, str(policy_path))
    shape = source.shape(policy.signature or splits.input_shape)
    check_data_shape(splits, shape, f"policy {policy_path}")
    dense = source.load(require_weights, in_channels_of(shape) or 1, splits.num_classes)
    analysis = analyse_model(dense, example_input(dense, shape), exclude=policy.exclude)
    policy.validate_for(analysis, source=f"policy {policy_path}")
    pruned, record = apply_policy(analysis, policy, importance, splits.train(64, shuffle=False), policy.exclude)
    if supernet is not None:  # same architecture, the supernet's weights for it
        ranking = rank_channels(analysis, importance or policy.importance, splits.train(64, shuffle=False))
        sliced = load_supernet(supernet, DynamicModel(analysis, ranking, {})).pruned_widths(record.kept)
        pruned.load_state_dict(sliced.state_dict())
    raw_test = evaluate(pruned, splits.test(), score)
    searched = policy.score or SearchScore()
    bn = bn_batches if bn_batches is not None else (searched.bn_batches or 5)
    recalibrate_pruned(pruned, splits, bn)
    val_images = searched.val_images or None
    summary = {
        "policy": str(policy_path), "model": source.ref, "importance": importance or policy.importance,
        "init": "dense" if supernet is None else f"supernet {supernet}",
        "dense_test_acc": evaluate(dense, splits.test(), score), "pruned_test_acc_raw": raw_test,
        "pruned_test_acc_bn": evaluate(pruned, splits.test(), score), "pruned_val_acc_bn": evaluate(pruned, splits.val(), score),
        "val_score": evaluate(pruned, splits.val(limit=val_images), score), "val_score_search": searched.val,
        "bn_batches": bn, "test_split": test_split_name(splits), "dense_params": sum(p.numel() for p in dense.parameters()),
        "pruned_params": sum(p.numel() for p in pruned.parameters()), "channels": record.kept,
    }
    save_checkpoint(out / "model.pt", pruned, source.ref, in_channels_of(shape) or 1, splits.num_classes,
                    meta={"stage": "apply", "policy": policy.to_dict(), "test_acc": summary["pruned_test_acc_bn"],
                          "dense_test_acc": summary["dense_test_acc"],
                          "dense_weights": None if source.weights is None else str(source.weights)},
                    pruning=record, input_shape=shape, model_args=source.args)
    policy.save(out / "policy.json")
    write_json_atomic(out / "apply.json", summary)
    return summary


def check_data_shape(splits: Splits, shape: Signature, source: str) -> None:
    """Refuse data whose inputs do not have the model's input shape, before any work."""
    given = getattr(splits, "input_shape", None) or None
    if given and describe_signature(given) != describe_signature(shape):
        raise ConfigError(f"the data's inputs have {describe_signature(given)}, but {source} is for inputs of "
                          f"{describe_signature(shape)}; pass data of that shape (or --input-shape for image folders)")


def test_split_name(splits: Splits) -> str:
    """Which split the ``test`` numbers come from: data given without one report on validation."""
    return "test" if getattr(splits, "has_test", True) else "val (the data has no test split)"


def policy_model_source(policy: PruningPolicy, where: str, weights: str | None = None) -> ModelSource:
    """The model a policy was found for (name or factory reference, with its arguments)."""
    if not policy.model:
        raise ConfigError(f"{where} names no model; pass --model NAME or --model file.py:factory")
    require_consent(policy.model, where)
    if is_builtin(policy.model) and policy.model not in list_models():
        raise ConfigError(f"{where} names model {policy.model!r}, which this autoprune does not have (built-ins: "
                          f"{', '.join(list_models())}); pass --model NAME or --model file.py:factory")
    return ModelSource(policy.model, dict(policy.model_args), weights, policy.signature)


@dataclass
class FinetuneMode:
    """What the fine-tuning does besides training; at most one of the modes is set.

    Attributes:
        gradual_policy: a policy file: the (dense) model is pruned to it gradually during training.
        iterative_policy: a policy file: the (dense) model is cut toward it in ``steps`` steps,
            fine-tuned ``epochs_per_step`` epochs after each (see :mod:`autoprune.workflow.iterative`).
        rewind_from: a dense checkpoint saved early in training: the pruned structure is rebuilt
            from those weights (lottery-ticket rewinding) and retrained; with ``iterative_policy``
            or ``rounds`` > 1, every step or round rewinds to it (iterative magnitude pruning).
        sparsity: final share of zero weights for unstructured magnitude pruning, reached on a
            polynomial schedule, or in ``rounds`` IMP rounds when ``rounds`` > 1.
    """

    gradual_policy: str | None = setting(
        None, "prune the dense checkpoint to POLICY gradually while training, then for real",
        option="--gradual", metavar="POLICY")
    rewind_from: str | None = setting(
        None, "lottery-ticket rewinding: keep the pruned structure, retrain from these early weights",
        metavar="EARLY.pt")
    iterative_policy: str | None = setting(
        None, "cut the dense checkpoint toward POLICY in --steps steps, fine-tuning after each",
        option="--iterative", metavar="POLICY")
    sparsity: float | None = setting(
        None, "unstructured magnitude pruning to this share of zero weights (torch.nn.utils.prune); "
              "with --rounds > 1, iterative magnitude pruning (IMP)")
    sparsity_scope: str = setting("layer", "the share per layer, or one threshold over all layers",
                                  choices=["layer", "global"])
    steps: int = setting(3, "prune -> fine-tune cycles toward the policy")
    schedule: str = setting("geometric", "channels per step: the same share of the remaining (geometric) "
                                         "or the same number", choices=["geometric", "linear"])
    rounds: int = setting(1, "IMP rounds (each prunes a share of the remaining weights)")
    epochs_per_step: int | None = setting(None, "fine-tuning epochs after each step or round "
                                                "(default: --epochs split evenly)")
    begin_step: int = setting(0, "first step of the polynomial schedule")
    end_step: int | None = setting(None, "last step of the schedule (default: half of the training steps)")
    frequency: int = setting(100, "steps between mask updates")
    power: float = setting(3.0, "exponent of the polynomial decay")
    initial: float = setting(0.0, "initial sparsity, or initial share of the final ratios for --gradual")

    @property
    def name(self) -> str:
        chosen = [n for n, v in (("gradual", self.gradual_policy), ("iterative", self.iterative_policy),
                                 ("sparsity", self.sparsity)) if v is not None]
        if len(chosen) > 1:
            raise ConfigError(f"choose one fine-tuning mode, got {' and '.join(chosen)}")
        if self.steps < 1 or self.rounds < 1 or (self.epochs_per_step or 0) < 0:
            raise ConfigError("--steps and --rounds must be >= 1 and --epochs-per-step >= 0")
        if chosen == ["sparsity"] and self.rounds > 1:
            return "imp"
        if self.rewind_from and chosen in (["gradual"], ["sparsity"]):
            raise ConfigError(f"--rewind-from goes with --iterative, with --sparsity and --rounds > 1 (IMP), or "
                              f"alone; not with {chosen[0]} pruning")
        if not chosen:
            return "rewind" if self.rewind_from else "plain"
        return chosen[0]


def finetune_stage(checkpoint: str | Path, splits: Splits, cfg: FinetuneConfig, out: str | Path,
                   mode: FinetuneMode = FinetuneMode(), teacher_weights: str | Path | None = None,
                   distill: bool = False, progress: bool = True, source: ModelSource | None = None,
                   score: ScoreFn = accuracy, loss: LossFn | None = None) -> FinetuneRecord:
    """Fine-tune the checkpoint's model as ``mode`` says; writes ``model.pt`` and ``finetune.json``.

    ``source`` names the model when the checkpoint is a plain state dict; ``score`` picks the best
    epoch and ``loss`` trains (cross-entropy, or distillation, by default).
    """
    out = Path(out)
    if mode.name in ("iterative", "imp"):
        return _iterative(checkpoint, splits, cfg, out, mode, teacher_weights, distill, progress, score, loss)
    sizes = {} if source is None else {"model_name": source.ref, "model_args": source.args or None,
                                       "in_channels": in_channels_of(splits.input_shape) or 1,
                                       "num_classes": splits.num_classes}
    model, info = load_model(checkpoint, **sizes)
    name, meta, record, args = info.model, dict(info.meta), info.pruning, dict(info.model_args)
    shape = info.shape(source.input_shape if source else None, f"checkpoint {checkpoint}") \
        if (info.input_shape or (source and source.input_shape)) else splits.input_shape
    teacher = _teacher(name, args, teacher_weights or meta.get("dense_weights"), record, model) if distill else None
    if mode.name == "rewind":  # the trained weights only chose the channels; retrain from early ones
        model = _rewound(mode.rewind_from, name, record, shape)
    check_training_data(splits, model, shape, loss is None, f"checkpoint {checkpoint}")
    before = evaluate(model, splits.test(), score)
    steps = cfg.epochs * len(splits.train(cfg.batch_size))
    hooks, finish = _mode_hooks(mode, model, record, shape, splits, steps)
    start = time.perf_counter()

    def save_best(m: nn.Module, epoch: int, val: float) -> None:
        if not hooks:  # while masks are in place the model is not yet in its final form
            _save(out / "model.pt", m, name, args, splits, shape, record,
                  {**meta, "best_epoch": epoch, "val_acc": val})

    result = finetune(model, splits, cfg, teacher, hooks, on_best=save_best, progress=progress, score=score,
                      loss=loss)
    model, record, extra = finish(result.model, record)
    seconds = time.perf_counter() - start
    test = evaluate(model, splits.test(), score)
    if "policy" in extra:  # gradual pruning: the model now follows this policy
        meta["policy"] = extra.pop("policy")
    summary = {"checkpoint": str(checkpoint), "mode": mode.name, "mode_settings": asdict(mode),
               "config": asdict(cfg), "distill": distill, "test_acc_before": before, "test_acc": test,
               "test_split": test_split_name(splits),
               "best_epoch": result.best_epoch, "best_val_acc": result.best_val, "history": result.history,
               "seconds": round(seconds, 1), "params": sum(p.numel() for p in model.parameters()), **extra}
    meta.update(stage="finetune", test_acc=test, val_acc=result.best_val, finetune_mode=mode.name)
    _save(out / "model.pt", model, name, args, splits, shape, record, meta)
    write_json_atomic(out / "finetune.json", summary)
    return summary


def _iterative(checkpoint: str | Path, splits: Splits, cfg: FinetuneConfig, out: Path, mode: FinetuneMode,
               teacher_weights: str | Path | None, distill: bool, progress: bool, score: ScoreFn,
               loss: LossFn | None) -> FinetuneRecord:
    """Prune -> fine-tune cycles toward a policy, or unstructured IMP rounds (resumable)."""
    imp = mode.name == "imp"
    parts = mode.rounds if imp else mode.steps
    per_step = mode.epochs_per_step if mode.epochs_per_step is not None else max(1, cfg.epochs // parts)
    settings = IterativeSettings(str(checkpoint), "imp" if imp else "channels", per_step, mode.iterative_policy,
                                 mode.steps, mode.schedule, mode.sparsity, mode.rounds, mode.sparsity_scope,
                                 mode.rewind_from)
    if imp:
        return imp_stage(settings, splits, cfg, out, progress, score, loss)
    return iterative_channels_stage(settings, splits, cfg, out, None if teacher_weights is None else str(teacher_weights),
                                    distill, progress, score, loss)


def _save(path: Path, model: nn.Module, name: str, args: dict[str, Any], splits: Splits, shape: Signature,
          record: PruningRecord | None, meta: dict[str, Any]) -> None:
    save_checkpoint(path, model, name, in_channels_of(shape) or 1, splits.num_classes, meta, pruning=record, input_shape=shape,
                    model_args=args)


def _teacher(name: str, args: dict[str, Any], weights: str | Path | None, record: PruningRecord | None,
             model: nn.Module) -> nn.Module:
    """The dense teacher: given weights (or those the model was pruned from), else the shipped ones
    (a factory reference: the model its factory builds), else (dense input) a frozen copy of the model."""
    if weights is None and record is None:
        return copy.deepcopy(model)
    if weights is None and is_builtin(name) and shipped_weights(name) is None:
        raise ConfigError(f"--distill needs the dense {name} model as teacher; pass --teacher FILE")
    return load_or_create(name, weights, require_weights=True, model_args=args or None)


def _rewound(early_path: str, name: str, record: PruningRecord | None, shape: Signature) -> nn.Module:
    if record is None:
        raise ConfigError("--rewind-from needs a pruned checkpoint (from 'autoprune apply') to take the "
                          "structure from")
    early, info = load_model(early_path, name)
    if info.pruning is not None:
        raise ConfigError(f"--rewind-from {early_path} is a pruned model; pass a dense checkpoint saved "
                          f"early in training ('autoprune train --save-epochs')")
    return rewind(early, record, example_input(early, shape))


def _mode_hooks(mode: FinetuneMode, model: nn.Module, record: PruningRecord | None,
                shape: Signature, splits: Splits, steps: int):
    """The step hooks of ``mode`` and a ``finish(model, record) -> (model, record, extra)`` function."""
    end = mode.end_step if mode.end_step is not None else max(1, steps // 2)
    kind = mode.name
    if kind in ("gradual", "sparsity") and end > steps:
        raise ConfigError(f"--end-step {end} is beyond the {steps} training steps; lower it or train "
                          f"more --epochs, so the final ratios are reached")
    if kind in ("plain", "rewind"):
        return [], lambda m, r: (m, r, {"rewound_from": mode.rewind_from} if kind == "rewind" else {})
    if kind == "sparsity":
        hook = MagnitudeSparsity(model, PolynomialDecay(mode.initial, mode.sparsity, mode.begin_step, end,
                                                        mode.power, mode.frequency), mode.sparsity_scope)
        return [hook], lambda m, r: (hook.strip(), r, {"sparsity": sparsity_report(m)})
    if record is not None:
        raise ConfigError("gradual pruning starts from the dense model; pass its checkpoint, not a pruned one")
    policy = PruningPolicy.load(mode.gradual_policy)
    analysis = analyse_model(model, example_input(model, shape), exclude=policy.exclude)
    policy.validate_for(analysis, source=f"policy {mode.gradual_policy}")
    hook = GradualChannelPruning(analysis, policy.ratios, mode.begin_step, end, mode.power, mode.frequency,
                                 mode.initial, policy.importance, policy.round_to,
                                 splits.train(64, shuffle=False), exclude=policy.exclude)

    def finish(m: nn.Module, r: PruningRecord | None):
        pruned, rec = hook.finalize()
        return pruned, rec, {"mask_updates": hook.updates, "channels": rec.kept, "policy": policy.to_dict()}

    return [hook], finish


def export_stage(checkpoint: str | Path, out: str | Path, settings: LatencySettings = LatencySettings(),
                 exporter: str = "torchscript", measure_dense: bool = True) -> ExportRecord:
    """Export the checkpoint's model (ONNX, weights, policy) and measure it; returns ``export.json``."""
    model, info = load_model(checkpoint)
    name, meta = info.model, dict(info.meta)
    shape = info.shape(source=f"checkpoint {checkpoint}")
    policy = PruningPolicy.from_dict(meta.pop("policy"), "checkpoint's policy") if meta.get("policy") else None
    args = info.model_args or None
    dense = create_model(name, in_channels_of(shape) or 1, info.num_classes, args).eval() if measure_dense else None
    return export_folder(model, name, out, shape, info.num_classes, info.pruning, policy, meta, settings, exporter,
                        model_args=args, dense=dense)


def sensitivity_stage(source: ModelSource, splits: Splits, out: str | Path, ratios=DEFAULT_RATIOS,
                      val_size: int = 2000, bn_batches: int = 5, round_to: int = 1, importance: str = "l1",
                      exclude: list[str] | None = None, progress: bool = True, require_weights: bool = True,
                      score: ScoreFn = accuracy):
    """Per-group sensitivity sweep: ``sensitivity.csv`` and ``sensitivity.png`` in ``out``."""
    out = Path(out)
    shape = source.shape(splits.input_shape)
    model = source.load(require_weights, in_channels_of(shape) or 1, splits.num_classes)
    analysis = analyse_model(model, example_input(model, shape), exclude=exclude or [])
    check_prunable(analysis)
    ranking = rank_channels(analysis, importance, splits.train(64, shuffle=False))
    scorer = CandidateEvaluator(analysis, ranking, splits, val_size, bn_batches, score=score)
    frame = sensitivity_sweep(analysis, scorer, ratios, round_to, progress)
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / "sensitivity.csv", frame.to_csv(index=False))
    plot_sensitivity(frame, out / "sensitivity.png", f"{Path(source.ref).name}: per-group sensitivity")
    return frame
