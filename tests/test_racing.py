"""The re-query rule the searchers share: the best first (is the score noisy?), then the least-asked
of the leaders, never again once the score is shown deterministic."""

from autoprune.agents.racing import leaders, requery

A, B, C, D = {"g": 8}, {"g": 16}, {"g": 24}, {"g": 32}


def test_the_best_first_then_the_least_asked_of_the_leaders():
    assert requery(leaders([(A, 0.70), (B, 0.90), (C, 0.80)]), top=3) == B  # nothing repeated: the best
    noisy = [(A, 0.70), (A, 0.74), (B, 0.90), (B, 0.85), (C, 0.80), (D, 0.60)]
    assert requery(leaders(noisy), top=3) == C  # B, C, A lead; C is the least asked
    assert requery(leaders(noisy), top=1) == B  # only the best
    assert requery(leaders(noisy + [(C, 0.82)]), top=3) == B  # ties: the better mean


def test_a_deterministic_score_is_never_asked_again():
    matching = [(A, 0.70), (A, 0.70), (A, 0.70), (B, 0.90), (B, 0.90)]  # three repeats, all matching
    assert requery(leaders(matching), top=3) == B  # not proof yet: a three-run table does that 4 % of the time
    assert requery(leaders(matching + [(B, 0.90), (A, 0.70)]), top=3) is None  # five: deterministic
