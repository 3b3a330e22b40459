"""Polynomial-decay pruning schedule (Zhu & Gupta 2017; TF-MOT's ``PolynomialDecay``)."""

from __future__ import annotations

from dataclasses import dataclass

from autoprune.errors import ConfigError


@dataclass(frozen=True)
class PolynomialDecay:
    """Target value ``s(t) = final + (initial - final) * (1 - (t - begin) / (end - begin)) ** power``.

    Before ``begin_step`` nothing is pruned yet (the schedule is inactive); from ``end_step`` on the
    value stays ``final``. Masks are updated only every ``frequency`` steps, as in TF-MOT.
    """

    initial: float
    final: float
    begin_step: int
    end_step: int
    power: float = 3.0
    frequency: int = 100

    def __post_init__(self) -> None:
        if not 0.0 <= self.initial <= self.final < 1.0:
            raise ConfigError(f"need 0 <= initial <= final < 1, got {self.initial} and {self.final}")
        if not 0 <= self.begin_step < self.end_step:
            raise ConfigError(f"need 0 <= begin step < end step, got {self.begin_step} and {self.end_step}")
        if self.frequency < 1 or self.power <= 0:
            raise ConfigError(f"frequency must be >= 1 and power > 0, got {self.frequency} and {self.power}")

    def value(self, step: int) -> float:
        """The target at ``step`` (0 before ``begin_step``)."""
        if step < self.begin_step:
            return 0.0
        progress = min(1.0, (step - self.begin_step) / (self.end_step - self.begin_step))
        return self.final + (self.initial - self.final) * (1.0 - progress) ** self.power

    def should_update(self, step: int) -> bool:
        """Whether masks are recomputed at ``step`` (every ``frequency`` steps in range, and at the end)."""
        in_range = self.begin_step <= step <= self.end_step
        return in_range and ((step - self.begin_step) % self.frequency == 0 or step == self.end_step)

    def done(self, step: int) -> bool:
        """Whether the final value has been reached (masks no longer change)."""
        return step >= self.end_step
