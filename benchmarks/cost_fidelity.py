"""Cost-model fidelity: lookup-table and FLOPs predictions vs measured ONNX Runtime latency
(1 thread, batch 1; all policies measured round-robin, each its smallest of 10 pass medians) over
random policies whose channel counts are multiples of 8 (what a search with the default
--round-to 8 produces), for ResNet-20 and MobileNetV2-small. Ablations: the table calibrated
without alignment tolls, and the ground truth timed back to back as before session 4.

Writes results/<name>/ (default cost_fidelity): <model>_points.csv, <model>_table.csv, summary.json,
scatter.png. Usage: python benchmarks/cost_fidelity.py [--policies 100] [--models resnet20 mobilenetv2_small]
[--round-to 8] [--passes 10] [--name cost_fidelity]
"""

from __future__ import annotations

import argparse
import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
from common import result_dir  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402

from autoprune.analysis import analyse_model  # noqa: E402
from autoprune.atomic import write_json_atomic  # noqa: E402
from autoprune.costs import (  # noqa: E402
    FlopsCostModel,
    LatencyTable,
    LookupTableCostModel,
    MeasuredLatencyCostModel,
    profile_latency_table,
)
from autoprune.costs.calibration import calibrate  # noqa: E402
from autoprune.latency import LatencySettings  # noqa: E402
from autoprune.models import create_model  # noqa: E402
from autoprune.pruning import architecture_for  # noqa: E402


def fidelity(pred: np.ndarray, true: np.ndarray) -> dict:
    err = pred / true - 1
    spearman = pd.Series(pred).rank().corr(pd.Series(true).rank())
    return {"within_10pct": float(np.mean(np.abs(err) <= 0.10)), "within_5pct": float(np.mean(np.abs(err) <= 0.05)),
            "mean_abs_error_pct": float(np.mean(np.abs(err)) * 100), "max_abs_error_pct": float(np.max(np.abs(err)) * 100),
            "spearman": float(spearman)}


def table_settings(table: LatencyTable) -> LatencySettings:
    """The measurement settings a table was profiled with."""
    return LatencySettings(**table.meta["settings"])


def run_model(name: str, policies: int, out, seed: int, round_to: int, passes: int) -> dict:
    torch.manual_seed(0)
    analysis = analyse_model(create_model(name).eval(), torch.randn(1, 1, 28, 28))
    start = time.perf_counter()
    table = profile_latency_table(analysis, name, round_to=round_to, seed=1000 + seed)
    profile_s = time.perf_counter() - start
    table.save(out / f"{name}_table.csv")
    lut = LookupTableCostModel(analysis, table)
    flops = FlopsCostModel(analysis.layers)
    measured = MeasuredLatencyCostModel(analysis, LatencySettings("onnxruntime", 1, 1, repeats=20, rounds=passes))
    rng = np.random.default_rng(seed)
    archs = [architecture_for(analysis.groups, {g.name: float(rng.uniform(0, 0.8)) for g in analysis.groups},
                              round_to) for _ in range(policies)]
    start = time.perf_counter()
    with tqdm(total=(policies + 1) * (passes + 1), desc=f"{name}: measuring random policies") as bar:
        times = measured.latencies([{}] + archs, progress=bar.update)
    measure_s = time.perf_counter() - start
    dense_ms, dense_flops = times[0], flops.dense_cost().flops
    rows = []
    for i, (arch, ms) in enumerate(zip(archs, times[1:])):
        f = flops.cost(arch).flops
        rows.append({"policy": i, "measured_ms": ms, "lut_ms": lut.latency(arch),
                     "flops": f, "flops_scaled_ms": dense_ms * f / dense_flops})
    # Ablations on the same policies: the calibration refitted without alignment tolls (same layer
    # grids, fresh calibration measurements), and the ground truth measured the old way (each
    # model's 5 rounds back to back, no interleaving).
    no_tolls = LatencyTable(table.tables, {**table.meta, "calibration": calibrate(
        table, analysis, table_settings(table), table.calibration.samples - 1, 1000 + seed,
        tolls=False).to_dict()})
    back_to_back = MeasuredLatencyCostModel(analysis, LatencySettings("onnxruntime", 1, 1))
    for row, arch in zip(rows, tqdm(archs, desc=f"{name}: back-to-back measurement")):
        row["lut_no_tolls_ms"] = no_tolls.predict(analysis.layers, arch)
        row["back_to_back_ms"] = back_to_back.latency(arch)
    points = pd.DataFrame(rows)
    points.to_csv(out / f"{name}_points.csv", index=False)
    return {"model": name, "groups": len(analysis.groups), "round_to": round_to, "profile_seconds": round(profile_s, 1),
            "ground_truth": {"passes": passes, "calls_per_pass": 20, "seconds": round(measure_s, 1)},
            "dense_measured_ms": dense_ms, "dense_predicted_ms": lut.latency({}), "calibration": table.meta["calibration"],
            "lut": fidelity(points["lut_ms"].to_numpy(), points["measured_ms"].to_numpy()),
            "flops_scaled": fidelity(points["flops_scaled_ms"].to_numpy(), points["measured_ms"].to_numpy()),
            "ablation_lut_without_tolls": fidelity(points["lut_no_tolls_ms"].to_numpy(), points["measured_ms"].to_numpy()),
            "ablation_lut_vs_back_to_back_truth": fidelity(points["lut_ms"].to_numpy(),
                                                           points["back_to_back_ms"].to_numpy()),
            "back_to_back_vs_interleaved_truth": fidelity(points["back_to_back_ms"].to_numpy(),
                                                          points["measured_ms"].to_numpy()),
            "points": points}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--policies", type=int, default=100)
    parser.add_argument("--models", nargs="+", default=["resnet20", "mobilenetv2_small"])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--round-to", type=int, default=8, help="channel rounding of the random policies")
    parser.add_argument("--passes", type=int, default=10, help="round-robin passes of the ground-truth measurement")
    parser.add_argument("--name", default="cost_fidelity", help="results/<name>/ to write")
    args = parser.parse_args()
    out = result_dir(args.name)
    results = [run_model(m, args.policies, out, args.seed, args.round_to, args.passes) for m in args.models]
    fig, axes = plt.subplots(1, len(results), figsize=(5.5 * len(results), 5), squeeze=False)
    for ax, r in zip(axes[0], results):
        p = r["points"]
        ax.scatter(p["measured_ms"], p["lut_ms"], s=12, label=f"lookup table ({r['lut']['within_10pct']:.0%} within ±10%)")
        ax.scatter(p["measured_ms"], p["flops_scaled_ms"], s=12, marker="x",
                   label=f"FLOPs-proportional ({r['flops_scaled']['within_10pct']:.0%} within ±10%)")
        lim = [0, max(p[["measured_ms", "lut_ms", "flops_scaled_ms"]].max()) * 1.05]
        ax.plot(lim, lim, "k-", lw=0.8)
        ax.fill_between(lim, [v * 0.9 for v in lim], [v * 1.1 for v in lim], color="gray", alpha=0.2, label="±10%")
        ax.set(xlim=lim, ylim=lim, xlabel="measured ONNX Runtime latency (ms, 1 thread, batch 1)",
               ylabel="predicted latency (ms)", title=f"{r['model']}: {len(p)} random policies")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "scatter.png", dpi=110)
    summary = [{k: v for k, v in r.items() if k != "points"} for r in results]
    write_json_atomic(out / "summary.json", summary)
    for s in summary:
        print(s)


if __name__ == "__main__":
    main()
