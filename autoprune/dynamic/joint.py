"""Joint fine-tuning of a nested family with shared weights (universally slimmable networks).

Every step trains the widest variant on the labels (plus distillation from the dense teacher
when given), then the narrowest and ``sampled`` others drawn at random (the sandwich rule), each
distilled in place from the widest one's output; the gradients add up on the shared weights and
one optimiser step follows. BN statistics are recalibrated per width afterwards.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from tqdm import tqdm

from autoprune.devices import check_torch_device
from autoprune.dynamic.model import DynamicModel
from autoprune.finetune import FinetuneConfig
from autoprune.finetune.distill import distillation_loss
from autoprune.inputs import batch_len, call, to_device
from autoprune.outputs import scored_output
from autoprune.progress import bar_disabled
from autoprune.training import cosine_lr, create_optimizer, evaluate


@dataclass
class JointResult:
    """Per epoch: the loss of the widest variant and every variant's validation score."""

    history: list[dict[str, float]] = field(default_factory=list)


def joint_finetune(model: DynamicModel, train_batches: Callable[[int], Iterable], val_batches: Iterable,
                   bn_batches: Iterable, cfg: FinetuneConfig, teacher: nn.Module | None = None,
                   sampled: int = 1, progress: bool = True) -> JointResult:
    """Fine-tune every variant of ``model`` at once (widths ordered widest first by parameters).

    ``train_batches(epoch)`` yields ``(x, y)``; ``bn_batches`` recalibrate BN per width after
    training (and ``val_batches`` score every width after each epoch, statistics recalibrated).
    """
    order = sorted(model.variants, key=lambda v: -sum(model.variants[v].values()))
    widest, narrowest, middle = order[0], order[-1], order[1:-1]
    device = torch.device(check_torch_device(cfg.device))
    model.to(device)
    loss_fn = distillation_loss(teacher.to(device), cfg.kd_alpha, cfg.kd_temperature) if teacher is not None else None
    opt = create_optimizer(model, cfg)
    rng = np.random.default_rng(cfg.seed)
    torch.manual_seed(cfg.seed)
    steps_per_epoch = len(list(train_batches(0)))
    total, step, result = cfg.epochs * steps_per_epoch, 0, JointResult()
    bn_batches, val_batches = list(bn_batches), list(val_batches)
    for epoch in range(cfg.epochs):
        model.train()
        running, seen = 0.0, 0
        for x, y in tqdm(train_batches(epoch), total=steps_per_epoch, desc=f"joint epoch {epoch + 1}/{cfg.epochs}",
                         disable=bar_disabled(progress), leave=False):
            for group in opt.param_groups:
                group["lr"] = cosine_lr(step, total, cfg.lr)
            x, y = to_device(x, device), to_device(y, device)
            opt.zero_grad(set_to_none=True)
            model.set_variant(widest, statistics=False)
            out = call(model, x)
            logits = scored_output(out)
            loss = loss_fn(out, y, x) if loss_fn else F.cross_entropy(logits, y)
            loss.backward()
            soft = F.softmax(logits.detach(), dim=1)  # in-place distillation target
            picks = list(rng.choice(middle, size=min(sampled, len(middle)), replace=False)) if middle else []
            for label in [narrowest, *picks] if narrowest != widest else []:
                model.set_variant(label, statistics=False)
                F.kl_div(F.log_softmax(scored_output(call(model, x)), dim=1), soft, reduction="batchmean").backward()
            opt.step()
            step += 1
            running += loss.item() * batch_len(x)
            seen += batch_len(x)
        model.recalibrate(bn_batches, len(bn_batches))
        record: dict[str, float] = {"epoch": epoch + 1, "loss": running / max(seen, 1)}
        for label in order:
            record[f"val_{label}"] = evaluate(model.set_variant(label).eval(), val_batches)
        result.history.append(record)
    model.eval()
    return result
