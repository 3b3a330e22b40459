"""The pruning-modes benchmark: every mode yields a row of the asked sparsity, and a rerun resumes
(finished rows are skipped, a missing one is redone)."""

import sys
from pathlib import Path

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import pruning_modes  # noqa: E402

ARGS = ["--models", "seed_mlp", "--seeds", "0", "--sparsities", "0.8", "--data", "synthetic", "--images", "128",
        "--dense-epochs", "1", "--epochs", "1", "--rounds", "2", "--rewind-steps", "1", "--search-episodes", "4"]


@pytest.mark.slow
def test_every_mode_gives_its_sparsity_and_a_rerun_redoes_only_what_is_missing(tmp_path, capsys):
    args = [*ARGS, "--out", str(tmp_path / "out"), "--work", str(tmp_path / "work")]
    pruning_modes.main(args)
    rows = pd.read_csv(tmp_path / "out" / "runs.csv")
    assert len(rows) == 2 + len(pruning_modes.MODES)  # the dense and continued references, every mode once
    sparse = rows[rows["mode"].isin(pruning_modes.UNSTRUCTURED)]
    assert (sparse["weight_share"] <= 0.2 + 0.01).all()  # 80 % of the Linear weights are zero
    structured = rows[rows["mode"].isin(pruning_modes.STRUCTURED)].dropna(subset=["test_acc"])
    assert (structured["weight_share"] <= 0.2 + 1e-9).all() and (structured["bitmask_bytes"] > 0).all()
    assert (rows[rows["mode"].isin(["dense", "continued"])]["weight_share"] == 1.0).all()
    capsys.readouterr()
    pruning_modes.main(args)
    assert "0 jobs" in capsys.readouterr().out and len(pd.read_csv(tmp_path / "out" / "runs.csv")) == len(rows)
    rows[rows["mode"] != "gradual"].to_csv(tmp_path / "out" / "runs.csv", index=False)  # as if stopped before it
    pruning_modes.main(args)
    again = pd.read_csv(tmp_path / "out" / "runs.csv")
    assert sorted(again["mode"]) == sorted(rows["mode"]) and "1 jobs" in capsys.readouterr().out
