"""Iterative pruning: reach a policy in steps, each followed by fine-tuning, and iterative magnitude
pruning (IMP) for lottery tickets (Frankle & Carbin 2019; with rewinding, Frankle et al. 2020).

Structured steps remove channels from the *current* (already fine-tuned) model, ranked by the
importance criterion on its current weights; the pruning record is kept in the dense model's
channel indices, so every intermediate model reloads like any pruned checkpoint. Unstructured IMP
keeps one boolean mask per Conv2d/Linear weight; each round prunes a share of the remaining
weights by magnitude and rewinds the survivors to early weights.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import torch
from torch import nn

from autoprune.analysis import analyse_model
from autoprune.errors import ConfigError
from autoprune.pruning.importance import rank_channels
from autoprune.pruning.physical import prune_physically
from autoprune.pruning.record import PruningRecord

SCHEDULES = ("geometric", "linear")


def channel_schedule(dense: Mapping[str, int], final: Mapping[str, int], steps: int,
                     kind: str = "geometric") -> list[dict[str, int]]:
    """Channels per group after each of ``steps`` steps, ending exactly at ``final``.

    ``geometric`` removes the same share of the remaining channels each step (the cut per step
    shrinks, as in AGP-style schedules); ``linear`` removes the same number each step.
    """
    if kind not in SCHEDULES:
        raise ConfigError(f"--schedule must be one of {', '.join(SCHEDULES)}, got {kind!r}")
    if steps < 1:
        raise ConfigError(f"--steps must be >= 1, got {steps}")
    plan, previous = [], dict(dense)
    for k in range(1, steps + 1):
        step = {}
        for name, c in dense.items():
            target = final.get(name, c)
            value = c * (target / c) ** (k / steps) if kind == "geometric" else c - (c - target) * k / steps
            step[name] = target if k == steps else int(min(previous[name], max(target, round(value))))
        plan.append(step)
        previous = step
    return plan


def prune_further(model: nn.Module, example_input: torch.Tensor, record: PruningRecord,
                  target: Mapping[str, int], importance: str = "l1",
                  batches: Iterable[tuple[torch.Tensor, torch.Tensor]] | None = None) -> tuple[nn.Module, PruningRecord]:
    """``model`` (the dense model pruned as ``record`` says) cut to ``target`` channels per group.

    Channels are ranked on ``model``'s current weights; the new record adds the removed ones in the
    dense model's indices (Torch-Pruning keeps the surviving channels in their order).
    """
    analysis = analyse_model(model, example_input, exclude=record.exclude)
    ranking = rank_channels(analysis, importance, batches)
    removed = {name: list(gone) for name, gone in record.removed.items()}
    kept_now = {}
    for g in analysis.groups:
        if g.name not in record.channels:
            raise ConfigError(f"group {g.name!r} of the current model is not in its pruning record; "
                              f"start from a checkpoint written by autoprune")
        survivors = sorted(set(range(record.channels[g.name])) - set(removed.get(g.name, [])))
        if len(survivors) != g.channels:
            raise ConfigError(f"group {g.name!r} has {g.channels} channels but its record keeps {len(survivors)}")
        want = min(int(target.get(g.name, g.channels)), g.channels)
        local = [int(i) for i in ranking[g.name][:g.channels - want]]
        removed[g.name] = sorted(removed.get(g.name, []) + [survivors[i] for i in local])
        kept_now[g.name] = want
    pruned = prune_physically(analysis, ranking, kept_now)
    return pruned, PruningRecord(dict(record.channels), removed, list(record.exclude))


def dense_record(analysis_groups: Iterable, exclude: list[str]) -> PruningRecord:
    """The record of a model nothing was removed from yet."""
    groups = list(analysis_groups)
    return PruningRecord({g.name: g.channels for g in groups}, {g.name: [] for g in groups}, list(exclude))


# -- unstructured IMP -------------------------------------------------------------------------

def imp_schedule(final_sparsity: float, rounds: int) -> list[float]:
    """Sparsity after each round: every round removes the same share of the remaining weights."""
    if not 0.0 < final_sparsity < 1.0:
        raise ConfigError(f"--sparsity must be in (0, 1), got {final_sparsity}")
    if rounds < 1:
        raise ConfigError(f"--rounds must be >= 1, got {rounds}")
    return [1.0 - (1.0 - final_sparsity) ** (r / rounds) for r in range(1, rounds + 1)]


def prunable_weights(model: nn.Module, exclude: Iterable[str] = ()) -> dict[str, nn.Parameter]:
    """The Conv2d/Linear weights IMP prunes, by ``module.weight`` name."""
    skip = set(exclude)
    return {f"{n}.weight": m.weight for n, m in model.named_modules()
            if isinstance(m, (nn.Conv2d, nn.Linear)) and n not in skip}


@torch.no_grad()
def magnitude_masks(weights: Mapping[str, torch.Tensor], masks: Mapping[str, torch.Tensor], sparsity: float,
                    scope: str = "layer") -> dict[str, torch.Tensor]:
    """Masks keeping the largest-magnitude weights so that ``sparsity`` of them are zero; weights
    already masked stay masked (IMP prunes the remaining weights)."""
    if scope not in ("layer", "global"):
        raise ConfigError(f"sparsity scope must be layer or global, got {scope!r}")
    scores = {n: torch.where(masks[n], w.detach().abs(), torch.full_like(w, -1.0)) for n, w in weights.items()}
    if scope == "global":
        flat = torch.cat([s.flatten() for s in scores.values()])
        n_zero = int(math.floor(sparsity * flat.numel()))
        order = torch.argsort(flat, stable=True)
        keep = torch.ones_like(flat, dtype=torch.bool)
        keep[order[:n_zero]] = False
        out, start = {}, 0
        for n, s in scores.items():
            out[n] = keep[start:start + s.numel()].view_as(s)
            start += s.numel()
        return out
    out = {}
    for n, s in scores.items():
        flat = s.flatten()
        keep = torch.ones_like(flat, dtype=torch.bool)
        keep[torch.argsort(flat, stable=True)[:int(math.floor(sparsity * flat.numel()))]] = False
        out[n] = keep.view_as(s)
    return out


class FixedMasks:
    """Step hook keeping masked weights at zero during (re)training."""

    def __init__(self, weights: Mapping[str, torch.Tensor], masks: Mapping[str, torch.Tensor]) -> None:
        self.weights, self.masks = weights, masks

    @torch.no_grad()
    def on_step(self, step: int) -> None:
        for n, w in self.weights.items():
            w.mul_(self.masks[n].to(w.device, w.dtype))

    def done(self, step: int) -> bool:
        return True


@torch.no_grad()
def rewind_weights(model: nn.Module, early_state: Mapping[str, torch.Tensor],
                   masks: Mapping[str, torch.Tensor]) -> nn.Module:
    """Every parameter and buffer back to ``early_state`` (the early checkpoint), masked weights zero."""
    model.load_state_dict(early_state)
    weights = prunable_weights(model)
    for n, mask in masks.items():
        weights[n].mul_(mask.to(weights[n].dtype))
    return model


def mask_sparsity(masks: Mapping[str, torch.Tensor]) -> float:
    """Share of masked (zero) entries over all masks."""
    total = sum(m.numel() for m in masks.values())
    return 1.0 - sum(int(m.sum()) for m in masks.values()) / max(total, 1)
