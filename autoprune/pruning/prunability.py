"""Check, before any search time is spent, that every group really prunes as the analysis says.

Torch-Pruning infers couplings from the traced graph; a custom layer it does not understand (a
reshape of the channel axis, a hand-written op, a ``torch.chunk`` of the channels) can make it
remove other channels than asked, break the forward pass, or silently feed a consumer the wrong
channels. One trial cut of every group on a copy, compared with the same channels masked to zero
on the original (the reference), catches all three and names the group.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from autoprune.analysis.groups import ModelAnalysis
from autoprune.analysis.layers import out_width
from autoprune.errors import AnalysisError
from autoprune.inputs import call
from autoprune.outputs import output_tensors
from autoprune.pruning.masked import MaskedPruner
from autoprune.pruning.physical import prune_physically
from autoprune.pruning.ratios import group_kept


def check_prunable(analysis: ModelAnalysis) -> None:
    """Raise :class:`AnalysisError` naming the first group (and layer) that does not prune cleanly.

    Two cuts are tried: half of every group, and 30 % (a count that rarely divides evenly, which a
    reshape into heads of a fixed size cannot take)."""
    for ratio, patterns in ((0.5, PATTERNS), (0.3, ("shuffled",))):
        cut = {g.name: group_kept(g, ratio) for g in analysis.groups}
        if _problem(analysis, cut, patterns) is None:
            continue
        for g in analysis.groups:  # find the culprit: one group at a time
            problem = _problem(analysis, {g.name: cut[g.name]}, patterns)
            if problem:
                raise UnprunableGroup(g.name, problem)
        raise AnalysisError("pruning all groups together breaks the model although each group prunes "
                            "alone; exclude groups one by one (--exclude) to find the pair")


class UnprunableGroup(AnalysisError):
    """A group whose physical cut differs from its masked reference (``group``, ``problem``)."""

    def __init__(self, group: str, problem: str) -> None:
        super().__init__(f"group {group!r} cannot be pruned reliably: {problem}; exclude it (--exclude {group}) "
                         f"or replace the custom layer next to it")
        self.group, self.problem = group, problem


def keep_unprunable_whole(analysis: ModelAnalysis, reanalyse: Callable[[list[str]], ModelAnalysis],
                          limit: int = 64) -> tuple[ModelAnalysis, dict[str, str]]:
    """The analysis with every group that does not prune cleanly excluded (kept whole), and why.

    ``reanalyse(extra)`` analyses the model again with the modules ``extra`` excluded too. A group
    is excluded by its first producer; a group it couples to may then be rooted at another one and
    is checked again, up to ``limit`` groups.

    Raises:
        AnalysisError: when only a combination of groups breaks the model, or past ``limit``.
    """
    dropped: dict[str, str] = {}
    for _ in range(limit):
        try:
            check_prunable(analysis)
            analysis.kept_whole.update(dropped)
            return analysis, dropped
        except UnprunableGroup as bad:
            dropped[bad.group] = bad.problem
            try:
                analysis = reanalyse(list(dropped))
            except AnalysisError:
                first = next(iter(dropped))
                more = f" (and {len(dropped) - 1} more group(s))" if len(dropped) > 1 else ""
                raise AnalysisError(f"nothing prunes cleanly: group {first!r}: {dropped[first]}{more}; replace the "
                                    f"layer next to it or check the model") from None
    raise AnalysisError(f"over {limit} groups of this model do not prune cleanly; exclude the custom layers "
                        f"(--exclude) or check the model")


def pruning_problem(analysis: ModelAnalysis, kept: dict[str, int], ranking: dict[str, torch.Tensor]) -> str | None:
    """What differs when the groups are cut physically to ``kept`` (by ``ranking``) instead of masked:
    a kept count, a failing forward, a 0-sized parameter, any output's shape or values; None when nothing."""
    return _trial(analysis, kept, ranking)


PATTERNS = ("alternate", "leading", "shuffled")


def _problem(analysis: ModelAnalysis, kept: dict[str, int], patterns: tuple[str, ...] = PATTERNS) -> str | None:
    """What goes wrong when the groups in ``kept`` are cut to those counts (None: nothing).

    Three trial choices of channels: every other one (contiguous blocks can hide a reshaped channel
    axis), the leading block (an even spread can hide a chunked one) and a seeded shuffle (both can
    hide a reshape into heads that only holds when every head loses as many channels).
    """
    for pattern in patterns:
        problem = _trial(analysis, kept, _ranking(analysis, pattern))
        if problem:
            return problem
    return None


def _ranking(analysis: ModelAnalysis, pattern: str) -> dict[str, torch.Tensor]:
    """Each group's trial order; a group pruned in units (GroupNorm, grouped convolution) orders its units."""
    generator = torch.Generator().manual_seed(0)

    def order(n: int) -> torch.Tensor:
        if pattern == "leading":
            return torch.arange(n)
        if pattern == "shuffled":
            return torch.randperm(n, generator=generator)
        return torch.cat([torch.arange(0, n, 2), torch.arange(1, n, 2)])

    return {g.name: g.units()[order(g.channels // g.step)].reshape(-1) for g in analysis.groups}


def _trial(analysis: ModelAnalysis, kept: dict[str, int], ranking: dict[str, torch.Tensor]) -> str | None:
    try:
        model = prune_physically(analysis, ranking, kept)
    except Exception as exc:  # Torch-Pruning failing on an unknown op
        return f"Torch-Pruning failed ({type(exc).__name__}: {str(exc)[:120]})"
    expected: dict[str, int] = {}  # a layer whose output several groups share keeps their sum
    for g in analysis.groups:
        for name in g.producers:
            expected[name] = expected.get(name, 0) + kept.get(g.name, g.channels) * g.fold
    for name, want in expected.items():
        got = out_width(model.get_submodule(name))
        if got != want:
            return f"asked to keep {want} channels, layer {name!r} kept {got}"
    try:
        with torch.no_grad():
            out = call(model.eval(), analysis.example_input)
    except Exception as exc:  # noqa: BLE001 - whatever the pruned user model raises
        return f"the pruned model fails to run ({type(exc).__name__}: {str(exc)[:120]})"
    empty = next((n for n, p in model.named_parameters() if 0 in p.shape), None)
    if empty is not None:
        return f"parameter {empty!r} of the pruned model has a 0-sized dimension"
    try:
        reference = _masked_output(analysis, ranking, kept)
    except Exception as exc:  # noqa: BLE001 - a layer the masks cannot follow: the group is not checkable
        return f"the masked reference fails to run ({type(exc).__name__}: {str(exc)[:120]})"
    return _compare_outputs(out, reference)


def _compare_outputs(out: object, reference: object) -> str | None:
    """What differs between every output tensor of the pruned model and of the masked reference."""
    got, want = output_tensors(out), output_tensors(reference)
    if [p for p, _ in got] != [p for p, _ in want]:
        return f"the pruned model returns other outputs ({len(got)} tensors) than the dense one ({len(want)})"
    for (path, a), (_, b) in zip(got, want):
        name = f"output {path}" if path else "the output"
        if a.shape != b.shape:
            return (f"{name} has shape {list(a.shape)} after pruning, {list(b.shape)} before (a layer produces "
                    f"a model output, or a torch.split/chunk of the channels feeds other layers than pruned)")
        if a.is_floating_point() and b.is_floating_point():
            tolerance = 1e-4 * max(1.0, float(b.abs().max())) if b.numel() else 0.0
            if not torch.allclose(a, b, atol=tolerance, rtol=1e-3):
                return (f"{name} of the pruned model differs from the same channels masked to zero (a layer "
                        f"feeds its consumers other channels than Torch-Pruning removed, e.g. a torch.chunk or "
                        f"reshape of the channel axis)")
        elif not torch.equal(a, b):
            return f"{name} of the pruned model differs from the same channels masked to zero"
    return None


@torch.no_grad()
def _masked_output(analysis: ModelAnalysis, ranking: dict[str, torch.Tensor], kept: dict[str, int]) -> object:
    """The original model's output with the same channels zeroed at their producers (the reference)."""
    model = analysis.model
    was_training = model.training
    model.eval()
    try:
        with MaskedPruner(analysis, ranking).applied(kept):
            return call(model, analysis.example_input)
    finally:
        model.train(was_training)
