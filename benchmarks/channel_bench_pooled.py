"""Random search minus each searcher at 200 queries, paired by seed, over the seeds of several
``channel_bench.py`` folders of one table together (e.g. seeds 0-19 and a replication on 20-39).

A searcher's lead of ~0.04 point with a seed-to-seed spread of ~0.09 sits near two paired standard
errors at 20 seeds; pooling independent seed sets says whether the lead is real. A seed present
in two folders for one method is refused (it would be counted twice).

Writes ``OUT`` (markdown: one paired table per table and budget). Usage:
python benchmarks/channel_bench_pooled.py --folders results/channel_bench_five_repeats/resnet
       results/channel_bench_seeds_20_39/resnet [--folders ...mobilenet ...] --out DIR/pooled.md
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd
from channel_bench import PAIRED_AT, paired_lines
from common import ROOT

from autoprune.atomic import write_text_atomic


def pooled_curves(folders: list[Path]) -> pd.DataFrame:
    """The curves of ``folders`` together; an error when two folders hold one (method, seed)."""
    missing = [str(f) for f in folders if not (f / "curves.csv").is_file()]
    if missing:
        raise SystemExit(f"{missing[0]} holds no curves.csv; give folders that benchmarks/channel_bench.py wrote")
    curves = pd.concat([pd.read_csv(f / "curves.csv") for f in folders], ignore_index=True)
    rows = curves[curves.queries == PAIRED_AT].groupby(["space", "budget", "method", "seed"]).size()
    if (rows > 1).any():
        twice = rows[rows > 1].index[0]
        raise SystemExit(f"{twice} is in more than one of {[str(f) for f in folders]}; pool disjoint seeds")
    return curves


def report(groups: list[list[Path]]) -> str:
    """The paired tables of every table's pooled folders."""
    lines = ["# Random search minus each searcher at 200 queries, seeds pooled", ""]
    for folders in groups:
        curves = pooled_curves(folders)
        lines += [f"Folders: {', '.join(f'`{f}`' for f in folders)}", ""]
        for (space, budget), part in curves.groupby(["space", "budget"]):
            lines += [f"## {space}, {budget:.0%}", "", *paired_lines(part, PAIRED_AT), ""]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--folders", nargs="+", action="append", required=True, type=Path,
                   help="channel_bench.py output folders of one table (repeat the flag for another table)")
    p.add_argument("--out", required=True, type=Path, help="markdown file to write")
    args = p.parse_args()
    text = report(args.folders)
    write_text_atomic(args.out, text + "\n")
    print(text)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT / "benchmarks"))
    main()
