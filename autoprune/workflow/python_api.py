"""The one-call Python API: bring a model and data, get back the pruned model.

``prune_to_budget`` runs analyse -> profile -> search -> apply; ``finetune_model`` and
``export_model`` are one call each. Data may be Datasets, DataLoaders or ``(x, y)`` tensors.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from autoprune.analysis import analyse_model
from autoprune.analysis.layers import example_input as make_example
from autoprune.apply import apply_and_recalibrate
from autoprune.data import StreamSplits
from autoprune.errors import ConfigError
from autoprune.export import export_folder
from autoprune.finetune import FinetuneConfig, finetune
from autoprune.inputs import ModelInput, in_channels_of, rows, signature_json, signature_of
from autoprune.latency import LatencySettings
from autoprune.model_source import ModelSource
from autoprune.policy import PruningPolicy, SearchScore
from autoprune.pruning.record import PruningRecord
from autoprune.records import ExportRecord
from autoprune.scoring import ScoreFn, accuracy
from autoprune.search import SearchConfig, SearchRun
from autoprune.search.config import DEFAULT_AGENT

Data = Dataset | DataLoader | tuple[torch.Tensor, torch.Tensor]


@dataclass
class PruneResult:
    """What :func:`prune_to_budget` returns: the pruned model (BN recalibrated, not yet fine-tuned),
    its policy and record, its validation score as the search measured it, and the run folder."""

    model: nn.Module
    policy: PruningPolicy
    record: PruningRecord
    val_score: float
    folder: Path


def as_splits(train: Data, val: Data, test: Data | None = None,
              example_input: ModelInput | None = None) -> StreamSplits:
    """Datasets, DataLoaders or ``(x, y)`` tensor pairs as the splits the search streams."""
    def wrap(d: Data | None) -> Dataset | DataLoader | None:
        if isinstance(d, tuple) and len(d) == 2 and all(isinstance(t, torch.Tensor) for t in d):
            return TensorDataset(*d)
        return d

    shape = signature_of(example_input) if example_input is not None else None
    return StreamSplits(wrap(train), wrap(val), wrap(test), input_shape=shape)


def prune_to_budget(model: nn.Module | str, example_input: ModelInput | None, train_data: Data, val_data: Data,
                    budget: str = "50%", cost_model: str = "lut", agent: str = DEFAULT_AGENT, episodes: int = 300,
                    out: str | Path = "runs/prune", score_fn: ScoreFn | None = None, resume: bool = False,
                    progress: bool = True, **settings: Any) -> PruneResult:
    """Search per-group pruning ratios for ``budget`` and prune ``model`` to the best policy.

    Args:
        model: the trained model, or a reference (``"path/file.py:factory"``, a built-in name).
        example_input: one batch of inputs (its shape without the batch dimension is the input
            shape): a tensor, a tuple of tensors or a dict of keyword tensors; None: from the data.
        train_data, val_data: Datasets, DataLoaders or ``(x, y)`` tensors; the search scores on a
            fixed slice of ``val_data`` and recalibrates BN on a fixed slice of ``train_data``.
        budget: ``"50%"`` of dense, ``"0.15ms"``, ``"12M"`` MACs (see :mod:`autoprune.budget`).
        cost_model: ``lut`` (profiled on this machine), ``flops``, ``roofline``, or a plug-in.
        out: the run folder (history, policy, report), resumable with ``resume=True``.
        score_fn: ``score(model, batches) -> float``, higher is better (default: top-1 accuracy).
        settings: any other :class:`~autoprune.search.SearchConfig` field (``round_to``,
            ``val_size``, ``seeds``, ``provider``, ``torch_device`` ...).
    """
    known = {f.name for f in fields(SearchConfig)}
    unknown = sorted(set(settings) - known)
    if unknown:
        raise ConfigError(f"prune_to_budget got unknown setting {unknown[0]!r}; see SearchConfig for the names")
    splits = as_splits(train_data, val_data, example_input=example_input)
    if isinstance(model, str):
        source = ModelSource(model, settings.pop("model_args", {}), settings.pop("weights", None))
        module = source.load(in_channels=in_channels_of(splits.input_shape) or 1, num_classes=splits.num_classes)
        name = source.ref
    else:
        module, name, source = model, type(model).__name__, None
    config = SearchConfig(model=name, data="python", budget=budget, cost_model=cost_model, agent=agent,
                          episodes=episodes, out=str(out), input_shape=signature_json(splits.input_shape),
                          **({"model_args": source.args} if source else {}), **settings)
    run = SearchRun(config, splits=splits, progress=progress, model=module, score=score_fn)
    summary = run.run(resume=resume)
    if summary["best"] is None:
        raise ConfigError(f"no candidate met the budget {budget}; loosen it or raise max_ratio (see {out}/history.csv)")
    policy = run.policy  # what best_policy.json holds, without reading it back
    example = rows(example_input, 1) if example_input is not None else make_example(module, splits.input_shape)
    analysis = analyse_model(copy.deepcopy(module).eval(), example, exclude=policy.exclude)
    searched = policy.score or SearchScore()
    bn = searched.bn_batches or config.bn_batches
    pruned, record = apply_and_recalibrate(analysis, policy, splits, bn)
    return PruneResult(pruned.eval(), policy, record, float("nan") if searched.val is None else searched.val, Path(out))


def finetune_model(model: nn.Module, train_data: Data, val_data: Data, epochs: int = 5, lr: float = 0.01,
                   teacher: nn.Module | None = None, score_fn: ScoreFn = accuracy,
                   **settings: Any) -> nn.Module:
    """Fine-tune ``model`` in place (cosine SGD; distillation from ``teacher`` when given) and return
    it with its best epoch's weights. ``settings``: other :class:`~autoprune.finetune.FinetuneConfig`
    fields (``batch_size``, ``augment`` — off unless asked —, ``device`` ...)."""
    cfg = FinetuneConfig(epochs=epochs, lr=lr, **{"augment": (), **settings})
    return finetune(model, as_splits(train_data, val_data), cfg, teacher, score=score_fn, progress=False).model


def export_model(model: nn.Module, out: str | Path, example_input: ModelInput,
                 policy: PruningPolicy | None = None, settings: LatencySettings = LatencySettings(),
                 dense: nn.Module | None = None) -> ExportRecord:
    """Write ``model.onnx`` (+ weights, + ``policy.json``) to ``out`` and measure its latency with
    ONNX Runtime; returns what ``export.json`` holds (``latency_ms``; against the policy's budget,
    judged as a share of ``dense``'s latency timed in the same passes when the dense model is given)."""
    return export_folder(model.cpu().eval(), policy.model if policy and policy.model else type(model).__name__, out,
                         signature_of(example_input), policy=policy, settings=settings,
                         dense=None if dense is None else copy.deepcopy(dense).cpu().eval())
