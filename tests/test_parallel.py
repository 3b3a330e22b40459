"""Scoring on workers (processes, Ray): the same history as in-process, and faults survived:
a worker killed or hung is replaced and its candidate scored again; a candidate failing on every
try is recorded as NaN; a missing Ray extra is named in one line."""

import functools
import math
import os
import signal
import time
from pathlib import Path

import pandas as pd
import pytest

from autoprune.cli.main import main
from autoprune.errors import ConfigError
from autoprune.parallel import RAY_MISSING, ProcessExecutor, check_executor


def _scorer(marker_dir: str):
    """A scorer for worker tests: ``die``/``hang`` misbehave once (a marker file says so), ``bad`` always raises."""

    def score(kept):
        marker = Path(marker_dir) / f"{next(iter(kept))}.done"
        if "die" in kept and not marker.exists():
            marker.touch()
            os.kill(os.getpid(), signal.SIGKILL)
        if "hang" in kept and not marker.exists():
            marker.touch()
            time.sleep(60)
        if "bad" in kept:
            raise ValueError("this candidate breaks the model")
        return float(sum(kept.values()))

    return score


@pytest.mark.slow
def test_a_killed_or_hung_worker_is_replaced_and_a_failing_candidate_recorded_as_nan(tmp_path):
    executor = ProcessExecutor(functools.partial(_scorer, str(tmp_path)), workers=2, timeout_s=8, retries=2)
    try:
        batch = [{"a": 1}, {"die": 2}, {"b": 3}, {"bad": 4}, {"c": 5}, {"hang": 6}, {"d": 7}]
        scored = executor.score(batch)
    finally:
        executor.close()
    values = [s.score for s in scored]
    assert values[:3] == [1.0, 2.0, 3.0] and math.isnan(values[3]) and values[4:] == [5.0, 6.0, 7.0]
    assert scored[1].attempts >= 2 and scored[5].attempts >= 2  # killed / hung once, then scored again
    assert scored[3].attempts == 3  # raised on every try: recorded as failed, the batch goes on


SEARCH = ["-q", "search", "--data", "synthetic", "--model", "mlp", "--cost-model", "flops", "--episodes", "9",
          "--val-size", "64", "--bn-batches", "1", "--rerank-top", "0", "--verify-top", "0", "--seed", "5"]


def _history(folder: Path) -> pd.DataFrame:
    return pd.read_csv(folder / "history.csv").drop(columns=["wall_s", "score_s"])


@pytest.mark.slow  # the killed-worker test below compares with the local history in the default run
@pytest.mark.parametrize("agent", ["random", "cmaes"])
def test_processes_give_the_history_of_the_local_search(tmp_path, agent):
    """Also when the pooled search stops after 5 episodes and is resumed to 9."""
    assert main([*SEARCH, "--agent", agent, "--out", str(tmp_path / "local")]) == 0
    pooled = [*SEARCH, "--agent", agent, "--executor", "processes", "--workers", "2", "--out", str(tmp_path / "pool")]
    assert main([*pooled, "--episodes", "5"]) == 0 and len(_history(tmp_path / "pool")) == 5
    assert main([*pooled, "--resume"]) == 0
    assert _history(tmp_path / "local").equals(_history(tmp_path / "pool"))


@pytest.mark.slow  # 14 s: kept out of the README's 3-minute default run; .ci/run runs it
def test_a_worker_killed_mid_search_loses_no_episode(tmp_path, monkeypatch):
    score = tmp_path / "score.py"
    score.write_text(
        "import os, signal\nfrom pathlib import Path\nfrom autoprune.scoring import accuracy\n"
        "def score(model, batches):\n"
        "    calls = Path(os.environ['KILL_DIR'])\n"
        "    n = len(list(calls.iterdir()))\n"
        "    (calls / f'{os.getpid()}-{n}').touch()\n"
        "    if n >= 4 and not (calls.parent / 'killed').exists():\n"
        "        (calls.parent / 'killed').touch()\n"
        "        os.kill(os.getpid(), signal.SIGKILL)  # about the fifth candidate kills its worker, once\n"
        "    return accuracy(model, batches)\n")
    calls = tmp_path / "calls"
    calls.mkdir()
    monkeypatch.setenv("KILL_DIR", str(calls))
    assert main([*SEARCH, "--agent", "random", "--score", f"{score}:score", "--executor", "processes",
                 "--workers", "2", "--out", str(tmp_path / "pool")]) == 0
    assert main([*SEARCH, "--agent", "random", "--out", str(tmp_path / "local")]) == 0
    history = _history(tmp_path / "pool")
    assert len(history) == 9 and history["score"].notna().all()
    assert history.equals(_history(tmp_path / "local"))
    made = sorted((int(p.name.split("-")[1]), p.name.split("-")[0]) for p in calls.iterdir())
    killed = next(pid for n, pid in made if n >= 4)
    # the first call checks the unpruned model in the search's own process; 9 candidates, one retried
    assert len(made) == 11 and all(pid != killed for n, pid in made if n > 4)  # retried on a fresh worker


def test_unknown_executor_and_missing_ray_are_refused_in_one_line(tmp_path, capsys, monkeypatch):
    assert main(["search", "--data", "synthetic", "--workers", "2", "--out", str(tmp_path / "a")]) == 2
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ray" else real(name, *a))
    with pytest.raises(ConfigError, match="pip install"):
        check_executor("ray", 2)
    assert main(["search", "--data", "synthetic", "--executor", "ray", "--workers", "2",
                 "--out", str(tmp_path / "b")]) == 2
    assert main(["search", "--data", "synthetic", "--agent", "random", "--n-envs", "2", "--out", str(tmp_path / "c")]) == 2
    assert main(["search", "--data", "synthetic", "--executor", "processes", "--worker-gpus", "0.5",
                 "--out", str(tmp_path / "d")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 4 and "--executor processes or ray" in err[0] and RAY_MISSING in err[1]
    assert "--executor processes|ray --workers N" in err[2] and "--worker-gpus" in err[3]
    assert not any((tmp_path / d).exists() for d in "abcd")  # refused before any folder is written


def _cell(n: int) -> int:
    """A sweep task: ``n`` squared after ``n`` tenths of a second; 3 raises."""
    time.sleep(n / 10)
    if n == 3:
        raise ValueError("cell 3 fails")
    return n * n


@pytest.mark.parametrize("executor", ["local", "processes"])
def test_sweep_tasks_all_come_back_once_and_a_failing_one_is_reported(executor):
    from autoprune.sweep import run_tasks

    done = list(run_tasks(_cell, [4, 1, 3, 2], executor, workers=1 if executor == "local" else 2))
    assert sorted(d.item for d in done) == [1, 2, 3, 4]
    assert {d.item: d.result for d in done if d.error is None} == {1: 1, 2: 4, 4: 16}
    assert [type(d.error) for d in done if d.item == 3] == [ValueError]


@pytest.fixture(scope="module")
def ray_runtime():
    """One local Ray runtime (2 CPUs) for this module's Ray tests; executors join it, not stop it."""
    ray = pytest.importorskip("ray")
    import sys

    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the test's scorer travels to the actors
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.mark.slow
def test_ray_actors_killed_or_failing_are_survived(ray_runtime, tmp_path):
    from autoprune.parallel import RayExecutor

    executor = RayExecutor(functools.partial(_scorer, str(tmp_path)), workers=2, timeout_s=30, cpus=0.5)
    try:
        deadline = time.time() + 10  # (the runtime reports resources with a short delay)
        while ray_runtime.available_resources().get("CPU") != 1.0 and time.time() < deadline:
            time.sleep(0.2)
        assert ray_runtime.available_resources().get("CPU") == 1.0  # two actors of half a CPU each hold one
        scored = executor.score([{"a": 1}, {"die": 2}, {"bad": 3}, {"b": 4}])
    finally:
        executor.close()
    assert [s.score for s in scored][:2] == [1.0, 2.0] and math.isnan(scored[2].score) and scored[3].score == 4.0
    assert scored[1].attempts == 2 and scored[2].attempts == 3
    assert ray_runtime.is_initialized()  # an executor leaves a runtime it joined running


@pytest.mark.slow
def test_ray_search_gives_the_local_history_when_a_worker_is_killed_by_pid(ray_runtime, tmp_path):
    score = tmp_path / "score.py"  # (Ray's workers started before this test: the flag's path is in the file)
    score.write_text(
        "import os, signal\nfrom pathlib import Path\nfrom autoprune.scoring import accuracy\n"
        "def score(model, batches):\n"
        f"    flag = Path({str(tmp_path / 'killed')!r})\n"
        # the search's own process scores the unpruned model first (the data check): never killed
        f"    if os.getpid() != {os.getpid()} and not flag.exists():  # a worker's first candidate kills it, once\n"
        "        flag.write_text(str(os.getpid()))\n"
        "        os.kill(os.getpid(), signal.SIGKILL)\n"
        "    return accuracy(model, batches)\n")
    ray_search = [*SEARCH, "--agent", "random", "--score", f"{score}:score"]
    assert main([*ray_search, "--executor", "ray", "--workers", "2", "--out", str(tmp_path / "ray")]) == 0
    assert (tmp_path / "killed").read_text().isdigit()
    assert main([*ray_search, "--out", str(tmp_path / "local")]) == 0
    history = _history(tmp_path / "ray")
    assert len(history) == 9 and history["score"].notna().all()
    assert history.equals(_history(tmp_path / "local"))


@pytest.mark.slow
def test_sweep_cells_run_as_ray_tasks(ray_runtime):
    from autoprune.sweep import run_tasks

    done = list(run_tasks(_cell, [4, 1, 3, 2], "ray", workers=2))
    assert {d.item: d.result for d in done if d.error is None} == {1: 1, 2: 4, 4: 16}
    assert [str(d.error) for d in done if d.item == 3] == ["cell 3 fails"]
