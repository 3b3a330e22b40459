"""``autoprune profile``: build a latency lookup table for a model on this machine."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from autoprune.cli.common import add_latency_args, ensure_writable_dir, latency_settings
from autoprune.cli.loading import add_model_args, resolve_analysis, resolve_model
from autoprune.costs import LatencyTable, profile_latency_table
from autoprune.errors import ConfigError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("profile", help="profile a latency lookup table with ONNX Runtime (CSV)")
    p.add_argument("model_name", nargs="?", default=None, metavar="MODEL",
                   help="built-in model name or file.py:factory (the same as --model)")
    add_model_args(p)
    p.add_argument("--out", default=None, help="table file (default: runs/tables/MODEL.csv)")
    p.add_argument("--round-to", type=int, default=8,
                   help="profile channel counts that are multiples of this (use the search's --round-to)")
    add_latency_args(p, "profiling")
    p.add_argument("--calibration", type=int, default=None,
                   help="whole-model measurements for calibration (default: 2 per fitted term, at least 80)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.round_to < 1 or (args.calibration or 0) < 0:
        raise ConfigError("--round-to must be >= 1 and --calibration >= 0")
    settings = latency_settings(args, warmup=10, repeats=50)
    if args.model_name is not None:
        if args.model not in ("resnet20", args.model_name):
            raise ConfigError(f"two models given ({args.model_name!r} and --model {args.model!r}); give one")
        args.model = args.model_name
    model, source = resolve_model(args)
    name = source.ref
    out = Path(args.out or f"runs/tables/{Path(name.split(':')[-1] if not source.is_builtin else name).name}.csv")
    analysis = resolve_analysis(model, args, source)
    ensure_writable_dir(out.parent)
    start = time.perf_counter()
    table = profile_latency_table(analysis, name, round_to=args.round_to, settings=settings,
                                  calibration_samples=args.calibration)
    table.save(out)
    dense = table.predict(analysis.layers, {})
    print(f"profiled {len(table.tables)} layers of {name} in {time.perf_counter() - start:.1f} s "
          f"(calibration scale {table.scale:.3f}, offset {table.offset:.4f} ms; dense model "
          f"{table.calibration.dense_ms:.4f} ms measured, {dense:.4f} ms predicted); saved {out}")
    hint = alignment_hint(table, dense, args.round_to)
    if hint:
        print(hint)
    return 0


def alignment_hint(table: LatencyTable, dense_ms: float, round_to: int) -> str | None:
    """A line advising a coarser ``--round-to`` when off-block channel counts cost > 1 % of dense."""
    per_block: dict[int, float] = {}
    for tolls in table.calibration.alignment_tolls.values():
        for block, ms in tolls.items():
            per_block[int(block)] = per_block.get(int(block), 0.0) + ms
    costly = [b for b, ms in sorted(per_block.items()) if round_to % b != 0 and ms > 0.01 * dense_ms]
    if not costly:
        return None
    b = costly[-1]
    return (f"note: on this machine channel counts off multiples of {b} cost up to {per_block[b]:.4f} ms "
            f"({per_block[b] / dense_ms:.1%} of dense) in layout changes; the table prices them, "
            f"and searching with --round-to {b} avoids them")
