"""A run folder's report: ``report.md`` with the settings, the best policy and four plots.

Written at the end of a search and again on ``--resume``, from the files in the folder alone
(``config.yaml``, ``history.csv``, ``best_policy.json``, ``summary.json``, ``verification.csv``),
so it always describes what is on disk.
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from autoprune.atomic import atomic_path, write_text_atomic  # noqa: E402
from autoprune.budget import Budget  # noqa: E402
from autoprune.policy import PruningPolicy, SearchScore  # noqa: E402
from autoprune.search.history import read_history  # noqa: E402
from autoprune.yaml_io import dump_yaml, load_yaml

PLOTS = ("progress.png", "candidates.png", "ratios.png", "latency.png")


def write_report(folder: str | Path, history: pd.DataFrame | None = None) -> Path | None:
    """Write ``report.md`` and its plots into ``folder``; None when it holds no finished episode.
    ``history``: the search's episodes when the caller holds them (else read from the folder)."""
    folder = Path(folder)
    history = read_history(folder / "history.csv") if history is None else history
    if history.empty or not (folder / "best_policy.json").is_file():
        return None
    policy = PruningPolicy.load(folder / "best_policy.json")
    budget = Budget.from_dict(policy.budget, "best_policy.json") if policy.budget else None
    config = load_yaml((folder / "config.yaml").read_text(), str(folder / "config.yaml")) if (folder / "config.yaml").is_file() else {}
    agent = str(config.get("agent", "search"))
    score = str(config.get("score") or "accuracy").rsplit(":", 1)[-1]  # a --score function's name
    plots = [_progress(history, folder, agent, score), _candidates(history, folder, budget, policy, score),
             _ratios(policy, folder)]
    verified = folder / "verification.csv"
    if verified.is_file() and budget is not None:
        plots.append(_latency(pd.read_csv(verified), folder, budget))
    summary = json.loads((folder / "summary.json").read_text()) if (folder / "summary.json").is_file() else {}
    text = _markdown(config, policy, budget, history, summary, [p.name for p in plots], score)
    write_text_atomic(folder / "report.md", text)
    return folder / "report.md"


def _markdown(config: dict, policy: PruningPolicy, budget: Budget | None, history: pd.DataFrame,
              summary: dict, plots: list[str], score: str = "accuracy") -> str:
    acc = (policy.score or SearchScore()).to_dict()
    lines = ["# Search report", "", f"{len(history)} episodes, agent `{config.get('agent')}`, "
             f"model `{policy.model}`, cost model `{policy.cost_model}`.", ""]
    if budget is not None:
        lines += [f"Budget: {budget.value:.6g} {budget.unit} ({budget.fraction:.1%} of dense "
                  f"{budget.dense:.6g} {budget.unit}"
                  f"{', measured' if budget.dense_measured else ''}).", ""]
    lines += [f"Best policy: episode {acc.get('episode')}, validation {score} {acc.get('val', float('nan')):.4f}"
              + (f", {acc['val_finetuned']:.4f} after {acc.get('finetune_steps')} fine-tuning steps"
                 if "val_finetuned" in acc else "")
              + "; predicted " + ", ".join(f"{k} {v:.6g}" for k, v in (policy.predicted_cost or {}).items()) + ".", "",
              "| group | channels before -> after | ratio |", "|---|---|---|"]
    before = _channels_before(policy)
    lines += [f"| `{g}` | {before[g]} -> {policy.channels[g]} | {policy.ratios[g]:.3f} |" for g in policy.ratios]
    lines += ["", *[f"![{p}]({p})" for p in plots], "", "## Settings", "", "```yaml",
              dump_yaml(config).rstrip(), "```"]
    if summary:
        lines += ["", f"Time: {summary.get('wall_s')} s (scoring {summary.get('scoring_s')} s)."]
    return "\n".join(lines) + "\n"


def _channels_before(policy: PruningPolicy) -> dict[str, int]:
    """Dense channels per group, from the kept channels and the ratio (exact up to rounding)."""
    return {g: int(round(policy.channels[g] / max(1.0 - r, 1e-9))) for g, r in policy.ratios.items()}


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path


def _progress(history: pd.DataFrame, folder: Path, agent: str, score: str = "accuracy") -> Path:
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    ok = history[history["feasible"].astype(bool)]
    ax.scatter(ok["episode"], ok["score"], s=8, alpha=0.4, color="tab:blue", label=f"{agent}: each candidate")
    ax.plot(ok["episode"], ok["score"].cummax(), color="tab:red", lw=2, label="best so far")
    ax.set_xlabel("episode")
    ax.set_ylabel(f"validation {score} (first stage)")
    ax.legend(fontsize=8)
    return _save(fig, folder / "progress.png")


def _candidates(history: pd.DataFrame, folder: Path, budget: Budget | None, policy: PruningPolicy,
                score: str = "accuracy") -> Path:
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    unit = budget.unit if budget else ""
    ax.scatter(history["cost"], history["score"], s=8, alpha=0.5, label="candidates")
    best = history[history["episode"] == (policy.score or SearchScore()).episode]
    ax.scatter(best["cost"], best["score"], s=80, marker="*", color="tab:red", label="best policy")
    if budget is not None:
        ax.axvline(budget.value, color="k", ls="--", lw=1, label=f"budget {budget.value:.4g} {unit}")
    ax.set_xlabel(f"predicted cost ({unit})")
    ax.set_ylabel(f"validation {score}")
    ax.legend(fontsize=8)
    return _save(fig, folder / "candidates.png")


def _ratios(policy: PruningPolicy, folder: Path) -> Path:
    names = list(policy.ratios)
    ratios = [policy.ratios[n] for n in names]
    before = _channels_before(policy)
    fig, ax = plt.subplots(figsize=(max(6.5, 0.45 * len(names)), 4))
    ax.bar(range(len(names)), ratios, color="tab:blue")
    for i, n in enumerate(names):
        if ratios[i] == 0:  # an unpruned group: a visible marker, not a missing bar
            ax.plot(i, 0, marker="o", color="tab:green")
        ax.annotate(f"{before[n]}->{policy.channels[n]}", (i, ratios[i]), ha="center", va="bottom",
                    fontsize=6, rotation=90, xytext=(0, 3), textcoords="offset points")
    ax.plot([], [], marker="o", color="tab:green", ls="", label="ratio 0 (kept whole)")
    ax.set_xticks(range(len(names)), names, rotation=90, fontsize=6)
    ax.set_ylim(0, 1.15)
    ax.set_ylabel("share of channels pruned")
    ax.legend(fontsize=7, loc="upper left")
    return _save(fig, folder / "ratios.png")


def _latency(frame: pd.DataFrame, folder: Path, budget: Budget) -> Path:
    fig, ax = plt.subplots(figsize=(5, 4.2))
    ax.scatter(frame["latency_ms"], frame["measured_ms"], s=14, label="best candidates")
    lo = float(min(frame["latency_ms"].min(), frame["measured_ms"].min()))
    hi = float(max(frame["latency_ms"].max(), frame["measured_ms"].max()))
    ax.plot([lo, hi], [lo, hi], color="gray", lw=1, label="measured = predicted")
    ax.axhline(budget.value, color="k", ls="--", lw=1, label=f"budget {budget.value:.4g} ms")
    ax.set_xlabel("predicted latency (ms)")
    ax.set_ylabel("measured latency here (ms)")
    ax.legend(fontsize=8)
    return _save(fig, folder / "latency.png")
