"""Measured verification of a search's best candidates: the table predicts, the machine decides.

A lookup table misses now and then (about 1 in 100 MobileNetV2-small candidates at steps of 4
channels, by up to 14 %), and a budget is a promise. After a search with a latency table
profiled on this machine, the most accurate feasible candidates are built and timed round-robin
here; the best one within the budget (+ the export tolerance) becomes ``best_policy.json``.

The dense model is timed in the same round-robin and every reading is put on the table's clock
(``measured x table dense / measured dense``, the table's dense being the dense model as measured
when the table was profiled, or its prediction in older tables): a shared machine that runs 40 % slow for the
minute of verification (seen on this VM while other jobs ran) otherwise reads every candidate
over budget and vetoes them all, the seed rules included. A candidate more accurate than the best
one that fits is timed again beside that one before it is rejected (:func:`retime_rejected`).
"""

from __future__ import annotations

import json
import time

import pandas as pd
from tqdm.auto import tqdm

from autoprune.analysis.groups import ModelAnalysis
from autoprune.budget import MEASURED_TOLERANCE, Budget, BudgetSpec
from autoprune.costs import CostModel, LookupTableCostModel, MeasuredLatencyCostModel, checked_cost
from autoprune.devices import device_info
from autoprune.latency import LatencySettings
from autoprune.records import TableCheckRecord, VerificationRecord
from autoprune.search.assembly import Assembled
from autoprune.search.history import top_candidates


def skip_reason(top: int, cost_model: CostModel, budget: Budget) -> str | None:
    """Why the candidates cannot be verified here, or None when they can."""
    if top < 1:
        return "switched off (--verify-top 0)"
    if budget.metric != "latency_ms":
        return f"the budget is in {budget.metric}, not measured latency"
    if not isinstance(cost_model, LookupTableCostModel):
        return f"cost model {cost_model.name!r} does not describe this machine"
    profiled, here = cost_model.table.meta.get("device", {}), device_info()
    if (profiled.get("cpu"), profiled.get("cores")) != (here["cpu"], here["cores"]):
        return (f"the table was profiled on {profiled.get('cpu')} ({profiled.get('cores')} cores), "
                f"not on this machine; verify on the target")
    return None


def measure_top_candidates(history: pd.DataFrame, analysis: ModelAnalysis, table: LookupTableCostModel,
                           budget: Budget, top: int) -> pd.DataFrame:
    """The ``top`` most accurate feasible candidates (one per architecture) and the seed rules'
    candidates, measured round-robin.

    Columns: episode, score, latency_ms (predicted), measured_ms, dense_measured_ms (the dense
    model in the same passes), adjusted_ms (measured on the table's clock, see the module note),
    fits (adjusted_ms within the budget + the export tolerance), share_of_chosen and retimed_against
    (:func:`retime_rejected`), most accurate first.
    """
    ok = top_candidates(history, top)  # seed rules always timed too
    measured = _measured(analysis, table)
    frame = ok[["episode", "score", "latency_ms"]].reset_index(drop=True)
    *times, dense_ms = measured.latencies([json.loads(k) for k in ok["kept"]] + [{}])
    frame["measured_ms"] = times
    frame["dense_measured_ms"] = dense_ms
    frame["adjusted_ms"] = frame["measured_ms"] * (budget.dense / dense_ms)
    frame["fits"] = [budget.fits(ms, MEASURED_TOLERANCE) for ms in frame["adjusted_ms"]]
    return retime_rejected(frame, history, measured, budget)


def retime_rejected(frame: pd.DataFrame, history: pd.DataFrame, measured: MeasuredLatencyCostModel,
                    budget: Budget) -> pd.DataFrame:
    """Candidates more accurate than the best that fits, but measured over budget, timed again each
    beside that one (:meth:`~MeasuredLatencyCostModel.shares_of`) and judged by their share of it.

    A machine whose speed switches in the middle of a pass reads the candidates on one side of the
    switch slow and the rest fast (all ten searched candidates 1.22-1.25x over budget, the seed rules
    of the same predicted latency within it); timed alternately with the one that fits, a candidate
    as fast as it is within the budget too. A candidate the table mispredicted is still as much
    slower than it. Adds ``share_of_chosen`` and ``retimed_against``; updates ``adjusted_ms`` and ``fits``.
    """
    frame = frame.copy()
    frame["share_of_chosen"] = float("nan")
    frame["retimed_against"] = pd.array([pd.NA] * len(frame), dtype="Int64")
    fitting = frame.index[frame["fits"].astype(bool)]
    if fitting.empty or fitting[0] == frame.index[0]:
        return frame
    chosen, rejected = fitting[0], frame.index[:fitting[0]]
    kept = history.set_index("episode")["kept"]
    timed = measured.shares_of([json.loads(kept[frame.loc[i, "episode"]]) for i in rejected],
                               json.loads(kept[frame.loc[chosen, "episode"]]))
    for i, share in zip(rejected, timed.shares):
        frame.loc[i, ["share_of_chosen", "retimed_against"]] = share, frame.loc[chosen, "episode"]
        frame.loc[i, "adjusted_ms"] = share * frame.loc[chosen, "adjusted_ms"]
        frame.loc[i, "fits"] = budget.fits(frame.loc[i, "adjusted_ms"], MEASURED_TOLERANCE)
    return frame


def table_miss(analysis: ModelAnalysis, table: LookupTableCostModel, budget: Budget,
               kept: dict[str, int]) -> float:
    """How much slower this machine runs ``kept`` (an architecture at the budget) than ``table``
    predicts, on the table's clock: its share of the dense model timed beside it, times the table's
    dense figure, over the table's prediction. Taken before a search, so that a table that is off
    for this machine is named in seconds, not after the search's verification."""
    share = _measured(analysis, table).shares_of([kept], {}).shares[0]
    return share * budget.dense / checked_cost(table, kept).value(budget.metric)


def table_fix(budget_spec: str, suggested: str | None) -> str:
    """What to do about a latency table that is off for this machine, as both warnings say it."""
    keep = (f", or keep it and search with --budget {suggested}, which these timings put within {budget_spec} "
            f"here" if suggested else "")
    return f"profile the table again on this machine (autoprune profile){keep}"


def check_table(parts: Assembled, budget_spec: str, verify_top: int) -> TableCheckRecord | None:
    """Before the first episode, where the search's verification will time its candidates: one
    architecture at the budget (the dense widths projected onto it) timed here beside the dense
    model (:func:`table_miss`); a warning with the fix when this machine runs it over the table's
    prediction by more than the verification's tolerance (which would reject every candidate)."""
    budget, env = parts.budgets[0], parts.env
    if skip_reason(verify_top, parts.cost_model, budget):
        return None
    start = time.perf_counter()
    kept = env.rules(0)[1].project({g.name: env.choices.highest(g.name) for g in env.groups})
    miss = table_miss(parts.analysis, parts.cost_model, budget, kept)
    record: TableCheckRecord = {"architecture": kept, "measured_over_predicted": round(miss, 4)}
    if miss > 1 + MEASURED_TOLERANCE:
        record["suggested_budget"] = BudgetSpec.parse(budget_spec).tightened(miss)
        tqdm.write(f"warning: this machine runs an architecture at the budget {miss:.3g}x what the latency table "
                   f"predicts (timed beside the dense model), so the candidates the table puts within {budget_spec} "
                   f"will measure over it here; {table_fix(budget_spec, record['suggested_budget'])}")
    record["seconds"] = round(time.perf_counter() - start, 2)
    return record


def _measured(analysis: ModelAnalysis, table: LookupTableCostModel) -> MeasuredLatencyCostModel:
    """Measured latency under the settings ``table`` was profiled with."""
    settings = table.table.meta.get("settings", {})
    return MeasuredLatencyCostModel(analysis, LatencySettings(
        "onnxruntime", int(settings.get("batch_size", 1)), int(settings.get("threads", 1)),
        provider=str(settings.get("provider", "CPUExecutionProvider"))))


def verdict(frame: pd.DataFrame, budget: Budget, spec: BudgetSpec) -> VerificationRecord:
    """What the verification found, for ``summary.json``. When no candidate fits: by how much the
    machine runs them over the table's prediction (the median ratio, on the table's clock) and the
    budget ``spec`` (the user's) divided by it, which a search again would need."""
    fitting = frame[frame["fits"]]
    chosen = None if fitting.empty else fitting.iloc[0]
    ratios = frame["adjusted_ms"] / frame["latency_ms"]
    worst = float(ratios.max()) if len(frame) else float("nan")
    dense_ms = float(frame["dense_measured_ms"].iloc[0]) if len(frame) else float("nan")
    advice: VerificationRecord = {}
    if chosen is None and len(frame):
        miss = float(ratios.median())
        advice = {"measured_over_predicted": round(miss, 4)}
        if miss > 1.0:
            advice["suggested_budget"] = spec.tightened(miss)
    return {**advice, "candidates": len(frame), "chosen_episode": None if chosen is None else int(chosen["episode"]),
            "chosen_measured_ms": None if chosen is None else float(chosen["measured_ms"]),
            "chosen_adjusted_ms": None if chosen is None else float(chosen["adjusted_ms"]),
            "budget_ms": budget.value, "tolerance": MEASURED_TOLERANCE,
            "dense_table_ms": budget.dense, "dense_measured_ms": dense_ms,
            "machine_speed": round(budget.dense / dense_ms, 4) if dense_ms == dense_ms else None,
            "retimed": int(frame["retimed_against"].notna().sum()) if "retimed_against" in frame else 0,
            "worst_measured_over_predicted": round(worst, 4)}
