"""Training, evaluation and batch-norm recalibration loops (CPU-friendly, tqdm progress)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
from torch import nn
from tqdm.auto import tqdm

from autoprune.devices import check_torch_device
from autoprune.errors import ConfigError
from autoprune.progress import bar_disabled
from autoprune.scoring import ScoreFn, accuracy, model_device, to_device

Batches = Iterable[tuple[torch.Tensor, torch.Tensor]]


def evaluate(model: nn.Module, batches: Batches, score: ScoreFn = accuracy) -> float:
    """``score`` (top-1 accuracy by default) of ``model`` over ``batches``, in eval mode."""
    return score(model, batches)


@torch.no_grad()
def recalibrate_bn(model: nn.Module, batches: Batches, max_batches: int = 10) -> None:
    """Re-estimate BN running statistics on a few training batches (EagleEye, Li et al. 2020).

    A pruned candidate's BN statistics no longer match its features; without this step its
    accuracy says little about how it will do after fine-tuning.
    """
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return
    saved = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average over the batches seen
    was_training = model.training
    model.train()
    device = model_device(model)
    for i, (x, _) in enumerate(batches):
        if i >= max_batches:
            break
        model(x.to(device))
    model.train(was_training)
    for m, mom in zip(bns, saved):
        m.momentum = mom


@dataclass
class TrainConfig:
    """Hyper-parameters of a supervised training or fine-tuning run."""

    epochs: int = 10
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    optimizer: str = "sgd"  # or "adamw"
    batch_size: int = 128
    augment: tuple[str, ...] | bool | None = None  # None: the data's default (see autoprune.data)
    seed: int = 0
    device: str | None = None  # torch device to train on (None: cuda when available, else cpu)


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """SGD with Nesterov momentum or AdamW, weight decay on weights only (not BN/bias)."""
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=True)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr)
    raise ConfigError(f"unknown optimizer {cfg.optimizer!r}; use sgd or adamw")


def cosine_lr(step: int, total: int, base: float) -> float:
    """Cosine-annealed learning rate from ``base`` to 0 over ``total`` steps."""
    return 0.5 * base * (1 + math.cos(math.pi * min(step, total) / max(total, 1)))


def train(model: nn.Module, make_batches: Callable[[int], Batches], cfg: TrainConfig,
          evaluate_fn: Callable[[nn.Module], float] | None = None,
          loss_fn: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
          on_step: Callable[[int], None] | None = None, progress: bool = True) -> list[dict]:
    """Train ``model`` with a cosine schedule; returns one record per epoch.

    Args:
        make_batches: epoch -> iterable of (x, y) batches.
        evaluate_fn: model -> validation accuracy, run after every epoch.
        loss_fn: (logits, y, x) -> loss; cross-entropy when omitted (distillation passes its own).
        on_step: called with the global step after every optimiser step (gradual pruning hooks in).
    """
    torch.manual_seed(cfg.seed)
    opt = make_optimizer(model, cfg)
    steps_per_epoch = len(make_batches(0))  # type: ignore[arg-type]
    total, step, history = cfg.epochs * steps_per_epoch, 0, []
    ce = nn.CrossEntropyLoss()
    device = torch.device(check_torch_device(cfg.device))
    model.to(device)
    for epoch in range(cfg.epochs):
        model.train()
        running, seen = 0.0, 0
        bar = tqdm(make_batches(epoch), total=steps_per_epoch, desc=f"epoch {epoch + 1}/{cfg.epochs}",
                   disable=bar_disabled(progress), leave=False)
        for x, y in bar:
            for group in opt.param_groups:
                group["lr"] = cosine_lr(step, total, cfg.lr)
            x, y = x.to(device), to_device(y, device)
            logits = model(x)
            loss = loss_fn(logits, y, x) if loss_fn else ce(logits, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            if on_step:
                on_step(step)
            running += loss.item() * len(x)
            seen += len(x)
            bar.set_postfix(loss=f"{running / seen:.3f}")
        record = {"epoch": epoch + 1, "loss": running / max(seen, 1)}
        if evaluate_fn:
            record["val_acc"] = evaluate_fn(model)
        history.append(record)
        if progress:
            tqdm.write(" ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in record.items()))
    return history
