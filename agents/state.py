"""What a searcher records in the run folder's ``agent/`` to resume exactly: one reader with the
one-line errors every searcher gives, the ``(widths kept, reward)`` rows evolution, REINFORCE and
Thompson sampling record (a failed candidate's reward, NaN, stored as null), and the episode log
(one such row per line) the last two replay."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from autoprune.atomic import open_append, write_text_atomic
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


def replay_log(state_dir: Path | None, name: str, searcher: str, start: int) -> list[Scored]:
    """The first ``start`` episodes of the log ``name`` in ``state_dir``, the file cut back to them
    (``start`` 0: a fresh search, any old log removed)."""
    if start == 0:
        if state_dir is not None and (state_dir / name).is_file():
            (state_dir / name).unlink()
        return []

    def parse(path: Path) -> tuple[tuple[list[str], list[Scored]], int]:
        lines = path.read_text().splitlines()
        return (lines[:start], [scored_from(json.loads(line)) for line in lines[:start]]), len(lines)

    kept_lines, episodes = read_state(state_dir, name, searcher, start, parse)
    write_text_atomic(state_dir / name, "".join(line + "\n" for line in kept_lines))
    return episodes


def append_log(state_dir: Path, name: str, kept: dict[str, int], reward: float) -> None:
    """One episode appended to the log ``name``."""
    state_dir.mkdir(parents=True, exist_ok=True)
    with open_append(state_dir / name) as f:
        f.write(json.dumps(scored_row(kept, reward)) + "\n")
