"""Head-to-head benchmark: every method, same candidate evaluations, same final fine-tune.

For each model, latency budget (a share of the dense model's latency under one lookup table
profiled here, so every method faces the same budget) and seed: the one-line baselines (uniform
ratio, Torch-Pruning global magnitude sized to the budget, latency-aware knapsack) and the
searchers (random search with BN recalibration as in EagleEye, CMA-ES, AMC-DDPG with AMC's
settings and action wall, the best other agent); searchers other than AMC-DDPG start from the
baselines (seed rules) and re-rank their best candidates after a short fine-tune. Then the best
policy is applied for real, BN recalibrated, fine-tuned (the same for every method; with
distillation from the dense model in the ``protocol`` profile), exported to ONNX and measured
(ONNX Runtime, 1 thread, batch 1). Plus the hardware-awareness check: AMC-DDPG with the FLOPs
model at the same nominal budget, measured on real latency.

Writes results/<name>/ as it goes (rerunning the command resumes: finished rows are kept):
config.json, runs.csv (one row per run), agent_selection.csv, summary.md (the table and the
targets), front.png, ratios.png, runs/ (each search's history and best policy, each export.json).

Usage: python benchmarks/head_to_head.py --profile quick|session|protocol|full [--name head_to_head]
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from common import result_dir, trimmed
from head_to_head_report import write_report
from protocol import FT_LR, protocol_finetune

from autoprune.analysis import analyse_model
from autoprune.apply import apply_policy
from autoprune.atomic import write_json_atomic, write_text_atomic
from autoprune.checkpoint import load_or_create, shipped_weights
from autoprune.costs import create_cost_model, profile_latency_table
from autoprune.data import DataSplits, load_splits
from autoprune.errors import ConfigError
from autoprune.export import export_folder
from autoprune.latency import LatencySettings, measure_latency
from autoprune.models import create_model
from autoprune.policy import PruningPolicy
from autoprune.search import SearchRun
from autoprune.search.config import SearchConfig
from autoprune.sweep import run_tasks
from autoprune.training import evaluate

SEARCHED = ("random", "amc-ddpg", "best-agent")  # one search per seed (a profile may name its own)


@dataclass(frozen=True)
class Profile:
    """How much of the comparison to run: models, budgets, seeds, search length and fine-tuning."""

    models: tuple[str, ...]
    budgets: tuple[float, ...]
    seeds: tuple[int, ...]
    episodes: int                 # candidate evaluations per search
    preset: str                   # the SB3 agents' preset
    candidates: tuple[str, ...]   # agents the selection chooses "best-agent" from
    select_episodes: int          # episodes of each selection search (0: the first candidate, unselected)
    ft_epochs: int
    ft_images: int | None         # fine-tuning images (None: the whole 55k split)
    hardware_aware: tuple[float, ...]  # budgets where AMC-DDPG also searches by FLOPs (model 1 only)
    distill: bool = False         # distillation from the dense model while fine-tuning
    searched: tuple[str, ...] = SEARCHED
    method_seeds: dict[str, tuple[int, ...]] = field(default_factory=dict)  # seeds of a method, if fewer


PROFILES: dict[str, Profile] = {
    # the check that everything runs end to end: under 15 minutes on 2 cores
    "quick": Profile(models=("resnet20",), budgets=(0.5, 0.3), seeds=(0,), episodes=20, preset="quick",
                     candidates=("td3",), select_episodes=0, ft_epochs=1, ft_images=5000, hardware_aware=(0.5,)),
    # what fits in one working session here: every cell of the table, shorter searches and fine-tuning
    "session": Profile(models=("resnet20", "mobilenetv2_small"), budgets=(0.5, 0.3), seeds=(0, 1, 2), episodes=60,
                       preset="quick", candidates=("td3", "sac", "ppo"), select_episodes=60, ft_epochs=1,
                       ft_images=20000, hardware_aware=(0.5, 0.3)),
    # the comparison that can tell methods apart: 200 evaluations, 4 epochs on the 55k fine-tune split with
    # distillation from the dense model, 3 seeds; the 30 % budget first (where the margin matters most)
    "protocol": Profile(models=("resnet20", "mobilenetv2_small"), budgets=(0.3, 0.5), seeds=(0, 1, 2), episodes=200,
                        preset="default", candidates=("cmaes",), select_episodes=0, ft_epochs=4, ft_images=None,
                        hardware_aware=(), distill=True, searched=("random", "cmaes", "amc-ddpg", "thompson")),
    # the protocol as written: AMC's 300 episodes (100 warm-up), 8 fine-tuning epochs on 55k images
    "full": Profile(models=("resnet20", "mobilenetv2_small"), budgets=(0.5, 0.3), seeds=(0, 1, 2), episodes=300,
                    preset="default", candidates=("td3", "sac", "ppo"), select_episodes=300, ft_epochs=8,
                    ft_images=None, hardware_aware=(0.5, 0.3)),
}
ONE_SHOT = ["uniform", "global-magnitude", "knapsack"]  # deterministic: searched once, fine-tuned per seed
AMC_AS_PUBLISHED = {"budget_rule": "wall", "seeds": [], "rerank_top": 0}  # AMC-DDPG as in the paper
# Steps of 8 channels, where the lookup table is accurate (thin widths at steps of 4 fall off ONNX
# Runtime's SIMD blocks and are mispredicted); with max ratio 0.9 the floor is ~23 % of dense.
MAX_RATIO, ROUND_TO = 0.9, 8
SELECTION_SEED = 100  # the agent selection uses its own seed, never one of the table's


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", choices=sorted(PROFILES), default="quick")
    parser.add_argument("--name", default=None, help="results/<name> (default: head_to_head[_<profile>])")
    parser.add_argument("--keep-models", action="store_true", help="keep model.onnx/model.pt of every run")
    parser.add_argument("--models", help="comma-separated models, overriding the profile's")
    parser.add_argument("--budgets", help="run only these budgets now (e.g. 0.5; the config keeps the profile's)")
    parser.add_argument("--seeds", help="run only these seeds now")
    parser.add_argument("--methods", help="run only these methods now (e.g. thompson; the config keeps the profile's)")
    parser.add_argument("--jobs", help="run only these cells now, MODEL:BUDGET:METHOD:SEED comma-separated "
                                       "(what benchmarks/pending.py lists)")
    parser.add_argument("--episodes", type=int, help="candidate evaluations per search, overriding the profile's")
    parser.add_argument("--executor", default="local", choices=["local", "processes", "ray"],
                        help="where random search and CMA-ES score candidates (same results; see docs/search.md)")
    parser.add_argument("--workers", type=int, default=1, help="scoring workers of --executor processes or ray")
    parser.add_argument("--ft-images", type=int, help="fine-tuning images, overriding the profile's")
    parser.add_argument("--prune-hidden", action="store_true", help="search a transformer's hidden width too")
    parser.add_argument("--cells", default="local", choices=["local", "processes", "ray"],
                        help="run the (model, budget, method, seed) cells one after another here, in worker "
                             "processes or as Ray tasks (finished cells are kept and skipped on a rerun)")
    parser.add_argument("--cell-workers", type=int, default=2, help="cells at a time with --cells processes|ray")
    parser.add_argument("--cell-cpus", type=float, default=2, help="CPUs (torch threads) per cell")
    parser.add_argument("--cell-gpus", type=float, default=0, help="GPUs per Ray cell (fractions share one)")
    parser.add_argument("--device", default="cpu", help="where the final fine-tunes run (cuda on a lent GPU; "
                                                        "latency is measured on this CPU either way)")
    args = parser.parse_args()
    prof = PROFILES[args.profile]
    if args.models:
        prof = replace(prof, models=tuple(args.models.split(",")))
    if args.episodes:
        prof = replace(prof, episodes=args.episodes, select_episodes=args.episodes)
    if args.ft_images:
        prof = replace(prof, ft_images=args.ft_images)
    default = {"protocol": "head_to_head", "session": "head_to_head_1epoch"}.get(args.profile, f"head_to_head_{args.profile}")
    out = result_dir(args.name or default)
    searched = list(prof.searched)
    write_json_atomic(out / "config.json", {"profile": args.profile, **asdict(prof), "ft_lr": FT_LR,
                                            "max_ratio": MAX_RATIO, "round_to": ROUND_TO,
                                            "methods": ONE_SHOT + searched,
                                            "selection_seed": SELECTION_SEED, "amc_ddpg": AMC_AS_PUBLISHED,
                                            "seed_rules": SearchConfig().seeds, "rerank_top": SearchConfig().rerank_top,
                                            "rerank_steps": SearchConfig().rerank_steps,
                                            "prune_hidden": args.prune_hidden})
    torch.set_num_threads(max(1, round(args.cell_cpus)))
    splits = load_splits("fashion-mnist")
    bench = Bench(out, prof, splits, args.keep_models, args.device)
    bench.executor = (args.executor, args.workers)
    best_agent = bench.select_agent()
    cells = []
    for model in prof.models:
        for budget in [float(b) for b in args.budgets.split(",")] if args.budgets else prof.budgets:
            for seed in [int(x) for x in args.seeds.split(",")] if args.seeds else prof.seeds:
                cells += [Cell(model, budget, method, seed, best_agent) for method in ONE_SHOT + searched
                          if seed in prof.method_seeds.get(method, prof.seeds)]
        if model == prof.models[0]:
            cells += [Cell(model, budget, "amc-ddpg", prof.seeds[0], best_agent, "flops")
                      for budget in prof.hardware_aware]
    if args.methods:
        cells = [c for c in cells if c.method in args.methods.split(",")]
    if args.jobs:
        jobs = set(args.jobs.split(","))
        unknown = sorted(jobs - {c.job() for c in cells})
        if unknown:
            parser.error(f"--jobs {unknown[0]} is not a cell of this protocol (MODEL:BUDGET:METHOD:SEED, "
                         f"as benchmarks/pending.py lists them)")
        cells = [c for c in cells if c.job() in jobs]
    cells = [c for c in cells if not bench.finished(c)]
    if args.cells == "local":
        for cell in cells:
            bench.attempt(cell)
    else:
        bench.prepare_shared(cells)  # tables, dense stats and one-shot searches: made once, here
        task = functools.partial(run_cell, str(out), prof, args.keep_models, bench.executor, bench.dense,
                                 max(1, round(args.cell_cpus)), args.device)
        for done in run_tasks(task, cells, args.cells, args.cell_workers, cpus=args.cell_cpus, gpus=args.cell_gpus,
                              ray_env={"PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), *sys.path])}):
            if isinstance(done.error, ConfigError):
                bench.skip(done.item, done.error)
            elif done.error is not None:
                print(f"failed {done.item}: {type(done.error).__name__}: {done.error} (rerun to retry)", flush=True)
            else:
                bench.record(done.result)
    write_report(out)
    print((out / "summary.md").read_text())


@dataclass(frozen=True)
class Cell:
    """One row of the table: a method on a model at a budget with a seed (and the cost model searched)."""

    model: str
    budget: float
    method: str
    seed: int
    best_agent: str
    cost_model: str = "lut"

    def job(self) -> str:
        """``MODEL:BUDGET:METHOD:SEED``, as ``--jobs`` takes it."""
        return f"{self.model}:{self.budget:g}:{self.method}:{self.seed}"

    def key(self) -> dict[str, Any]:
        return {"model": self.model, "budget": self.budget, "method": self.method, "seed": self.seed,
                "cost_model": self.cost_model}

    def tag(self) -> str:
        return f"{self.model}/{int(self.budget * 100)}pct/{self.method}" + \
            ("" if self.cost_model == "lut" else "-" + self.cost_model)


def run_cell(out: str, prof: Profile, keep: bool, executor: tuple[str, int],
             dense: dict[str, dict[str, float]], threads: int, device: str, cell: Cell) -> dict[str, Any]:
    """One cell in a worker process or Ray task: its own data and bench over the same folder; the
    row goes back to the caller, the one writer of runs.csv."""
    torch.set_num_threads(threads)
    bench = Bench(Path(out), prof, load_splits("fashion-mnist"), keep, device)
    bench.executor, bench.dense = executor, dict(dense)
    return bench.run(cell)


class Bench:
    """Runs and records one row per (model, budget, method, seed, cost model); skips finished rows."""

    def __init__(self, out: Path, prof: Profile, splits: DataSplits, keep_models: bool,
                 device: str = "cpu") -> None:
        self.out, self.prof, self.splits, self.keep, self.device = out, prof, splits, keep_models, device
        self.csv = out / "runs.csv"
        self.rows = pd.read_csv(self.csv).to_dict("records") if self.csv.is_file() else []
        self.ft_splits = trimmed(splits, prof.ft_images)
        self.dense: dict[str, dict[str, float]] = {}
        self.tables: dict[tuple[str, tuple[str, ...]], tuple[Any, Any]] = {}  # (model, exclude) -> (analysis, LUT)
        self.executor = ("local", 1)  # where random search and CMA-ES score (same history anywhere)
        config = out / "config.json"  # search a transformer's hidden width too: as the folder was started
        self.prune_hidden = bool(json.loads(config.read_text()).get("prune_hidden")) if config.is_file() else False

    # -- shared per model -------------------------------------------------------------------
    def weights(self, model: str) -> str:
        path = shipped_weights(model)
        if path is None:
            raise SystemExit(f"no shipped weights for {model}; train them first (autoprune train)")
        return str(path)

    def table(self, model: str) -> str:
        """One latency table per model, profiled once: every method gets the same budget."""
        path = self.out / "tables" / f"{model}.csv"
        if not path.is_file():
            dense = load_or_create(model, self.weights(model))
            analysis = analyse_model(dense, torch.zeros(1, *self.splits.input_shape))
            start = time.perf_counter()
            profile_latency_table(analysis, model, round_to=ROUND_TO).save(path)
            print(f"profiled {model} in {time.perf_counter() - start:.0f} s")
        return str(path)

    def dense_stats(self, model: str) -> dict[str, float]:
        if model not in self.dense:
            dense = load_or_create(model, self.weights(model)).eval()
            lat = min(measure_latency(dense, self.splits.input_shape, LatencySettings()) for _ in range(5))
            self.dense[model] = {"dense_test_acc": evaluate(dense, self.splits.test()), "dense_latency_ms": lat}
        return self.dense[model]

    def predicted_ms(self, policy: PruningPolicy, model: str) -> float:
        """The lookup table's latency for the policy (also for FLOPs-budget searches); one table load per model."""
        key = (model, tuple(policy.exclude))
        if key not in self.tables:
            analysis = analyse_model(create_model(model, 1, 10), torch.zeros(1, *self.splits.input_shape),
                                     exclude=policy.exclude)
            self.tables[key] = (analysis, create_cost_model("lut", analysis, table=self.table(model)))
        analysis, lut = self.tables[key]
        return lut.cost(policy.architecture(analysis)).latency_ms

    # -- agent selection --------------------------------------------------------------------
    def select_agent(self) -> str:
        """The best non-DDPG agent by best validation accuracy on the first model at the first budget."""
        cands, episodes = list(self.prof.candidates), self.prof.select_episodes
        if episodes == 0 or len(cands) == 1:
            return cands[0]
        path = self.out / "agent_selection.csv"
        rows = pd.read_csv(path).to_dict("records") if path.is_file() else []
        model, budget = self.prof.models[0], self.prof.budgets[0]
        for agent in cands:
            if any(r["agent"] == agent for r in rows):
                continue
            summary = self.search(model, budget, agent, SELECTION_SEED, self.out / "runs" / "selection" / agent,
                                  episodes)
            rows.append({"agent": agent, "model": model, "budget": budget, "seed": SELECTION_SEED,
                         "episodes": episodes, "best_val_acc": summary["best"]["score"],
                         "search_s": summary["wall_s"]})
            write_text_atomic(path, pd.DataFrame(rows).to_csv(index=False))
        return max(rows, key=lambda r: r["best_val_acc"])["agent"]

    # -- one run ----------------------------------------------------------------------------
    def finished(self, cell: Cell) -> bool:
        key = cell.key()
        return any(all(r[k] == v for k, v in key.items()) for r in self.rows)

    def attempt(self, cell: Cell) -> None:
        """:meth:`run` and record, but a cell the tool refuses (e.g. a budget out of reach) is
        recorded as skipped, not fatal."""
        try:
            self.record(self.run(cell))
        except ConfigError as exc:
            self.skip(cell, exc)

    def record(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        write_text_atomic(self.csv, pd.DataFrame(self.rows).to_csv(index=False))
        print(f"{row['model']} {row['budget']} {row['method']} seed {row['seed']}: test {row['test_acc_bn']:.4f} -> "
              f"{row['test_acc_ft']:.4f}, {row['measured_ms']:.3f} ms ({row['measured_over_budget']:.2f}x budget)",
              flush=True)

    def skip(self, cell: Cell, exc: Exception) -> None:
        print(f"skipped {cell}: {exc}", flush=True)
        path = self.out / "skipped.json"
        skipped = json.loads(path.read_text()) if path.is_file() else []
        entry = {"run": [cell.model, str(cell.budget), cell.method, str(cell.seed)], "cost_model": cell.cost_model,
                 "reason": str(exc)}
        if entry not in skipped:
            write_json_atomic(path, skipped + [entry])

    def prepare_shared(self, cells: list[Cell]) -> None:
        """What cells share, made before they run in parallel: latency tables, the dense models'
        accuracy and latency, and the one-shot rules' searches (one per model and budget)."""
        for cell in cells:
            if cell.cost_model == "lut":
                self.table(cell.model)
            self.dense_stats(cell.model)
            if cell.method in ONE_SHOT:
                try:
                    self.search(cell.model, cell.budget, cell.method, 0, self.folder(cell), 1, cell.cost_model)
                except ConfigError:
                    pass  # the cell itself records why

    def search(self, model: str, budget: float, agent: str, seed: int, folder: Path, episodes: int,
               cost_model: str = "lut") -> dict[str, Any]:
        """A search (resumed if its folder holds a partial one); returns its summary."""
        done = folder / "summary.json"
        if done.is_file() and json.loads(done.read_text()).get("complete"):
            summary = json.loads(done.read_text())
            if summary.get("best") and "score" not in summary["best"]:  # written before the field had its name
                summary["best"]["score"] = summary["best"]["accuracy"]
            return summary
        cfg = SearchConfig(model=model, weights=self.weights(model), cost_model=cost_model,
                           table=self.table(model) if cost_model == "lut" else None, budget=f"{budget:.0%}",
                           agent=agent, preset=self.prof.preset, episodes=episodes, seed=seed,
                           max_ratio=MAX_RATIO, round_to=ROUND_TO, out=str(folder),
                           prune_hidden=self.prune_hidden,
                           **(AMC_AS_PUBLISHED if agent == "amc-ddpg" else {}))
        pooled = agent in ("random", "cmaes") and self.executor[0] != "local"
        if pooled:  # the workers load the data by name themselves
            cfg.executor, cfg.workers = self.executor
        resume = (folder / "history.csv").is_file()
        summary = SearchRun(cfg, splits=None if pooled else self.splits, progress=False).run(resume=resume)
        if resume:  # the wall time of a resumed search only covers its last session
            summary["resumed"] = True
        summary["complete"] = True
        write_json_atomic(done, summary)
        shutil.rmtree(folder / "agent", ignore_errors=True)
        return summary

    def folder(self, cell: Cell) -> Path:
        return self.out / "runs" / cell.tag() / ("search" if cell.method in ONE_SHOT else f"seed{cell.seed}")

    def run(self, cell: Cell) -> dict[str, Any]:
        """Search (or the one-shot rule), apply, fine-tune, export and measure: the cell's row."""
        model, budget, method, seed, cost_model = cell.model, cell.budget, cell.method, cell.seed, cell.cost_model
        key = cell.key()
        agent = cell.best_agent if method == "best-agent" else method
        one_shot = method in ONE_SHOT
        tag = cell.tag()
        folder = self.folder(cell)
        start = time.perf_counter()
        summary = self.search(model, budget, agent, 0 if one_shot else seed, folder,
                              1 if one_shot else self.prof.episodes, cost_model)
        print(f"{tag} seed {seed}: searched in {time.perf_counter() - start:.0f} s", flush=True)
        policy = PruningPolicy.load(folder / "best_policy.json")
        row = {**key, "agent": agent, "evaluations": summary["episodes_this_session"] if not one_shot
               else 1, "search_s": summary["wall_s"], "best_val_acc": summary["best"]["score"],
               "best_val_finetuned": (summary.get("best") or {}).get("finetuned"),
               "predicted_ms": self.predicted_ms(policy, model), **self.dense_stats(model),
               **self.finish(model, policy, seed, self.out / "runs" / tag / f"seed{seed}" / "export")}
        row["budget_ms"] = budget * row["dense_latency_ms"] if cost_model != "lut" else policy.budget["value"]
        row["measured_over_budget"] = row["measured_ms"] / row["budget_ms"]
        return row

    def finish(self, model: str, policy: PruningPolicy, seed: int, export_dir: Path) -> dict[str, Any]:
        """Apply for real, the protocol's fine-tune (seeded), export and measure."""
        dense = load_or_create(model, self.weights(model))
        analysis = analyse_model(dense, torch.zeros(1, *self.splits.input_shape), exclude=policy.exclude)
        pruned, record = apply_policy(analysis, policy, batches=self.splits.train(64, shuffle=False))
        done = protocol_finetune(pruned, self.splits, self.prof.ft_epochs, seed, dense.eval() if self.prof.distill
                                 else None, self.device, self.ft_splits)
        tuned = done.model.cpu()
        exported = export_folder(tuned, model, export_dir, self.splits.input_shape, self.splits.num_classes,
                                record, policy)
        if not self.keep:
            for name in ("model.onnx", "model.pt"):
                (export_dir / name).unlink(missing_ok=True)
        return {"test_acc_bn": done.test_bn, "test_acc_ft": done.test_ft, "finetune_s": done.seconds,
                "measured_ms": exported["latency_ms"], "params": exported["params"], "device": self.device}


if __name__ == "__main__":
    main()
