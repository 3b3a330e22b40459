"""What a searcher records in the run folder's ``agent/`` to resume exactly: one reader with the
one-line errors every searcher gives, and the ``(widths kept, reward)`` rows evolution and
REINFORCE record (a failed candidate's reward, NaN, stored as null)."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from autoprune.errors import ConfigError

T = TypeVar("T")
Scored = tuple[dict[str, int], float]  # widths kept, reward


def read_state(state_dir: Path | None, name: str, searcher: str, start: int,
               parse: Callable[[Path], tuple[T, int]]) -> T:
    """``parse(path)`` of the file ``name`` in ``state_dir``: the state and the episodes it records
    (a state short of the ``start`` episodes in the history, or unreadable, is refused in one line)."""
    if state_dir is None:
        raise ConfigError(f"resuming {searcher} needs the run folder's agent state; pass state_dir")
    path = state_dir / name
    try:
        state, held = parse(path)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ConfigError(f"cannot resume {searcher} from {path} ({type(exc).__name__}); delete the run folder's "
                          f"agent/ to restart the search") from exc
    if held < start:
        raise ConfigError(f"{path} records episodes up to {held} but the history {start}; "
                          f"delete the run folder's agent/ to restart the search")
    return state


def scored_row(kept: dict[str, int], reward: float) -> list[Any]:
    """A ``(widths, reward)`` as JSON data."""
    return [kept, reward if math.isfinite(reward) else None]


def scored_from(row: list[Any]) -> Scored:
    """A ``(widths, reward)`` from :func:`scored_row`'s data."""
    kept, reward = row
    return {str(k): int(v) for k, v in kept.items()}, float("nan") if reward is None else float(reward)
