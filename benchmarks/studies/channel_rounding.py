"""Channel rounding and measurement noise on this CPU (ONNX Runtime, 1 thread, batch 1).

1. Dense vs uniformly pruned models with and without rounding channel counts to multiples of 8.
2. Repeatability: 5 repeats of one median over 200 consecutive runs vs 5 repeats of the robust
   estimator (smallest of 5 round medians of 40 runs) on the same model.
Writes results/channel_rounding/summary.json.
"""

from __future__ import annotations

import _path  # noqa: F401 - benchmarks/ on the import path (studies/_path.py)
import numpy as np
import torch
from common import result_dir

from autoprune.analysis import analyse_model
from autoprune.atomic import write_json_atomic
from autoprune.latency import LatencySettings, median_ms, robust_median_ms
from autoprune.models import create_model
from autoprune.onnx_export import ort_session, to_onnx_bytes
from autoprune.pruning import architecture_for, prune_physically

SETTINGS = LatencySettings("onnxruntime", 1, 1)


def runner(model: torch.nn.Module):
    x = torch.randn(1, 1, 28, 28)
    session = ort_session(to_onnx_bytes(model, x), 1)
    feed = {"input": x.numpy()}
    return lambda: session.run(None, feed)


def main() -> None:
    out = result_dir("channel_rounding")
    summary = {}
    for name in ("resnet20", "mobilenetv2_small"):
        analysis = analyse_model(create_model(name).eval(), torch.randn(1, 1, 28, 28))
        order = {g.name: torch.arange(g.channels) for g in analysis.groups}
        row = {"dense_ms": robust_median_ms(runner(analysis.model), SETTINGS)}
        for ratio, round_to in ((0.5, 8), (0.47, 1), (0.25, 8), (0.3, 1)):
            arch = architecture_for(analysis.groups, {g.name: ratio for g in analysis.groups}, round_to)
            row[f"uniform_{ratio}_round{round_to}_ms"] = robust_median_ms(
                runner(prune_physically(analysis, order, arch)), SETTINGS)
        rng = np.random.default_rng(0)
        arch = architecture_for(analysis.groups, {g.name: rng.uniform(0, 0.8) for g in analysis.groups}, 8)
        fn = runner(prune_physically(analysis, order, arch))
        row["repeat_single_median_200_ms"] = [median_ms(fn, 30, 200) for _ in range(5)]
        row["repeat_robust_ms"] = [robust_median_ms(fn, SETTINGS) for _ in range(5)]
        summary[name] = row
        print(name, row)
    write_json_atomic(out / "summary.json", summary)


if __name__ == "__main__":
    main()
