"""The pending-measurements runner: lists what a results folder still lacks, runs the folder's own
resumable runner, and never counts or writes a job twice."""

import json
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pending  # benchmarks/pending.py (pytest's pythonpath)
import pytest


def _head_to_head(folder: Path, rows: list[dict]) -> pending.HeadToHead:
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({
        "models": ["resnet20"], "budgets": [0.3], "seeds": [0, 1, 2], "methods": ["uniform", "random"],
        "method_seeds": {"random": [0]}}))
    pd.DataFrame(rows).to_csv(folder / "runs.csv", index=False)
    return pending.HeadToHead(folder)


def test_finished_rows_are_not_pending_and_the_smaller_protocol_is_followed(tmp_path):
    source = _head_to_head(tmp_path / "h2h", [{"model": "resnet20", "budget": 0.3, "method": "uniform", "seed": 0,
                                               "search_s": 100.0, "finetune_s": 500.0, "device": "cpu"}])
    assert source.pending() == [("resnet20", 0.3, "uniform", 1), ("resnet20", 0.3, "uniform", 2),
                                ("resnet20", 0.3, "random", 0)]
    estimate = source.estimate()  # a job is its search and its fine-tune
    assert estimate.jobs == 3 and estimate.cpu_hours == pytest.approx(3 * 600 / 3600, abs=0.01)
    assert "3 pending of 4" in pending.report([source])


def test_the_cpu_estimate_is_not_taken_from_rows_a_gpu_ran(tmp_path):
    row = {"model": "resnet20", "budget": 0.3, "method": "uniform", "search_s": 100.0, "finetune_s": 500.0}
    source = _head_to_head(tmp_path / "h2h", [{**row, "seed": 0, "device": "cpu"},
                                              *({**row, "seed": s, "search_s": 2.0, "finetune_s": 40.0,
                                                 "device": "cuda"} for s in (1, 2))])
    assert source.estimate().cpu_hours == pytest.approx(600 / 3600, abs=0.01)  # one job pending, at the CPU row's pace


def test_cells_the_tool_refused_are_not_pending(tmp_path):
    source = _head_to_head(tmp_path / "h2h", [{"model": "resnet20", "budget": 0.3, "method": "random", "seed": 0,
                                               "finetune_s": 500.0}])
    (tmp_path / "h2h" / "skipped.json").write_text(json.dumps([
        {"run": ["resnet20", "0.3", "uniform", "1"], "cost_model": "lut", "reason": "budget out of reach"}]))
    assert source.pending() == [("resnet20", 0.3, "uniform", 0), ("resnet20", 0.3, "uniform", 2)]


def test_the_head_to_head_runner_is_given_exactly_the_jobs_listed(tmp_path):
    """The runner builds its cells from the protocol as it stands, which may ask more of a folder
    begun under an older one (a searcher at more seeds): it runs only what the list names."""
    source = _head_to_head(tmp_path / "h2h", [{"model": "resnet20", "budget": 0.3, "method": "uniform", "seed": 0}])
    command = source.command("cpu", 1)
    jobs = command[command.index("--jobs") + 1].split(",")
    assert jobs == ["resnet20:0.3:uniform:1", "resnet20:0.3:uniform:2", "resnet20:0.3:random:0"]
    assert [tuple(j.split(":")) for j in jobs] == [(m, f"{b:g}", meth, str(s)) for m, b, meth, s in source.pending()]
    from head_to_head import Cell  # the runner's own cell names, which --jobs is matched against
    assert Cell("resnet20", 0.3, "random", 0, "thompson").job() == jobs[2]


class Appending(pending.Source):
    """A folder whose runner appends one row per pending job and, while ``crash`` exists, dies
    after its first job (an interruption)."""

    name = "fake"

    @property
    def rows_path(self) -> Path:
        return self.folder / "rows.csv"

    def expected(self):
        return [(j,) for j in range(5)]

    def key(self, row):
        return (int(row["job"]),)

    def command(self, device, workers):
        script = textwrap.dedent(f"""
            import os, pandas as pd
            path = {str(self.rows_path)!r}
            rows = pd.read_csv(path).to_dict("records") if os.path.exists(path) else []
            done = {{int(r["job"]) for r in rows}}
            for job in range(5):
                if job in done:
                    continue
                rows.append({{"job": job, "seconds": 1.0, "device": {device!r}}})
                pd.DataFrame(rows).to_csv(path, index=False)
                if os.path.exists({str(self.folder / "crash")!r}):
                    raise SystemExit(1)
        """)
        return [sys.executable, "-c", script]


def test_an_interrupted_job_list_resumes_and_no_row_is_written_twice(tmp_path, capsys):
    folder = tmp_path / "fake"
    folder.mkdir()
    (folder / "crash").touch()
    source = Appending(folder)
    assert pending.run([source], "cpu", 1) == 4  # stopped after one job
    assert pending.run([source], "cpu", 1) == 3  # each rerun goes on where it stopped
    (folder / "crash").unlink()
    assert pending.run([source], "cpu", 1) == 0
    assert pending.run([source], "cpu", 1) == 0  # nothing pending: the runner is not even started
    assert sorted(source.finished()) == [(j,) for j in range(5)] and not pending.duplicates(source)
    assert len(source.rows()) == 5
    assert "nothing pending" in pending.report([source])


def test_a_folder_holding_a_job_twice_is_reported(tmp_path):
    source = _head_to_head(tmp_path / "h2h", [{"model": "resnet20", "budget": 0.3, "method": "uniform", "seed": 0}] * 2)
    assert pending.duplicates(source) == [("resnet20", 0.3, "uniform", 0)]


def test_supernet_settings_are_pending_until_their_candidates_are_scored(tmp_path):
    folder = tmp_path / "supernet_proxy"
    folder.mkdir()
    pd.DataFrame([{"epochs": 1, "sampled": 2, "index": i, "train_s": 1000.0} for i in range(3)]).to_csv(
        folder / "scores.csv", index=False)
    source = pending.SupernetProxy(folder)
    assert source.pending() == [(2, 2), (4, 2)] and not pending.duplicates(source)
    estimate = source.estimate()  # 2 + 4 epochs at the finished supernet's 1,000 s per epoch
    assert estimate.jobs == 2 and estimate.cpu_hours == pytest.approx(6000 / 3600, abs=0.01)
    assert source.command("cuda", 1)[-4:] == ["2", "4", "--device", "cuda"]


def test_a_results_folder_named_with_out_says_how_it_was_made(tmp_path, monkeypatch):
    import common  # benchmarks/common.py

    monkeypatch.setattr(sys, "argv", [str(common.ROOT / "benchmarks" / "channel_bench.py"), "--seeds", "2"])
    out = common.output_dir(str(tmp_path / "named"), "unused")
    assert out == tmp_path / "named"  # the folder the user named, not results/
    assert (out / "command.txt").read_text().startswith("python benchmarks/channel_bench.py --seeds 2")
    assert json.loads((out / "machine.json").read_text())["torch"]
    assert not (common.ROOT / "results" / "unused").exists()
