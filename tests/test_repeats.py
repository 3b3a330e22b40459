"""The noise rule repeated queries follow (re-queries and refinement): one matching repeat is not
proof of a deterministic score; five are."""

import json
import math

import pandas as pd
import pytest

from autoprune.analysis.architecture import architecture_key
from autoprune.pruning.widths import WidthChoices
from autoprune.repeats import DETERMINISTIC_AFTER, pooled_noise
from autoprune.search.refine import final_candidate, next_query


def test_one_matching_repeat_leaves_the_noise_unknown_five_make_it_zero():
    assert pooled_noise([[0.5], [0.7]]) is None  # nothing repeated
    assert pooled_noise([[0.5, 0.5], [0.7]]) is None  # one match: a three-run table does that by chance
    assert pooled_noise([[0.5, 0.5, 0.5], [0.7, 0.7]]) is None  # three: 4 % of the time on such a table
    assert pooled_noise([[0.5, 0.5, 0.5, 0.5], [0.7, 0.7, 0.7]]) == 0.0  # five repeated queries, all matching
    assert DETERMINISTIC_AFTER == 5


def test_the_noise_is_the_pooled_spread_of_repeated_queries():
    sd = pooled_noise([[1.0, 3.0], [5.0, 5.0, 8.0], [9.0]])
    # squares: (1-2)^2 + (3-2)^2 = 2, and 1 + 1 + 4 = 6; degrees of freedom 1 + 2
    assert sd == pytest.approx(math.sqrt(8 / 3))


def _history(rows):
    return pd.DataFrame([{"episode": i, "kept": json.dumps(k), "score": s, "feasible": True, "latency_ms": None,
                          "ratios": json.dumps({"g": 1 - k["g"] / 32}), "cost": k["g"], "flops": k["g"], "params": 1}
                         for i, (k, s) in enumerate(rows)])


def test_refinement_asks_the_leaders_again_until_the_noise_is_known():
    """A matching first repeat: refinement asks the next leader again (not a neighbour, as it would
    for a deterministic score), and the returned candidate is still the best by mean."""
    a, b, c = {"g": 8}, {"g": 16}, {"g": 24}
    choices = WidthChoices({"g": (8, 16, 24, 32)})
    history = _history([(a, 0.70), (b, 0.80), (c, 0.75), (b, 0.80)])  # b asked twice, same value
    assert next_query(history, choices, lambda kept: True) == c  # the next leader, asked once
    history = _history([(a, 0.70), (b, 0.80), (c, 0.75), (b, 0.80), (c, 0.75), (a, 0.70), (b, 0.80),
                        (c, 0.75)])  # five matches
    assert next_query(history, choices, lambda kept: True) == {"g": 32}  # deterministic: b's unasked neighbour
    best = final_candidate(history)
    assert best.key == architecture_key(b) and best.score == pytest.approx(0.80)
