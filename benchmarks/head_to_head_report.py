"""The head-to-head benchmark's report: summary.md (table + targets), front.png, ratios.png from runs.csv.

Usage (re-render only): python benchmarks/head_to_head_report.py results/head_to_head
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from autoprune.atomic import write_text_atomic  # noqa: E402

METHODS = ["uniform", "global-magnitude", "knapsack", "random", "cmaes", "amc-ddpg", "thompson", "thompson-v1",
           "best-agent"]
LABELS = {"uniform": "uniform ratio", "global-magnitude": "TP global magnitude", "random": "random + BN recal",
          "amc-ddpg": "AMC-DDPG", "best-agent": "best agent", "knapsack": "knapsack (HALP-style)",
          "cmaes": "CMA-ES", "thompson": "Thompson sampling",
          "thompson-v1": "Thompson sampling, first version"}


def write_report(out: Path) -> None:
    """Render summary.md, front.png and ratios.png from ``out/runs.csv``."""
    runs = pd.read_csv(out / "runs.csv")
    config = json.loads((out / "config.json").read_text())
    machine = json.loads((out / "machine.json").read_text())
    lut = runs[runs.cost_model == "lut"]
    agent = lut.loc[lut.method == "best-agent", "agent"]
    best_name = agent.iloc[0] if len(agent) else "?"
    lines = [f"# Head-to-head benchmark ({config['profile']} profile)", "",
             f"{machine['date'][:10]}, {machine.get('cpu', machine.get('processor', 'CPU'))}, torch "
             f"{machine['torch']}, ONNX Runtime {machine['onnxruntime']}. Reproduce: `{_command(out)}`.", "",
             f"Per search: {config['episodes']} candidate evaluations ({config['preset']} agent preset); "
             f"fine-tuning: {config['ft_epochs']} epoch(s) SGD lr {config['ft_lr']} cosine on "
             f"{config['ft_images'] or 55000} training images{' with distillation from the dense model' if config.get('distill') else ''}, "
             f"identical for every method; seeds {config['seeds']}; at most {config['max_ratio']:.0%} of a group "
             f"pruned, widths in steps of {config['round_to']}. "
             + (f"Best agent: **{best_name}** ({_selection(config)}). " if "best-agent" in config["methods"] else
                f"Searchers other than AMC-DDPG start from the seed rules {config.get('seed_rules')} and re-rank "
                f"their {config.get('rerank_top')} best candidates after {config.get('rerank_steps')} fine-tuning "
                f"steps; AMC-DDPG runs as published ({config.get('amc_ddpg')}). ")
             + "Accuracies are Fashion-MNIST test (10k), "
             "mean ± std over seeds; latency is ONNX Runtime, 1 thread, batch 1, best of 5 windows.", ""]
    lines += _table(lut)
    lines += ["", "## Targets", ""] + _targets(lut)
    flops = runs[runs.cost_model == "flops"]
    if len(flops):
        lines += ["", "## Hardware awareness: the same nominal budget under FLOPs and under latency", ""]
        lines += _hardware_table(lut, flops)
    skipped = out / "skipped.json"
    if skipped.is_file():
        lines += ["", "## Cells the tool refused", ""]
        lines += [f"- {' / '.join(e['run'])} ({e['cost_model']}): {e['reason']}"
                  for e in json.loads(skipped.read_text())]
    write_text_atomic(out / "summary.md", "\n".join(lines) + "\n")
    _front(runs, out / "front.png")
    _ratios(lut, out, out / "ratios.png")


def _selection(config: dict) -> str:
    if config["select_episodes"] and len(config["candidates"]) > 1:
        return (f"chosen among {', '.join(config['candidates'])} by best validation accuracy in "
                f"{config['select_episodes']}-episode searches on seed {config['selection_seed']}, "
                f"see agent_selection.csv")
    return f"fixed to {config['candidates'][0]}, no selection in this profile"


def _command(out: Path) -> str:
    path = out / "command.txt"
    return path.read_text().split("   #")[0].strip() if path.is_file() else "python benchmarks/head_to_head.py"


def _pm(series: pd.Series, scale: float = 100.0, digits: int = 2) -> str:
    if len(series) == 1 or series.std() != series.std():
        return f"{series.mean() * scale:.{digits}f}"
    return f"{series.mean() * scale:.{digits}f} ± {series.std() * scale:.{digits}f}"


def _table(lut: pd.DataFrame) -> list[str]:
    head = ("| model | budget | method | evals | test acc. before FT (%) | after FT (%) | predicted ms | "
            "measured ms (max / budget) | max measured / (budget share × dense measured) | search s |")
    lines = [head, "|" + "---|" * 10]
    for (model, budget), cell in lut.groupby(["model", "budget"], sort=False):
        dense = cell.iloc[0]
        if budget == lut[lut.model == model].budget.iloc[0]:  # once per model
                lines.append(f"| {model} | dense | — | — | {dense.dense_test_acc * 100:.2f} | — | — | "
                         f"{dense.dense_latency_ms:.3f} | — | — |")
        for method in METHODS:
            r = cell[cell.method == method]
            if not len(r):
                continue
            name = LABELS[method] + (f" ({r.agent.iloc[0]})" if method == "best-agent" else "")
            lines.append(
                f"| {model} | {budget:.0%} ({r.budget_ms.iloc[0]:.3f} ms) | {name} | {int(r.evaluations.iloc[0])} | "
                f"{_pm(r.test_acc_bn)} | {_pm(r.test_acc_ft)} | {r.predicted_ms.mean():.3f} | "
                f"{r.measured_ms.mean():.3f} ({r.measured_over_budget.max():.2f}×) | "
                f"{(r.measured_ms / (r.budget * r.dense_latency_ms)).max():.2f}× | {r.search_s.mean():.0f} |")
    return lines


BASELINES = {"uniform", "global-magnitude", "knapsack"}  # the one-line rules a searcher must beat


def _targets(lut: pd.DataFrame) -> list[str]:
    """The margin of the best searched method over the best one-line baseline, as it is judged."""
    lines = []
    for (model, budget), cell in lut.groupby(["model", "budget"], sort=False):
        stats = cell.groupby("method").test_acc_ft.agg(["mean", "std", "count"])
        base, searched = stats[stats.index.isin(BASELINES)], stats[~stats.index.isin(BASELINES)]
        if base.empty or searched.empty:
            lines.append(f"- {model} {budget:.0%}: not yet measured for both baselines and searchers")
            continue
        best = searched["mean"].idxmax()
        margin = (searched.loc[best, "mean"] - base["mean"].max()) * 100
        spread = 2 * 100 * float(0 if pd.isna(searched.loc[best, "std"]) else searched.loc[best, "std"])
        need, seeds = (1.0 if budget <= 0.35 else 0.3), int(searched.loc[best, "count"])
        ok = margin >= need and margin > spread and seeds >= 3
        lines.append(f"- {model} {budget:.0%}: best searched ({LABELS[best]}) {searched.loc[best, 'mean'] * 100:.2f} "
                     f"vs best baseline ({LABELS[base['mean'].idxmax()]}) {base['mean'].max() * 100:.2f}: "
                     f"{margin:+.2f} points (need ≥ +{need}, > 2 sd = {spread:.2f}, ≥ 3 seeds: {seeds}) "
                     f"**{_met(ok)}**")
        if budget == 0.5:
            drop = (cell.dense_test_acc.iloc[0] - stats["mean"].max()) * 100
            lines.append(f"- {model} 50%: best method within 0.5 point of dense: **{_met(drop <= 0.5)}** "
                         f"({drop:.2f} points)")
    over = lut[lut.measured_over_budget > 1.05]
    lines.append(f"- every exported model's measured latency ≤ budget × 1.05: **{_met(len(over) == 0)}** "
                 f"({len(lut) - len(over)} of {len(lut)} runs; worst {lut.measured_over_budget.max():.2f}× "
                 f"the search's budget, i.e. the share of the table's dense latency)")
    strict = lut.measured_ms / (lut.budget * lut.dense_latency_ms)
    lines.append(f"- the same against the share of the *measured* dense latency: **{_met(bool((strict <= 1.05).all()))}** "
                 f"({int((strict <= 1.05).sum())} of {len(lut)} runs; worst {strict.max():.2f}×; the table's dense "
                 f"prediction differs from the measured dense model by "
                 + ", ".join(f"{m} {_dense_gap(lut, m):+.1%}" for m in dict.fromkeys(lut.model)) + ")")
    return lines


def _dense_gap(lut: pd.DataFrame, model: str) -> float:
    r = lut[lut.model == model].iloc[0]
    return r.budget_ms / r.budget / r.dense_latency_ms - 1.0


def _met(ok: bool) -> str:
    return "met" if ok else "not met"


def _hardware_table(lut: pd.DataFrame, flops: pd.DataFrame) -> list[str]:
    lines = ["| model | nominal budget | cost model | test acc. after FT (%) | predicted ms | measured ms | "
             "measured / (budget × dense measured) |", "|" + "---|" * 7]
    for _, f in flops.iterrows():
        match = lut[(lut.model == f.model) & (lut.budget == f.budget) & (lut.method == f.method)
                    & (lut.seed == f.seed)]
        for kind, r in (("latency (LUT)", match.iloc[0] if len(match) else None), ("FLOPs", f)):
            if r is None:
                continue
            target = r.budget * r.dense_latency_ms
            lines.append(f"| {r.model} | {r.budget:.0%} | {kind} | {r.test_acc_ft * 100:.2f} | "
                         f"{r.predicted_ms:.3f} | {r.measured_ms:.3f} | {r.measured_ms / target:.2f} |")
    return lines


def _front(runs: pd.DataFrame, path: Path) -> None:
    models = list(dict.fromkeys(runs.model))
    fig, axes = plt.subplots(1, len(models), figsize=(6 * len(models), 4.5), squeeze=False)
    colors = dict(zip(METHODS + ["amc-ddpg (FLOPs)"], plt.rcParams["axes.prop_cycle"].by_key()["color"]))
    for ax, model in zip(axes[0], models):
        rows = runs[runs.model == model]
        for method in METHODS + ["amc-ddpg (FLOPs)"]:
            flops = method.endswith("(FLOPs)")
            r = rows[(rows.method == method.split(" ")[0]) & ((rows.cost_model == "flops") == flops)]
            if len(r):
                label = "AMC-DDPG, FLOPs budget" if flops else LABELS[method]
                if method == "best-agent":
                    label += f" ({r.agent.iloc[0]})"
                ax.scatter(r.measured_ms, r.test_acc_ft * 100, s=22, color=colors[method], label=label,
                           marker="x" if flops else "o")
        ax.scatter([rows.dense_latency_ms.iloc[0]], [rows.dense_test_acc.iloc[0] * 100], marker="*", s=120,
                   color="black", label="dense")
        for i, b in enumerate(sorted(set(rows.budget))):
            ax.axvline(b * rows.dense_latency_ms.iloc[0], color="grey", lw=0.8, ls=["--", ":"][i % 2],
                       label=f"budget {b:.0%} of dense")
        ax.set(title=f"{model}: accuracy vs measured latency", xlabel="ONNX Runtime latency, 1 thread (ms)",
               ylabel="test accuracy after fine-tuning (%)")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _ratios(lut: pd.DataFrame, out: Path, path: Path) -> None:
    """Per-group ratios of each method's best run (by accuracy after fine-tuning) per model and budget."""
    cells = list(lut.groupby(["model", "budget"], sort=False))
    fig, axes = plt.subplots(len(cells), 1, figsize=(11, 3.2 * len(cells)), squeeze=False)
    for ax, ((model, budget), cell) in zip(axes[:, 0], cells):
        groups = None
        width = 0.8 / len(METHODS)
        for i, method in enumerate(METHODS):
            r = cell[cell.method == method]
            if not len(r):
                continue
            best = r.loc[r.test_acc_ft.idxmax()]
            tag = f"{model}/{int(budget * 100)}pct/{method}/seed{int(best.seed)}"
            file = out / "runs" / tag / "export" / "policy.json"
            if not file.is_file():  # a run whose folder was not kept
                continue
            policy = json.loads(file.read_text())
            ratios = policy["ratios"]
            groups = groups or list(ratios)
            xs = [j + i * width for j in range(len(groups))]
            bars = ax.bar(xs, [ratios[g] for g in groups], width, label=LABELS[method])
            zero = [x for x, g in zip(xs, groups) if ratios[g] == 0]  # unpruned: a marker, not a missing bar
            ax.scatter(zero, [0.01] * len(zero), marker="o", s=10, color=bars.patches[0].get_facecolor())
        ax.set_xticks([j + 0.4 - width / 2 for j in range(len(groups or []))])
        ax.set_xticklabels(groups or [], rotation=30, ha="right", fontsize=7)
        ax.set(title=f"{model}, {budget:.0%} latency: pruning ratio per group (best seed)", ylabel="ratio",
               ylim=(0, 1))
    axes[0][0].legend(fontsize=7, ncol=5)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    write_report(Path(sys.argv[1]))
