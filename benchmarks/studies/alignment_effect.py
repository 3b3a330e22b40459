"""Channel-block alignment: is latency monotone in channels? For every group of
ResNet-20 and MobileNetV2-small, set to the largest multiple of 16 up to its width and to 8 fewer
(an odd multiple of 8), everything else dense; all models timed round-robin (ONNX Runtime,
1 thread, batch 1, best of 10 pass medians), next to the lookup table's prediction.

Writes results/alignment_effect/: <model>.csv (one row per group), summary.json.
Usage: python benchmarks/studies/alignment_effect.py [--models resnet20 mobilenetv2_small] [--tables results/cost_fidelity]
"""

from __future__ import annotations

import argparse

import _path  # noqa: F401 - benchmarks/ on the import path (studies/_path.py)
import pandas as pd
import torch
from common import ROOT, result_dir

from autoprune.analysis import analyse_model
from autoprune.atomic import write_json_atomic
from autoprune.costs import LookupTableCostModel, MeasuredLatencyCostModel
from autoprune.latency import LatencySettings
from autoprune.models import create_model


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", nargs="+", default=["resnet20", "mobilenetv2_small"])
    parser.add_argument("--tables", default="results/cost_fidelity", help="folder with <model>_table.csv")
    args = parser.parse_args()
    out = result_dir("alignment_effect")
    summary = []
    for name in args.models:
        analysis = analyse_model(create_model(name).eval(), torch.randn(1, 1, 28, 28))
        lut = LookupTableCostModel(analysis, ROOT / args.tables / f"{name}_table.csv")
        cuts = []
        for g in analysis.groups:
            k16 = g.channels // 16 * 16
            if k16 >= 16:
                cuts.append((g.name, k16, k16 - 8))
        archs = [{}] + [{g: k} for g, k16, k8 in cuts for k in (k16, k8)]
        measured = MeasuredLatencyCostModel(analysis, LatencySettings("onnxruntime", 1, 1, repeats=20, rounds=10))
        times = measured.latencies(archs)
        rows = []
        for i, (g, k16, k8) in enumerate(cuts):
            t16, t8 = times[1 + 2 * i], times[2 + 2 * i]
            rows.append({"group": g, "on_block": k16, "off_block": k8, "on_block_ms": t16, "off_block_ms": t8,
                         "off_minus_on_pct": 100 * (t8 / t16 - 1),
                         "lut_on_block_ms": lut.latency({g: k16}), "lut_off_block_ms": lut.latency({g: k8})})
        frame = pd.DataFrame(rows)
        frame.to_csv(out / f"{name}.csv", index=False)
        slower = frame[frame["off_block_ms"] > frame["on_block_ms"]]
        summary.append({"model": name, "dense_ms": times[0], "groups_cut": len(frame),
                        "fewer_channels_but_slower": slower["group"].tolist(),
                        "worst_pct": float(frame["off_minus_on_pct"].max()),
                        "lut_agrees_on_order": int(((frame["lut_off_block_ms"] > frame["lut_on_block_ms"])
                                                    == (frame["off_block_ms"] > frame["on_block_ms"])).sum())})
        print(frame.round(4).to_string(index=False))
    write_json_atomic(out / "summary.json", summary)
    print(summary)


if __name__ == "__main__":
    main()
