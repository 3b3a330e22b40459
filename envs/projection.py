"""Budget projection: a whole proposed architecture made feasible without favouring any position.

AMC's wall decides groups in network order and lets the last groups absorb any overspend, so
late layers end up cut hardest whatever the agent asks. The projection instead waits for the
whole proposal, then moves every group by the same share of its distance to its bound: towards
the narrowest allowed widths when the proposal is over budget, towards the widest when it leaves
budget unused (bisection on that one share). A greedy fill then spends what is left, one channel
step at a time, on the groups that lost most against the proposal.

Invariant (kept for any cost model, monotone or not): the result meets the budget. The blend at
share -1 is the narrowest architecture, which :meth:`BudgetWall.check_reachable` proved feasible;
bisection only ever keeps shares whose architecture fits, and the fill only takes steps that fit.
"""

from __future__ import annotations

from autoprune.envs.budget import BudgetWall


class BudgetProjection:
    """Maps proposed widths (channels kept per group) to feasible widths that use the budget."""

    def __init__(self, wall: BudgetWall, fill_target: float = 0.95, iters: int = 24) -> None:
        self.wall, self.fill_target, self.iters = wall, fill_target, iters
        self.names = [g.name for g in wall.groups]

    def blend(self, proposed: dict[str, int], share: float) -> dict[str, int]:
        """Every group moved ``share`` of the way to its narrowest (< 0) or widest (> 0) width."""
        out = {}
        for t, name in enumerate(self.names):
            bound = self.wall.min_keep[t] if share < 0 else self.wall.max_keep[t]
            target = proposed[name] + abs(share) * (bound - proposed[name])
            out[name] = self._snap(t, target)
        return out

    def _snap(self, t: int, width: float) -> int:
        """``width`` as the nearest width the space allows."""
        return self.wall.choices.snap(self.names[t], width)

    def project(self, proposed: dict[str, int], exact: bool = False) -> dict[str, int]:
        """The feasible architecture for ``proposed``: itself when it fits and uses the budget
        (with ``exact``, whenever it fits: one-shot baselines are scored as their rule made them)."""
        proposed = {n: self._snap(t, proposed[n]) for t, n in enumerate(self.names)}
        if self.wall.fits(proposed) and (exact or self._used(proposed) >= self.fill_target):
            return proposed
        lo, hi = -1.0, 1.0  # invariant: blend(lo) fits
        if self.wall.fits(self.blend(proposed, hi)):
            return self.blend(proposed, hi)
        for _ in range(self.iters):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if self.wall.fits(self.blend(proposed, mid)) else (lo, mid)
        return self.fill(self.blend(proposed, lo), proposed)

    def fill(self, kept: dict[str, int], proposed: dict[str, int]) -> dict[str, int]:
        """Add channel steps while any fits: first to the groups furthest below their proposal,
        then to the most pruned ones (never by position)."""
        kept = dict(kept)
        open_groups = [t for t, n in enumerate(self.names) if kept[n] < self.wall.max_keep[t]]
        while open_groups:  # a group whose next step does not fit is closed
            open_groups.sort(key=lambda t: (kept[self.names[t]] / max(proposed[self.names[t]], 1),
                                            kept[self.names[t]] / self.wall.groups[t].channels, t))
            t, name = open_groups[0], self.names[open_groups[0]]
            trial = {**kept, name: self.wall.choices.wider(name, kept[name])}
            if self.wall.fits(trial):
                kept = trial
            if not self.wall.fits(trial) or kept[name] >= self.wall.max_keep[t]:
                open_groups.pop(0)
        return kept

    def _used(self, kept: dict[str, int]) -> float:
        return self.wall.cost_of(kept) / self.wall.budget.value
