"""``autoprune sensitivity``: accuracy of each group pruned alone at each ratio (table + plot)."""

from __future__ import annotations

import argparse

from autoprune.cli.common import add_score_arg, prepare_out
from autoprune.cli.loading import add_data_args, add_model_args, model_source, resolve_splits
from autoprune.errors import ConfigError
from autoprune.scoring import load_score
from autoprune.sensitivity import DEFAULT_RATIOS
from autoprune.workflow import sensitivity_stage


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sensitivity", help="per-group accuracy vs. ratio sweep (sensitivity.csv/.png)")
    add_model_args(p)
    add_data_args(p)
    p.add_argument("--ratios", default=",".join(str(r) for r in DEFAULT_RATIOS), help="comma-separated ratios")
    p.add_argument("--val-size", type=int, default=2000, help="validation images per point")
    p.add_argument("--bn-batches", type=int, default=5)
    p.add_argument("--round-to", type=int, default=1)
    p.add_argument("--importance", default="l1")
    add_score_arg(p, "score")
    p.add_argument("--out", default="runs/sensitivity", help="output folder")
    p.set_defaults(func=run)


def parse_ratios(text: str) -> list[float]:
    """``"0.1,0.5"`` -> ``[0.1, 0.5]`` with a one-line error for anything else."""
    try:
        ratios = [float(r) for r in text.split(",") if r.strip()]
    except ValueError as exc:
        raise ConfigError(f"--ratios must be comma-separated numbers, got {text!r}") from exc
    if not ratios or not all(0.0 <= r < 1.0 for r in ratios):
        raise ConfigError(f"--ratios must be numbers in [0, 1), got {text!r}")
    return ratios


def run(args: argparse.Namespace) -> int:
    ratios, score = parse_ratios(args.ratios), load_score(args.score)[0]
    source, splits = model_source(args), resolve_splits(args)
    out = prepare_out(args.out)
    frame = sensitivity_stage(source, splits, out, ratios, args.val_size, args.bn_batches, args.round_to,
                              args.importance, args.exclude, require_weights=args.data != "synthetic", score=score)
    worst = frame.groupby("group", sort=False)["drop"].mean().sort_values(ascending=False)
    print(f"dense {frame.attrs['dense_score']:.4f}; most sensitive: "
          + ", ".join(f"{g} ({d:+.3f} mean drop)" for g, d in worst.head(3).items()))
    print(f"saved {out / 'sensitivity.csv'} and {out / 'sensitivity.png'}")
    return 0
