"""Per-group features for an agent, after AMC's layer embedding (He et al. 2018, section 3.2)."""

from __future__ import annotations

import pandas as pd

from autoprune.analysis.groups import ModelAnalysis
from autoprune.analysis.layers import LayerSpec

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
        touched = [layers[n] for n in dict.fromkeys(g.producers + g.consumers + g.heads) if n in layers]
        root = layers.get(g.name) or _lookup_root(analysis, g.name, touched)
        rows.append({
            "group": g.name, "index": i, "kind": KIND_CODES[g.kind], "channels": g.channels,
            "in_channels": root.in_channels, "kernel": root.kernel[0], "stride": root.stride,
            "fmap": root.out_hw[0] * root.out_hw[1],
            "flops": sum(s.macs() for s in touched), "params": sum(s.params() for s in touched),
        })
    return pd.DataFrame(rows).set_index("group")


def _lookup_root(analysis: ModelAnalysis, name: str, touched: list[LayerSpec]) -> LayerSpec:
    """An embedding's features as a layer's: its vocabulary in, over the tokens its consumers see."""
    module = analysis.model.get_submodule(name)
    tokens = touched[0].in_hw if touched else (1, 1)
    return LayerSpec(name, "linear", int(module.num_embeddings), int(module.embedding_dim), 1, (1, 1), 1, tokens, tokens)
