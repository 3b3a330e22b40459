"""Re-time a head-to-head run's exported policies round-robin: was an export over its
budget because the lookup table mispredicted it, or because its one measurement was disturbed?

Every ``best_policy.json`` under ``<run>/runs/<model>/`` is rebuilt (channels removed by index,
which does not change latency), timed with the dense model round-robin (ONNX Runtime, 1 thread,
batch 1, best of 10 pass medians), and set beside the run's table prediction and export figure; ``retimed_share_of_dense`` is
its share of the dense model timed in the same passes (what a budget of ``50%`` promises).
Writes ``<run>/retimed.csv``. Usage: python benchmarks/retime_policies.py results/head_to_head_quick_mobilenetv2
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd
import torch

from autoprune.analysis import analyse_model
from autoprune.costs import LookupTableCostModel, MeasuredLatencyCostModel
from autoprune.latency import LatencySettings
from autoprune.models import create_model


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("run", help="a head-to-head results folder (with tables/ and runs/)")
    args = parser.parse_args()
    run = Path(args.run)
    rows = []
    for model_dir in sorted((run / "runs").iterdir()):
        name = model_dir.name
        analysis = analyse_model(create_model(name).eval(), torch.randn(1, 1, 28, 28))
        lut = LookupTableCostModel(analysis, run / "tables" / f"{name}.csv")
        found = []
        for policy in sorted(model_dir.glob("*/*/**/best_policy.json")):
            budget, method = policy.relative_to(model_dir).parts[:2]
            # a searched method's seed folder holds its own export; a one-shot rule's search/ serves every seed
            export = next(policy.parent.glob("export/export.json"), None) or \
                next(policy.parent.parent.glob("seed*/export/export.json"), None)
            found.append((budget, method, json.loads(policy.read_text())["channels"],
                          json.loads(export.read_text()) if export else {}))
        measured = MeasuredLatencyCostModel(analysis, LatencySettings("onnxruntime", 1, 1, repeats=20, rounds=10))
        times = measured.latencies([{}] + [arch for _, _, arch, _ in found])
        for (budget, method, arch, export), ms in zip(found, times[1:]):
            rows.append({"model": name, "budget": budget, "method": method, "predicted_ms": lut.latency(arch),
                         "export_ms": export.get("latency_ms"), "budget_ms": export.get("budget_ms"),
                         "retimed_ms": ms, "retimed_over_predicted": ms / lut.latency(arch),
                         "retimed_share_of_dense": ms / times[0], "dense_retimed_ms": times[0],
                         "dense_predicted_ms": lut.latency({}), "dense_measured_at_profiling_ms": lut.measured_dense()})
    frame = pd.DataFrame(rows)
    frame.to_csv(run / "retimed.csv", index=False)
    print(frame.round(4).to_string(index=False))


if __name__ == "__main__":
    main()
