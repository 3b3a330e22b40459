"""The iterative fine-tuning stages: prune -> fine-tune cycles toward a policy, and IMP rounds.

Both write as they go and resume: ``iterative.json`` (the settings; a folder holding another run
is refused), ``steps.csv`` / ``rounds.csv`` (one row per finished step or round: channels or
sparsity, weights, MACs, measured latency, validation and test score), ``step<k>/model.pt`` (each
intermediate pruned model) or ``masks/round<r>.pt`` + ``round<r>/model.pt``, and at the end
``model.pt`` and ``finetune.json`` like every fine-tuning mode.
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from autoprune.analysis import analyse_model
from autoprune.analysis.layers import example_input
from autoprune.atomic import atomic_path, read_json, write_json_atomic, write_text_atomic
from autoprune.checkpoint import CheckpointInfo, load_model, save_checkpoint
from autoprune.costs import FlopsCostModel
from autoprune.data import Splits
from autoprune.errors import ConfigError
from autoprune.finetune import FinetuneConfig, finetune
from autoprune.finetune.iterative import (
    FixedMasks,
    channel_schedule,
    dense_record,
    imp_schedule,
    magnitude_masks,
    mask_sparsity,
    prunable_weights,
    prune_further,
    rewind_weights,
)
from autoprune.finetune.rewind import rewind
from autoprune.finetune.unstructured import sparsity_report
from autoprune.inputs import Signature, in_channels_of
from autoprune.latency import measure_latency
from autoprune.policy import PruningPolicy
from autoprune.records import FinetuneRecord
from autoprune.scoring import LossFn, ScoreFn, accuracy
from autoprune.training import evaluate


@dataclass
class IterativeSettings:
    """What an iterative run is; saved as ``iterative.json`` so a resume continues the same run."""

    checkpoint: str
    kind: str  # "channels" (toward a policy) or "imp" (unstructured rounds)
    epochs_per_step: int
    policy: str | None = None
    steps: int = 3
    schedule: str = "geometric"
    sparsity: float | None = None
    rounds: int = 1
    scope: str = "layer"
    rewind_from: str | None = None
    importance: str | None = None

    def claim(self, out: Path) -> int:
        """Write the settings (or check them against a run to resume); returns the steps done."""
        path = out / "iterative.json"
        if path.is_file():
            saved = read_json(path)
            if not isinstance(saved, dict):
                raise ConfigError(f"{path} is damaged (not a mapping of settings); delete it to start the run over")
            if saved != asdict(self):
                differ = sorted(k for k in saved if saved.get(k) != asdict(self).get(k))
                raise ConfigError(f"{out} holds an iterative run with other settings ({', '.join(differ)}); "
                                  f"choose another --out or repeat that run's command to resume it")
        else:
            out.mkdir(parents=True, exist_ok=True)
            write_json_atomic(path, asdict(self))
        table = out / ("steps.csv" if self.kind == "channels" else "rounds.csv")
        return len(pd.read_csv(table)) if table.is_file() else 0


def _append_row(path: Path, row: dict[str, Any]) -> None:
    frame = pd.read_csv(path) if path.is_file() else pd.DataFrame()
    frame = pd.concat([frame, pd.DataFrame([row])], ignore_index=True)
    write_text_atomic(path, frame.to_csv(index=False))


def _dense(checkpoint: str, what: str) -> tuple[nn.Module, CheckpointInfo, Signature, str, dict[str, Any]]:
    """The dense model a stage starts from: model, checkpoint info, input shape, name, factory arguments."""
    model, info = load_model(checkpoint)
    if info.pruning is not None:
        raise ConfigError(f"{what} starts from the dense model; pass its checkpoint, not a pruned one")
    return model, info, info.shape(source=f"checkpoint {checkpoint}"), info.model, dict(info.model_args)


def _publish(final: Path, path: Path) -> None:
    """The last step's or round's checkpoint copied as the stage's ``model.pt`` (atomically)."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(final.read_bytes())


def _measure(model: nn.Module, shape: Signature) -> dict[str, Any]:
    layers = analyse_model(model, example_input(model, shape)).layers
    cost = FlopsCostModel(layers).dense_cost()
    return {"params": sum(p.numel() for p in model.parameters()), "macs": cost.flops,
            "latency_ms": round(measure_latency(model.cpu().eval(), shape), 4)}


def iterative_channels_stage(settings: IterativeSettings, splits: Splits, cfg: FinetuneConfig, out: str | Path,
                             teacher_weights: str | None = None, distill: bool = False, progress: bool = True,
                             score: ScoreFn = accuracy, loss: LossFn | None = None) -> FinetuneRecord:
    """Reach the policy's channels in ``settings.steps`` cuts, fine-tuning after each (rewinding the
    kept channels to ``settings.rewind_from`` first, for structured IMP); resumable."""
    out = Path(out)
    dense, info, shape, name, args = _dense(settings.checkpoint, "iterative pruning")
    policy = PruningPolicy.load(settings.policy)
    analysis = analyse_model(dense, example_input(dense, shape), exclude=policy.exclude)
    policy.validate_for(analysis, source=f"policy {settings.policy}")
    plan = channel_schedule({g.name: g.channels for g in analysis.groups}, policy.architecture(analysis),
                            settings.steps, settings.schedule)
    early = load_model(settings.rewind_from, name, args or None)[0] if settings.rewind_from else None
    done = settings.claim(out)
    if done:
        model, step_info = load_model(out / f"step{done}" / "model.pt")
        record = step_info.pruning
        tqdm.write(f"resuming {out}: {done} of {settings.steps} steps done")
    else:
        model, record = copy.deepcopy(dense), dense_record(analysis.groups, policy.exclude)
    teacher = None
    if distill:  # the dense model being pruned, unless another teacher is given
        teacher = load_model(teacher_weights, name, args or None)[0] if teacher_weights else copy.deepcopy(dense).eval()
    step_cfg = replace(cfg, epochs=settings.epochs_per_step)
    importance = settings.importance or policy.importance
    for k in range(done + 1, settings.steps + 1):
        start = time.perf_counter()
        model, record = prune_further(model.cpu(), example_input(model, shape), record, plan[k - 1], importance,
                                      splits.train(64, shuffle=False))
        if early is not None:  # structured IMP: the surviving channels restart from the early weights
            model = rewind(early, record, example_input(early, shape))
        if step_cfg.epochs > 0:
            model = finetune(model, splits, step_cfg, teacher, progress=progress, score=score, loss=loss).model
        model = model.cpu().eval()
        row = {"step": k, "channels": json.dumps(record.kept), **_measure(model, shape),
               "val_score": evaluate(model, splits.val(limit=cfg.val_size), score),
               "test_score": evaluate(model, splits.test(), score), "seconds": round(time.perf_counter() - start, 1)}
        save_checkpoint(out / f"step{k}" / "model.pt", model, name, in_channels_of(shape) or 1, info.num_classes,
                        {"stage": "iterative", "step": k, "policy": policy.to_dict()}, pruning=record,
                        input_shape=shape, model_args=args)
        _append_row(out / "steps.csv", row)  # after the checkpoint: a row always has its model
    steps = pd.read_csv(out / "steps.csv")
    _publish(out / f"step{settings.steps}" / "model.pt", out / "model.pt")
    summary = {"checkpoint": settings.checkpoint, "mode": "iterative", "mode_settings": asdict(settings),
               "config": asdict(cfg), "distill": distill, "test_acc": float(steps["test_score"].iloc[-1]),
               "best_val_acc": float(steps["val_score"].iloc[-1]), "channels": json.loads(steps["channels"].iloc[-1]),
               "steps": steps.to_dict("records")}
    write_json_atomic(out / "finetune.json", summary)
    return summary


def imp_stage(settings: IterativeSettings, splits: Splits, cfg: FinetuneConfig, out: str | Path,
              progress: bool = True, score: ScoreFn = accuracy, loss: LossFn | None = None) -> FinetuneRecord:
    """Unstructured iterative magnitude pruning: each round prunes a share of the remaining weights
    (``imp_schedule``), rewinds the survivors to ``settings.rewind_from`` (else to the checkpoint's
    own weights) and retrains ``epochs_per_step`` epochs with the mask held; resumable."""
    out = Path(out)
    model, info, shape, name, args = _dense(settings.checkpoint, "IMP")
    early = load_model(settings.rewind_from, name, args or None)[0] if settings.rewind_from else copy.deepcopy(model)
    early_state = copy.deepcopy(early.state_dict())
    schedule = imp_schedule(settings.sparsity, settings.rounds)
    done = settings.claim(out)
    masks = {n: torch.ones_like(w, dtype=torch.bool) for n, w in prunable_weights(model).items()}
    if done:
        masks = load_masks(out / "masks" / f"round{done}.pt")
        model = load_model(out / f"round{done}" / "model.pt")[0]
        tqdm.write(f"resuming {out}: {done} of {settings.rounds} rounds done")
    round_cfg = replace(cfg, epochs=settings.epochs_per_step)
    for r in range(done + 1, settings.rounds + 1):
        start = time.perf_counter()
        masks = magnitude_masks(prunable_weights(model), masks, schedule[r - 1], settings.scope)
        save_masks(out / "masks" / f"round{r}.pt", masks)
        model = rewind_weights(model, early_state, masks)
        if round_cfg.epochs > 0:
            hook = FixedMasks(prunable_weights(model), masks)
            model = finetune(model, splits, round_cfg, None, [hook], progress=progress, score=score, loss=loss).model
            hook.on_step(0)  # the best epoch's weights, masked again
        model = model.cpu().eval()
        row = {"round": r, "target_sparsity": round(schedule[r - 1], 6), "mask_sparsity": round(mask_sparsity(masks), 6),
               "val_score": evaluate(model, splits.val(limit=cfg.val_size), score),
               "test_score": evaluate(model, splits.test(), score), "seconds": round(time.perf_counter() - start, 1)}
        save_checkpoint(out / f"round{r}" / "model.pt", model, name, in_channels_of(shape) or 1, info.num_classes,
                        {"stage": "imp", "round": r}, input_shape=shape, model_args=args)
        _append_row(out / "rounds.csv", row)
    rounds = pd.read_csv(out / "rounds.csv")
    _publish(out / f"round{settings.rounds}" / "model.pt", out / "model.pt")
    summary = {"checkpoint": settings.checkpoint, "mode": "imp", "mode_settings": asdict(settings),
               "config": asdict(cfg), "test_acc": float(rounds["test_score"].iloc[-1]),
               "best_val_acc": float(rounds["val_score"].iloc[-1]), "sparsity": sparsity_report(model),
               "rounds": rounds.to_dict("records")}
    write_json_atomic(out / "finetune.json", summary)
    return summary


def save_masks(path: Path, masks: dict[str, torch.Tensor]) -> None:
    """One round's masks: a plain dict of boolean tensors (``weights_only`` loadable), atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        torch.save({n: m.clone() for n, m in masks.items()}, tmp)


def load_masks(path: Path) -> dict[str, torch.Tensor]:
    """Masks written by :func:`save_masks`."""
    data = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(data, dict) or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise ConfigError(f"{path} is not a masks file written by autoprune")
    return {n: m.bool() for n, m in data.items()}
