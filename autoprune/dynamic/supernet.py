"""A once-for-all width supernet: one set of weights from which any architecture of the search
space is sliced and scored, a proxy that ranks where batch-norm recalibration alone cannot.

The dense model's channels are sorted by importance (:mod:`autoprune.dynamic.reorder`), so an
architecture is the leading channels of every group. Every training step follows the sandwich
rule with in-place distillation (Yu & Huang 2019; the CVPR 2021 lightweight-NAS track): the widest
architecture learns from the labels and the dense model (distillation), the narrowest and
``sampled`` architectures near the searched budgets learn from the widest one's output; all share
the weights. A candidate is then the supernet sliced to its widths, BN statistics recalibrated on
the search's fixed batches, scored on the fixed validation slice.

Training is checkpointed after every epoch (weights, optimiser state, the epoch) and resumes
exactly: the data order, the architectures sampled and the learning rate are functions of the
seed, the epoch and the step.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from tqdm.auto import tqdm

from autoprune.analysis.fingerprint import model_fingerprint
from autoprune.atomic import atomic_path, write_json_atomic
from autoprune.devices import check_torch_device
from autoprune.dynamic.model import DynamicModel
from autoprune.errors import ConfigError
from autoprune.finetune import FinetuneConfig
from autoprune.finetune.distill import distillation_loss
from autoprune.inputs import batch_len, call, to_device
from autoprune.progress import bar_disabled
from autoprune.pruning.widths import WidthChoices
from autoprune.scoring import ScoreFn, accuracy
from autoprune.training import check_loss, cosine_lr, create_optimizer, evaluate, recalibrate_bn

FORMAT, VERSION = "autoprune-supernet", 1
Arch = dict[str, int]


@dataclass(frozen=True)
class SupernetSettings:
    """How the supernet is trained (recorded with it; a cached supernet is reused only for the same).

    Attributes:
        epochs: passes over the training split.
        sampled: architectures per step besides the widest and the narrowest.
        budget_low, budget_high: sampled architectures are random proposals projected onto a budget
            drawn uniformly from this range (shares of the dense cost): the region a search visits.
        lr, batch_size, seed: the optimiser (SGD, cosine), batches and every random draw.
    """

    epochs: int = 2
    sampled: int = 2
    budget_low: float = 0.25
    budget_high: float = 0.75
    lr: float = 0.01
    batch_size: int = 128
    seed: int = 0

    def check(self) -> SupernetSettings:
        if self.epochs < 1 or self.sampled < 0 or self.batch_size < 1 or not self.lr > 0:
            raise ConfigError("the supernet needs --supernet-epochs >= 1, --supernet-sampled >= 0, a positive lr "
                              "and batch size")
        if not 0 < self.budget_low <= self.budget_high <= 1:
            raise ConfigError(f"the supernet's budget range must satisfy 0 < low <= high <= 1, got "
                              f"{self.budget_low}, {self.budget_high}")
        return self


def settings_key(model: nn.Module, settings: SupernetSettings, choices: WidthChoices) -> str:
    """What a cached supernet must match: the model's structure, the settings and the space."""
    text = json.dumps({"fingerprint": model_fingerprint(model), "settings": asdict(settings),
                       "widths": choices.to_dict()}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def train_supernet(supernet: DynamicModel, widest: Arch, narrowest: Arch, sample: Callable[[np.random.Generator], Arch],
                   train_batches: Callable[[int], Iterable], settings: SupernetSettings, teacher: nn.Module,
                   folder: str | Path, key: str, device: str | None = None,
                   progress: bool = True) -> list[dict[str, float]]:
    """Train (or go on training) ``supernet`` into ``folder``; returns one record per epoch.

    ``sample(rng)`` draws an architecture near the searched budgets; ``train_batches(epoch)``
    yields the epoch's ``(x, y)`` batches in a seeded order.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    dev = torch.device(check_torch_device(device))
    supernet.to(dev)
    teacher = teacher.to(dev).eval()
    cfg = FinetuneConfig(epochs=settings.epochs, lr=settings.lr, batch_size=settings.batch_size, seed=settings.seed)
    opt = create_optimizer(supernet, cfg)
    done, history = _resume(supernet, opt, folder, key)
    kd = distillation_loss(teacher, cfg.kd_alpha, cfg.kd_temperature)
    steps = len(list(train_batches(0)))
    for epoch in range(done, settings.epochs):
        rng = np.random.default_rng([settings.seed, epoch])
        torch.manual_seed(settings.seed * 1000 + epoch)
        supernet.train()
        running, seen = 0.0, 0
        for i, (x, y) in enumerate(tqdm(train_batches(epoch), total=steps, leave=False, disable=bar_disabled(progress),
                                        desc=f"supernet epoch {epoch + 1}/{settings.epochs}")):
            for group in opt.param_groups:
                group["lr"] = cosine_lr(epoch * steps + i, settings.epochs * steps, settings.lr)
            x, y = to_device(x, dev), to_device(y, dev)
            opt.zero_grad(set_to_none=True)
            logits = call(supernet.set_widths(widest), x)
            loss = kd(logits, y, x)
            check_loss(loss, f"supernet epoch {epoch + 1}, step {i + 1}")
            loss.backward()
            soft = F.softmax(logits.detach(), dim=1)  # in-place distillation target
            for arch in [narrowest, *(sample(rng) for _ in range(settings.sampled))]:
                out = call(supernet.set_widths(arch), x)
                F.kl_div(F.log_softmax(out, dim=1), soft, reduction="batchmean").backward()
            opt.step()
            running += loss.item() * batch_len(x)
            seen += batch_len(x)
        history.append({"epoch": epoch + 1, "loss_widest": running / max(seen, 1)})
        _save(supernet, opt, folder, key, settings, history)
    supernet.set_widths(widest).eval()
    return history


def _save(supernet: DynamicModel, opt: torch.optim.Optimizer, folder: Path, key: str, settings: SupernetSettings,
          history: list[dict[str, float]]) -> None:
    payload = {"format": FORMAT, "version": VERSION, "key": key, "epoch": len(history), "history": history,
               "settings": asdict(settings), "state_dict": {k: v.detach().cpu().clone()
                                                            for k, v in supernet.net.state_dict().items()},
               "optimizer": opt.state_dict()}
    with atomic_path(folder / "supernet.pt") as tmp:
        torch.save(payload, tmp)
    write_json_atomic(folder / "supernet.json", {"key": key, "epochs_done": len(history), "settings": asdict(settings),
                                                 "history": history})


def _resume(supernet: DynamicModel, opt: torch.optim.Optimizer, folder: Path, key: str
            ) -> tuple[int, list[dict[str, float]]]:
    """The epochs a checkpoint in ``folder`` holds (loaded into ``supernet`` and ``opt``), or 0."""
    payload = read_supernet(folder)
    if payload is None:
        return 0, []
    if payload["key"] != key:
        raise ConfigError(f"{folder} holds a supernet of another model, search space or settings; pass another "
                          f"--supernet folder or delete this one")
    supernet.net.load_state_dict(payload["state_dict"])
    opt.load_state_dict(payload["optimizer"])
    return int(payload["epoch"]), list(payload["history"])


def read_supernet(folder: str | Path) -> dict[str, Any] | None:
    """A supernet checkpoint's payload (no code unpickled), None when ``folder`` holds none."""
    path = Path(folder) / "supernet.pt"
    if not path.is_file():
        return None
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ConfigError(f"cannot read {path} ({type(exc).__name__}); delete it to train the supernet again") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT or not isinstance(payload.get("state_dict"), dict):
        raise ConfigError(f"{path} is not an autoprune supernet; pass another --supernet folder")
    return payload


def load_supernet(folder: str | Path, supernet: DynamicModel) -> DynamicModel:
    """``supernet`` (the dense model's, reordered with the search's ranking) with the weights trained
    into ``folder``; a one-line error when there are none or they do not fit."""
    payload = read_supernet(folder)
    if payload is None:
        raise ConfigError(f"{folder} holds no supernet; train one with 'autoprune supernet' or search with "
                          f"--scorer supernet")
    try:
        supernet.net.load_state_dict(payload["state_dict"])
    except RuntimeError as exc:
        raise ConfigError(f"the supernet in {folder} was trained for another model ({str(exc).splitlines()[0][:120]})"
                          ) from None
    return supernet.eval()


class SupernetScorer:
    """``scorer(kept) -> score``: the supernet sliced to ``kept``, BN recalibrated on ``bn_data``,
    scored on ``val_data`` (the search's fixed slices)."""

    def __init__(self, supernet: DynamicModel, bn_data: list, val_data: list, bn_batches: int,
                 score: ScoreFn = accuracy) -> None:
        self.supernet, self.bn_data, self.val_data = supernet, bn_data, val_data
        self.bn_batches, self.score = bn_batches, score

    def __call__(self, kept: Mapping[str, int]) -> float:
        net = self.supernet.set_widths(kept)
        recalibrate_bn(net, self.bn_data, self.bn_batches)
        return evaluate(net.eval(), self.val_data, self.score)
