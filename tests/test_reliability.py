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
from conftest import tiny_search

from autoprune import run_folder
from autoprune.cli.main import main
from autoprune.search import SearchConfig, SearchRun, read_history

TINY = tiny_search("40%", finish=True)


@pytest.mark.slow  # the several-points test below kills the default agent in the default run
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
    timing = ["score_s", "wall_s"]  # episodes after the agent's last saved state are played again
    pd.testing.assert_frame_equal(after.iloc[:n].reset_index(drop=True).drop(columns=timing),
                                  before.drop(columns=timing))


def agent_state(out):
    """The folder ``agent/agent.json`` names: the agent's latest complete state."""
    return out / "agent" / json.loads((out / "agent" / "agent.json").read_text())["state"]


def _search(out, *extra):
    return [sys.executable, "-m", "autoprune.cli.main", "-q", "search", *extra, "--out", str(out)]


EXTRA = {"thompson": ["--agent-param", "warmup=5"],  # its model and re-queries too
         "ppo+requeries": ["--agent-param", "intensify=2", "--agent-param", "intensify_after=4"],
         "amc-ddpg+requeries": ["--agent-param", "intensify=2", "--agent-param", "intensify_after=4"]}


@pytest.mark.parametrize("agent", ["thompson", *(pytest.param(a, marks=pytest.mark.slow)
                                                 for a in ("amc-ddpg", "random", "sac", "ppo", "ppo+requeries",
                                                           "amc-ddpg+requeries"))])
def test_kill_9_at_several_points_then_resume_gives_the_uninterrupted_history(tmp_path, agent):
    """A resume after kill -9 at any point continues exactly: the same history as a run never stopped."""
    settings = [*TINY, "--agent", agent.split("+")[0], "--preset", "quick", "--rerank-top", "0", "--episodes", "20",
                *EXTRA.get(agent, [])]
    reference = subprocess.run(_search(tmp_path / "ref", *settings), capture_output=True, text=True, timeout=300)
    assert reference.returncode == 0, reference.stderr
    out = tmp_path / "killed"
    for stop, command in ((6, _search(out, *settings)), (13, _search(out, "--resume"))):
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while len(read_history(out / "history.csv")) < stop and proc.poll() is None:
            time.sleep(0.005)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert len(read_history(out / "history.csv")) < 20  # killed mid-search
    done = subprocess.run(_search(out, "--resume"), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    timing = ["score_s", "wall_s"]
    pd.testing.assert_frame_equal(read_history(out / "history.csv").drop(columns=timing),
                                  read_history(tmp_path / "ref" / "history.csv").drop(columns=timing))


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
    assert len(history) == 9 and history["score"].isna().sum() == 3
    assert summary["best"]["score"] == history["score"].max() and not math.isnan(summary["best"]["score"])


def test_full_disk_is_refused_before_any_work(tmp_path, monkeypatch, capsys):
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(run_folder.shutil, "disk_usage", lambda p: usage(10**9, 10**9 - 2**20, 2**20))
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


def test_unwritable_output_is_refused(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")  # a path under a file cannot be created, even by root
    for command in (["search", *TINY], ["pipeline", *TINY], ["train", "--model", "mlp", "--data", "synthetic"]):
        assert main([*command, "--out", str(blocker / "run")]) == 2
        err = capsys.readouterr().err.strip()
        assert "is not writable" in err and "choose another --out" in err and len(err.splitlines()) == 1


class _Boom:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))  # unpickling would create the marker file


def ddpg_config(out, episodes: int) -> SearchConfig:
    """A short AMC-DDPG search on the MLP (two groups an episode); no seed rules, so every episode is
    the agent's and its saved counters equal the history's length."""
    return SearchConfig(model="mlp", data="synthetic", cost_model="flops", budget="50%", agent="amc-ddpg",
                        preset="quick", agent_params={"warmup_episodes": 2}, episodes=episodes, val_size=64,
                        bn_batches=1, seeds=[], out=str(out))


def test_resume_never_unpickles_agent_files(tmp_path, splits):
    import base64
    import pickle
    import zipfile

    out = tmp_path / "run"
    config = ddpg_config(out, episodes=5)
    SearchRun(config, splits=splits, progress=False).run()
    marker = tmp_path / "pwned"
    evil = {":serialized:": base64.b64encode(pickle.dumps(_Boom(str(marker)))).decode()}
    agent_zip = agent_state(out) / "agent.zip"
    with zipfile.ZipFile(agent_zip) as z:
        files = {n: z.read(n) for n in z.namelist()}
    data = json.loads(files["data"])
    for key in ("observation_space", "action_space", "policy_class", "action_noise"):
        data[key] = evil
    files["data"] = json.dumps(data).encode()
    with zipfile.ZipFile(agent_zip, "w") as z:
        for name, blob in files.items():
            z.writestr(name, blob)
    (agent_state(out) / "replay.pkl").write_bytes(pickle.dumps(_Boom(str(marker))))
    config.episodes = 8
    SearchRun(config, splits=splits, progress=False).run(resume=True)
    assert not marker.exists()
    assert list(read_history(out / "history.csv")["episode"]) == list(range(8))
    saved = json.loads((out / "agent" / "agent.json").read_text())
    assert saved["episodes"] == 8 and saved["num_timesteps"] == 8 * 2  # two groups per episode


def test_resumed_agent_continues_its_counters_and_buffer(tmp_path, splits):
    out = tmp_path / "run"
    config = ddpg_config(out, episodes=4)
    SearchRun(config, splits=splits, progress=False).run()
    first = SearchRun(config, splits=splits, progress=False)
    first.prepare()
    model = first.searcher._restore(first.env, out / "agent", 4)
    assert model.num_timesteps == 8 and model.replay_buffer.pos == 8
    saved = json.loads((out / "agent" / "agent.json").read_text())
    assert model.action_noise.episodes == saved["noise_episodes"] >= 4 and model.baseline == saved["baseline"]
    assert model.action_noise.rng.bit_generator.state == saved["noise_rng"]


def test_damaged_run_config_is_one_line(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    for text, message in [("episodes: [3", "not valid YAML"), ("- a\n- b\n", "mapping"),
                          ("episodes: many\n", "must be int"), ("colour: red\n", "unknown setting 'colour'")]:
        (run / "config.yaml").write_text(text)
        assert main(["search", "--resume", "--out", str(run)]) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1, err


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc_trim and /proc are Linux")
def test_freed_memory_is_returned_to_the_os():
    from autoprune.memory import release_free_memory, rss_mib

    blocks = [bytearray(64 * 1024) for _ in range(3000)]  # ~190 MiB in small heap blocks
    del blocks[::2]
    before = rss_mib()
    del blocks
    assert release_free_memory() is True
    assert rss_mib() < before - 50


def test_profile_with_two_different_models_is_one_line(tmp_path, capsys):
    code = main(["profile", "mlp", "--model", "vgg_small", "--out", str(tmp_path / "t.csv")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "two models given ('mlp' and --model 'vgg_small')" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "t.csv").exists()


def test_a_tampered_agent_state_is_refused_in_one_line_that_suggests_nothing_unsafe(tmp_path, splits):
    import zipfile

    from autoprune.errors import ConfigError

    out = tmp_path / "run"
    config = ddpg_config(out, episodes=3)
    SearchRun(config, splits=splits, progress=False).run()
    agent_zip = agent_state(out) / "agent.zip"
    with zipfile.ZipFile(agent_zip) as z:
        files = {n: z.read(n) for n in z.namelist()}
    with zipfile.ZipFile(agent_zip, "w") as z:
        for name, blob in files.items():
            z.writestr(name, blob[: len(blob) // 2] if name.endswith(".pth") else blob)  # truncated tensors
    config.episodes = 5
    with pytest.raises(ConfigError) as err:
        SearchRun(config, splits=splits, progress=False).run(resume=True)
    assert "cannot be restored" in str(err.value) and "weights_only" not in str(err.value)
    assert err.value.__cause__ is None  # the traceback chain carries no torch advice either


def test_a_hand_edited_random_state_is_refused_in_one_line(tmp_path, splits):
    from autoprune.errors import ConfigError

    out = tmp_path / "run"
    config = ddpg_config(out, episodes=3)
    SearchRun(config, splits=splits, progress=False).run()
    saved = json.loads((out / "agent" / "agent.json").read_text())
    saved["rng"]["torch"] = ["not", "bytes"]
    (out / "agent" / "agent.json").write_text(json.dumps(saved))
    config.episodes = 5
    with pytest.raises(ConfigError, match="cannot be restored"):
        SearchRun(config, splits=splits, progress=False).run(resume=True)
