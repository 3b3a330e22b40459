"""Interruption, failing candidates, disk trouble: nothing finished is lost, every error is one line."""

import json
import math
import os
import signal
import subprocess
import sys
import time
from collections import namedtuple

import pandas as pd
import pytest

from autoprune.cli import common
from autoprune.cli.main import main
from autoprune.evaluation import CandidateEvaluator
from autoprune.search import SearchConfig, SearchRun, read_history

TINY = ["--model", "mlp", "--data", "synthetic", "--cost-model", "flops", "--budget", "40%",
        "--val-size", "64", "--bn-batches", "1"]


def test_kill_9_mid_search_then_resume_loses_no_episode(tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "autoprune.cli.main", "search", *TINY, "--agent", "amc-ddpg", "--preset", "quick",
           "--agent-param", "warmup_episodes=3", "--episodes", "500", "--out", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 180
    while time.time() < deadline and len(read_history(out / "history.csv")) < 12:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    before = read_history(out / "history.csv")
    n = len(before)
    assert 12 <= n < 500
    json.loads((out / "best_policy.json").read_text())  # never half-written
    json.loads((out / "agent" / "agent.json").read_text())
    resumed = subprocess.run([sys.executable, "-m", "autoprune.cli.main", "search", "--resume", "--episodes",
                              str(n + 6), "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    after = read_history(out / "history.csv")
    assert list(after["episode"]) == list(range(n + 6))
    pd.testing.assert_frame_equal(after.iloc[:n].reset_index(drop=True), before)


def test_failing_candidates_are_recorded_and_skipped(tmp_path, splits, monkeypatch):
    import autoprune.evaluation as evaluation

    calls = {"n": 0}
    real = evaluation.prune_physically

    def flaky(*args, **kwargs):  # every third candidate's model fails, as a broken custom layer would
        calls["n"] += 1
        if calls["n"] % 3 == 0:
            raise IndexError("custom layer failed")
        return real(*args, **kwargs)

    monkeypatch.setattr(evaluation, "prune_physically", flaky)
    config = SearchConfig(model="mlp", data="synthetic", cost_model="flops", budget="50%", agent="random",
                          episodes=9, val_size=64, bn_batches=1, out=str(tmp_path / "run"))
    summary = SearchRun(config, splits=splits, progress=False).run()
    history = read_history(tmp_path / "run" / "history.csv")
    assert len(history) == 9 and history["accuracy"].isna().sum() == 3
    assert summary["best"]["accuracy"] == history["accuracy"].max() and not math.isnan(summary["best"]["accuracy"])


def test_full_disk_is_refused_before_any_work(tmp_path, monkeypatch, capsys):
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(common.shutil, "disk_usage", lambda p: usage(10**9, 10**9 - 2**20, 2**20))
    assert main(["search", *TINY, "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert "MiB free" in err and "choose another --out" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "run" / "history.csv").exists()


def test_disk_error_mid_run_is_one_line(tmp_path, monkeypatch, capsys):
    def no_space(*a, **k):
        raise OSError(28, "No space left on device", str(tmp_path / "run" / "history.csv"))

    monkeypatch.setattr("autoprune.search.history.HistoryWriter.append", no_space)
    assert main(["search", *TINY, "--agent", "random", "--episodes", "3", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("autoprune: error")]
    assert len(errors) == 1 and "No space left on device" in errors[0] and "--resume" in errors[0]
    assert "Traceback" not in err


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_output_is_refused(tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    assert main(["search", *TINY, "--out", str(locked / "run")]) == 2
    assert "not writable" in capsys.readouterr().err
