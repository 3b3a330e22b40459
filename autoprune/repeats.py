"""What repeated queries of one architecture say about the score's noise.

A score asked again for the same architecture either varies (noisy: a validation sample, a
table's training runs) or gives its first value again (deterministic). One matching repeat is not
proof: a score with few possible values matches by chance (a Channel-Bench-Macro query returns
one of three training runs, so two queries of one architecture agree about a third of the time).
The score counts as deterministic only after :data:`DETERMINISTIC_AFTER` repeated queries all gave
their architecture's first value; the chance that a three-run table does so is about 0.5 % (two
queries agree 34.5 % of the time there; with three repeats, 2 of 40 searches measured took the
table for deterministic and asked nothing again), and a deterministic score costs that many
re-queries once.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

DETERMINISTIC_AFTER = 5  # repeated queries, all matching, before a score counts as deterministic


def _same(scores: Sequence[float]) -> bool:
    return max(scores) - min(scores) <= 1e-12 * max(1.0, abs(scores[0]))


def pooled_noise(scores: Iterable[Sequence[float]]) -> float | None:
    """The noise standard deviation pooled over architectures asked more than once (``scores``: each
    architecture's scores): 0.0 once :data:`DETERMINISTIC_AFTER` repeated queries all gave their
    first value; None while it is not known (nothing repeated, or fewer matching repeats)."""
    repeated = [[float(s) for s in group] for group in scores if len(group) > 1]
    extra = sum(len(group) - 1 for group in repeated)  # the pooled variance's degrees of freedom
    if all(_same(group) for group in repeated):
        return 0.0 if extra >= DETERMINISTIC_AFTER else None
    squares = sum(sum((s - sum(group) / len(group)) ** 2 for s in group) for group in repeated)
    return math.sqrt(squares / extra)
