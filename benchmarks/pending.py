"""Every unfinished fine-tune of the results folders that follow the protocol: listed, estimated, run.

A source is one results folder and its own resumable runner: the jobs the folder's configuration
asks for, the rows its CSV already holds, and the command that runs the rest (each runner appends
a row as soon as a job finishes and skips rows it holds, so nothing finished runs twice and an
interruption loses at most the job in progress). With no argument, this prints what is pending
and the estimate (jobs; CPU-hours on this machine from the finished rows run on a CPU, a job's
search and fine-tune together; minutes on one GPU); ``--run`` runs it, ``--device cuda --workers
N`` on a lent accelerator (several workers share the GPU), on this CPU otherwise; ``--retime``
measures the exported architectures' latency here, each model alone (latency does not depend on
the weights, so rows fine-tuned elsewhere are timed on this machine afterwards).

Usage: python benchmarks/pending.py [--run] [--device cpu|cuda] [--workers N] [--only NAME] [--retime]
"""

from __future__ import annotations

import abc
import argparse
import itertools
import json
import statistics
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
CPU_JOB_S = 600.0  # one protocol fine-tune on these 2 cores
GPU_JOB_MIN, GPU_WORKERS = 10.5 / 62, 10  # 62 such fine-tunes took 10.5 min on one H200 with ~10 workers
Key = tuple


@dataclass(frozen=True)
class Estimate:
    """Jobs pending and what they cost."""

    jobs: int
    cpu_hours: float
    gpu_minutes: float


class Source(abc.ABC):
    """A results folder whose rows are fine-tunes (see the module docstring)."""

    name: str
    default_seconds: float = CPU_JOB_S  # one job here when no finished row tells

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    @property
    @abc.abstractmethod
    def rows_path(self) -> Path:
        """The CSV the runner appends a row to per finished job."""

    @abc.abstractmethod
    def expected(self) -> list[Key]:
        """Every job the folder's configuration asks for, in the order to run them."""

    @abc.abstractmethod
    def key(self, row: dict) -> Key:
        """The job a CSV row belongs to."""

    @abc.abstractmethod
    def command(self, device: str, workers: int) -> list[str]:
        """The folder's runner: runs every pending job, skipping finished ones."""

    seconds_columns: tuple[str, ...] = ("seconds",)  # what one job took, summed per row

    def row_key(self, row: dict) -> Key:
        """What makes a row unique (a job may write several rows, one per part)."""
        return self.key(row)

    def rows(self) -> list[dict]:
        return pd.read_csv(self.rows_path).to_dict("records") if self.rows_path.is_file() else []

    def finished(self) -> set[Key]:
        return {self.key(r) for r in self.rows()}

    def pending(self) -> list[Key]:
        done = self.finished()
        return [k for k in self.expected() if k not in done]

    def estimate(self, workers: int = 1) -> Estimate:
        """From the median job of the rows run on a CPU (rows a lent GPU ran say nothing of this machine)."""
        seconds = [sum(float(r[c]) for c in self.seconds_columns) for r in self.rows()
                   if pd.isna(r.get("device")) or r["device"] == "cpu"  # rows from before the column: here
                   and all(pd.notna(r.get(c)) for c in self.seconds_columns)]
        seconds = [s for s in seconds if s > 0]
        each = statistics.median(seconds) if seconds else self.default_seconds
        jobs = len(self.pending())
        gpu = jobs * each / CPU_JOB_S * GPU_JOB_MIN * GPU_WORKERS / min(max(workers, 1), GPU_WORKERS)
        return Estimate(jobs, round(jobs * each / 3600, 2), round(gpu, 1))


class HeadToHead(Source):
    """``results/head_to_head`` (and ``results/vit_fmnist``, the same protocol on the shipped ViT): one
    row per (model, budget, method, seed) of the protocol profile."""

    seconds_columns = ("search_s", "finetune_s")

    @property
    def name(self) -> str:  # type: ignore[override]
        return self.folder.name

    @property
    def rows_path(self) -> Path:
        return self.folder / "runs.csv"

    def expected(self) -> list[Key]:
        config = json.loads((self.folder / "config.json").read_text())
        seeds = config.get("method_seeds", {})
        refused = self.folder / "skipped.json"  # cells the tool refused (a budget out of reach): not jobs
        skip = {(m, float(b), meth, int(s)) for (m, b, meth, s) in
                (entry["run"] for entry in (json.loads(refused.read_text()) if refused.is_file() else []))}
        return [(m, float(b), meth, int(s)) for m in config["models"] for b in config["budgets"]
                for meth in config["methods"] for s in seeds.get(meth, config["seeds"])
                if (m, float(b), meth, int(s)) not in skip]

    def key(self, row: dict) -> Key:
        return (row["model"], float(row["budget"]), row["method"], int(row["seed"]))

    def command(self, device: str, workers: int) -> list[str]:
        config = json.loads((self.folder / "config.json").read_text())
        return [sys.executable, str(ROOT / "benchmarks" / "head_to_head.py"), "--profile", "protocol", "--device",
                device, "--name", self.folder.name, "--models", ",".join(config["models"]),
                *(["--prune-hidden"] if config.get("prune_hidden") else []),
                "--jobs", ",".join(f"{m}:{b:g}:{meth}:{s}" for m, b, meth, s in self.pending()),
                *(["--cells", "processes", "--cell-workers", str(workers)] if workers > 1 else [])]


class Iterative(Source):
    """``results/iterative_resnet20``: one row per (mode, seed)."""

    name = "iterative_resnet20"
    modes = ("one-shot", "gradual", "iterative-3", "iterative-5", "sparsity-90", "imp-90-3rounds")
    seeds = (0, 1)

    @property
    def rows_path(self) -> Path:
        return self.folder / "runs.csv"

    def expected(self) -> list[Key]:
        return [(m, s) for s in self.seeds for m in self.modes]

    def key(self, row: dict) -> Key:
        return (row["mode"], int(row["seed"]))

    def command(self, device: str, workers: int) -> list[str]:
        return [sys.executable, str(ROOT / "benchmarks" / "iterative.py"), "--device", device,
                "--seeds", *map(str, self.seeds), "--workers", str(workers)]


class FrontFinetune(Source):
    """``results/front_resnet20/finetune``: one row per (architecture, seed), the joint family
    one row per width."""

    name = "front_resnet20"
    seeds = (0, 1, 2)

    @property
    def rows_path(self) -> Path:
        return self.folder / "jobs.csv"

    def expected(self) -> list[Key]:
        archs = pd.read_csv(self.folder / "architectures.csv")
        kept = list(dict.fromkeys([*archs[archs["arm"] != "nested"]["kept"], "joint",
                                   *archs[archs["arm"] == "nested"]["kept"]]))
        return [(k, s) for s in self.seeds for k in kept]

    def key(self, row: dict) -> Key:
        return (row["kept"], int(row["seed"]))

    def row_key(self, row: dict) -> Key:
        return (row["kept"], int(row["seed"]), str(row.get("width")))  # the joint job: one row per width

    def command(self, device: str, workers: int) -> list[str]:
        epochs = json.loads((self.folder / "config.json").read_text())["epochs"]
        return [sys.executable, str(ROOT / "benchmarks" / "front_finetune.py"), "--epochs", str(epochs), "--seeds",
                ",".join(map(str, self.seeds)), "--workers", str(workers), "--threads", "1", "--device", device]


class SupernetProxy(Source):
    """``results/supernet_proxy``: one supernet per (epochs, sampled), its 31 candidates scored (one row each)."""

    name = "supernet_proxy"
    settings = ((1, 2), (2, 2), (4, 2))
    default_seconds = 1800.0  # one supernet epoch on these 2 cores

    @property
    def rows_path(self) -> Path:
        return self.folder / "scores.csv"

    def expected(self) -> list[Key]:
        return list(self.settings)

    def key(self, row: dict) -> Key:
        return (int(row["epochs"]), int(row["sampled"]))

    def row_key(self, row: dict) -> Key:
        return (int(row["epochs"]), int(row["sampled"]), int(row["index"]))

    def estimate(self, workers: int = 1) -> Estimate:
        """Training dominates and grows with the epochs: seconds per epoch from the finished supernets."""
        per_epoch = [float(r["train_s"]) / int(r["epochs"]) for r in self.rows() if float(r["train_s"]) > 0]
        each = statistics.median(per_epoch) if per_epoch else self.default_seconds
        pending = self.pending()
        epochs = sum(e for e, _ in pending)
        gpu = epochs * each / CPU_JOB_S * GPU_JOB_MIN * GPU_WORKERS  # one supernet at a time: no sharing
        return Estimate(len(pending), round(epochs * each / 3600, 2), round(gpu, 1))

    def command(self, device: str, workers: int) -> list[str]:
        epochs = sorted({e for e, _ in self.settings})
        return [sys.executable, str(ROOT / "benchmarks" / "supernet_proxy.py"), "--epochs", *map(str, epochs),
                "--device", device]


def sources(root: Path = ROOT) -> list[Source]:
    """The protocol folders, those that exist."""
    found = [HeadToHead(root / "results" / "head_to_head"), HeadToHead(root / "results" / "vit_fmnist"),
             Iterative(root / "results" / "iterative_resnet20"),
             FrontFinetune(root / "results" / "front_resnet20" / "finetune"),
             SupernetProxy(root / "results" / "supernet_proxy")]
    return [s for s in found if s.folder.is_dir()]


def report(found: list[Source], workers: int = 1) -> str:
    """What is pending, one line per source, and the total."""
    lines, total = [], Estimate(0, 0.0, 0.0)
    for source in found:
        e = source.estimate(workers)
        lines.append(f"{source.name}: {e.jobs} pending of {len(source.expected())} ({e.cpu_hours:.1f} CPU-hours "
                     f"here, ~{e.gpu_minutes:.0f} min on one GPU with {workers} workers)")
        total = Estimate(total.jobs + e.jobs, total.cpu_hours + e.cpu_hours, total.gpu_minutes + e.gpu_minutes)
    if total.jobs == 0:
        lines.append("nothing pending")
    else:
        lines.append(f"total: {total.jobs} jobs, {total.cpu_hours:.1f} CPU-hours here, ~{total.gpu_minutes:.0f} min "
                     f"on one GPU")
    return "\n".join(lines)


def run(found: list[Source], device: str, workers: int) -> int:
    """Each source with pending jobs, its runner once; returns the jobs still pending afterwards."""
    for source in found:
        if not source.pending():
            continue
        print(f"{source.name}: {len(source.pending())} pending; {' '.join(source.command(device, workers))}", flush=True)
        done = subprocess.run(source.command(device, workers), cwd=ROOT)
        if done.returncode != 0:
            print(f"{source.name}: the runner stopped (exit {done.returncode}); rerun to resume", flush=True)
    return sum(len(s.pending()) for s in found)


def duplicates(source: Source) -> list[Key]:
    """Jobs with more than one row (a runner must never write one twice)."""
    keys = sorted(source.row_key(r) for r in source.rows())
    return [k for k, group in itertools.groupby(keys) if len(list(group)) > 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", action="store_true", help="run what is pending (else: list it)")
    parser.add_argument("--device", default="cpu", help="cpu, or cuda on a lent accelerator")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--only", help="one source by name")
    parser.add_argument("--retime", action="store_true", help="time the head-to-head's policies here, each alone")
    args = parser.parse_args()
    found = [s for s in sources() if args.only in (None, s.name)]
    for source in found:
        if duplicates(source):
            sys.exit(f"{source.rows_path} holds {len(duplicates(source))} jobs twice; fix it before running")
    print(report(found, args.workers), flush=True)
    if args.run:
        left = run(found, args.device, args.workers)
        print(report(found, args.workers))
        sys.exit(0 if left == 0 else 3)
    if args.retime:  # every head-to-head folder's policies, each alone on this machine
        for source in (s for s in found if isinstance(s, HeadToHead) and s.rows()):
            subprocess.run([sys.executable, str(ROOT / "benchmarks" / "retime_policies.py"), str(source.folder)],
                           cwd=ROOT, check=True)


if __name__ == "__main__":
    main()
