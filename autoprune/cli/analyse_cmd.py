"""``autoprune analyse``: show a model's prunable groups, their features and dense costs."""

from __future__ import annotations

import argparse

from autoprune.analysis import group_features
from autoprune.cli.loading import add_model_args, resolve_analysis, resolve_model
from autoprune.costs import FlopsCostModel
from autoprune.costs.coverage import coverage


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("analyse", help="list a model's prunable channel groups")
    add_model_args(p)
    p.add_argument("--csv", default=None, help="also write the group table to this CSV file")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    model, source = resolve_model(args)
    analysis = resolve_analysis(model, args, source)
    name = source.ref
    features = group_features(analysis)
    features.insert(1, "kind_name", [f"heads of {g.step}" if g.heads else g.kind for g in analysis.groups])
    features["producers"] = [len(g.producers) for g in analysis.groups]
    dense = FlopsCostModel(analysis.layers).dense_cost()
    print(f"{name}: {len(analysis.groups)} prunable groups, {dense.flops / 1e6:.1f} M MACs, "
          f"{dense.params / 1e3:.1f} k weights; output layer(s) {', '.join(analysis.output_layers)} kept whole")
    found = coverage(analysis)
    if found.uncounted_share > 0.001:
        print(f"not priced by the flops, lut and roofline cost models: {100 * found.uncounted_share:.1f} % of "
              f"{found.total_macs / 1e6:.1f} M MACs counted independently ({found.describe()})")
    print(features.drop(columns=["kind"]).to_string())
    for name, why in analysis.kept_whole.items():
        print(f"not prunable: {name} ({why})")
    if args.csv:
        features.to_csv(args.csv)
    return 0
