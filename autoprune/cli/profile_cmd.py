"""``autoprune profile``: build a latency lookup table for a model on this machine."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from autoprune.cli.common import ensure_writable_dir
from autoprune.cli.loading import add_model_args, resolve_analysis, resolve_model
from autoprune.costs import profile_latency_table
from autoprune.errors import ConfigError
from autoprune.latency import LatencySettings


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("profile", help="profile a latency lookup table with ONNX Runtime (CSV)")
    add_model_args(p)
    p.add_argument("--out", default=None, help="table file (default: runs/tables/MODEL.csv)")
    p.add_argument("--round-to", type=int, default=8,
                   help="profile channel counts that are multiples of this (use the search's --round-to)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--calibration", type=int, default=60, help="whole-model measurements for calibration")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.round_to < 1 or args.threads < 1 or args.batch_size < 1 or args.calibration < 0:
        raise ConfigError("--round-to must be >= 1, --threads and --batch-size >= 1, --calibration >= 0")
    out = Path(args.out or f"runs/tables/{args.model}.csv")
    ensure_writable_dir(out.parent)
    model, name = resolve_model(args)
    analysis = resolve_analysis(model, args)
    start = time.perf_counter()
    table = profile_latency_table(analysis, name, round_to=args.round_to, settings=LatencySettings(
        batch_size=args.batch_size, threads=args.threads, warmup=10, repeats=50),
        calibration_samples=args.calibration)
    table.save(out)
    print(f"profiled {len(table.tables)} layers of {name} in {time.perf_counter() - start:.1f} s "
          f"(calibration scale {table.scale:.3f}, offset {table.offset:.4f} ms); saved {out}")
    return 0
