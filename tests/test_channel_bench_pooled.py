"""Pooling the seeds of several Channel-Bench-Macro benchmark folders: the paired comparison with
random search over every seed, and no seed counted twice."""

import channel_bench_pooled  # benchmarks/channel_bench_pooled.py (pytest's pythonpath)
import numpy as np
import pandas as pd
import pytest


def _folder(path, seeds, lead):
    """A benchmark folder whose searcher is ``lead`` point better than random search at 200 queries,
    seed by seed (random search's regret varying with the seed)."""
    path.mkdir()
    rows = [{"space": "resnet", "budget": 0.3, "method": method, "seed": s, "queries": q,
             "regret": 0.1 + 0.01 * (s % 7) - (lead[s % len(lead)] if method == "thompson" else 0.0)}
            for s in seeds for method in ("random", "thompson") for q in (195, 200)]
    pd.DataFrame(rows).to_csv(path / "curves.csv", index=False)
    return path


def test_the_pooled_comparison_pairs_every_seed_of_every_folder(tmp_path):
    lead = [0.05, 0.01, 0.09, 0.03]
    a = _folder(tmp_path / "a", range(0, 4), lead)
    b = _folder(tmp_path / "b", range(4, 8), lead)
    text = channel_bench_pooled.report([[a, b]])
    diffs = np.array(lead * 2)
    se = diffs.std(ddof=1) / np.sqrt(len(diffs))
    assert f"| thompson | 8 | {diffs.mean():+.3f} | {se:.3f} | yes |" in text
    assert "## resnet, 30%" in text


def test_a_seed_in_two_folders_is_refused(tmp_path):
    a = _folder(tmp_path / "a", range(0, 4), [0.05])
    b = _folder(tmp_path / "b", range(3, 6), [0.05])
    with pytest.raises(SystemExit, match="more than one"):
        channel_bench_pooled.report([[a, b]])


def test_a_folder_without_curves_is_named(tmp_path):
    a = _folder(tmp_path / "a", range(0, 4), [0.05])
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit, match="empty holds no curves.csv"):
        channel_bench_pooled.report([[a, tmp_path / "empty"]])
