"""Per-group features for an agent, after AMC's layer embedding (He et al. 2018, section 3.2)."""

from __future__ import annotations

import pandas as pd

from autoprune.analysis.groups import ModelAnalysis

KIND_CODES = {"conv": 0, "depthwise": 1, "linear": 2, "residual": 3}
FEATURE_COLUMNS = ["index", "kind", "channels", "in_channels", "kernel", "stride", "fmap",
                   "flops", "params"]


def group_features(analysis: ModelAnalysis) -> pd.DataFrame:
    """One row per group (index = group name): AMC's static features, un-normalised.

    ``flops``/``params`` count the MACs/weights of every layer the group touches, as producer or
    consumer (and the matmuls of the attention whose heads it is), so they say how much cost the
    group controls.
    """
    rows = []
    layers = {spec.name: spec for spec in analysis.layers}
    for i, g in enumerate(analysis.groups):
        root = layers[g.name]
        touched = [layers[n] for n in dict.fromkeys(g.producers + g.consumers + g.heads) if n in layers]
        rows.append({
            "group": g.name, "index": i, "kind": KIND_CODES[g.kind], "channels": g.channels,
            "in_channels": root.in_channels, "kernel": root.kernel[0], "stride": root.stride,
            "fmap": root.out_hw[0] * root.out_hw[1],
            "flops": sum(s.macs() for s in touched), "params": sum(s.params() for s in touched),
        })
    return pd.DataFrame(rows).set_index("group")
