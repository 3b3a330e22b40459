"""Refinement: after the search, the best architectures and their one-step neighbours are scored
(again), the most promising first, within the same query budget.

A search's best single score is partly luck when scores are noisy (the winner's curse), and the
best architecture is often one step from the best one found (one group one allowed width
narrower or wider). Each refinement query goes to the highest upper confidence bound: a known
architecture's mean plus one noise standard deviation over the square root of its queries, or an
unqueried neighbour of one of the best five at its parent's mean plus one deviation. The noise
is the pooled spread of repeated queries (until it is known, refinement asks the leaders again,
the best first); a score without noise (five repeated queries that all gave their first value)
is not asked again, so refinement is then a greedy walk through the best candidates' neighbours
(NetAdapt's local steps).

The next query is a function of the history alone: an interrupted refinement resumes exactly.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import pandas as pd

from autoprune.analysis.architecture import architecture_key
from autoprune.envs import EpisodeResult
from autoprune.pruning.widths import WidthChoices
from autoprune.repeats import pooled_noise
from autoprune.search.history import (
    ArchStats,
    Candidate,
    arch_stats,
    first_scored,
)
from autoprune.search.incumbent import Incumbent
from autoprune.search.recorder import EpisodeRecorder

PARENTS = 5  # the best architectures whose neighbours are candidates (5 beat 3 on the MobileNet table at 50 %)
Arch = dict[str, int]


def noise_sd(stats: Mapping[str, ArchStats]) -> float | None:
    """Pooled standard deviation of repeated scores of one architecture (0: a deterministic score;
    None: not known yet, see :func:`~autoprune.repeats.pooled_noise`)."""
    return pooled_noise(s.scores for s in stats.values())


def neighbours(kept: Arch, choices: WidthChoices, fits: Callable[[Arch], bool]) -> list[Arch]:
    """Architectures one allowed width narrower or wider in one group, within the budget."""
    out = []
    for name, width in kept.items():
        for other in (choices.narrower(name, width), choices.wider(name, width)):
            if other != width:
                candidate = {**kept, name: other}
                if fits(candidate):
                    out.append(candidate)
    return out


def next_query(history: pd.DataFrame, choices: WidthChoices, fits: Callable[[Arch], bool]) -> Arch | None:
    """The architecture to score next (None: nothing scored yet)."""
    stats = arch_stats(history)
    if not stats:
        return None
    ranked = sorted(stats.values(), key=lambda s: (-s.mean, s.first))
    sd = noise_sd(stats)
    if sd is None:  # is the score noisy? ask a leader again to find out (the best first)
        return min(ranked[:PARENTS], key=lambda s: s.count).kept
    options: list[tuple[float, int, Arch]] = []
    if sd > 0:
        options += [(s.mean + sd / math.sqrt(s.count), -i, s.kept) for i, s in enumerate(ranked)]
    for i, parent in enumerate(ranked[:PARENTS]):
        for j, arch in enumerate(neighbours(parent.kept, choices, fits)):
            if architecture_key(arch) not in stats:
                options.append((parent.mean + sd, -(len(ranked) + 100 * i + j), arch))
    if not options:
        return ranked[0].kept
    return max(options, key=lambda o: (o[0], o[1]))[2]


def refine(recorder: EpisodeRecorder, play: Callable[[Arch], EpisodeResult],
           history: Callable[[], pd.DataFrame], choices: WidthChoices, fits: Callable[[Arch], bool],
           incumbent: Incumbent) -> None:
    """Play the refinement episodes until the recorder has them all (``play``: one architecture
    scored exactly), then make the :func:`final_candidate` the incumbent."""
    while not recorder.finished:
        kept = next_query(history(), choices, fits)
        if kept is None:
            break
        recorder(play(kept).tagged("refine"))
    best = final_candidate(history())
    if best is not None:
        incumbent.choose(best)


def final_candidate(history: pd.DataFrame) -> Candidate | None:
    """The candidate refinement ends with: the architecture with the best lower confidence bound
    (its mean minus one noise deviation over the square root of its queries; the best mean when
    scores are not noisy), at its first episode and its mean score."""
    stats = arch_stats(history)
    if not stats:
        return None
    sd = noise_sd(stats) or 0.0
    choice = max(stats, key=lambda k: (stats[k].mean - sd / math.sqrt(stats[k].count), -stats[k].first))
    return first_scored(history, choice, stats)
