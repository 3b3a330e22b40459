"""``autoprune supernet``: train the once-for-all width supernet a search scores with (``--scorer supernet``)."""

from __future__ import annotations

import argparse
import dataclasses

from autoprune.cli.common import prepare_out
from autoprune.cli.search_cmd import add_search_args, config_from_args
from autoprune.search import SearchRun


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("supernet", help="train a width supernet for --scorer supernet (resumable, reusable)")
    add_search_args(p)
    p.add_argument("--epochs", type=int, default=2, help="training epochs (the search's --supernet-epochs)")
    p.add_argument("--out", default="runs/supernet", help="supernet folder (pass it to search as --supernet)")
    p.set_defaults(func=run, resume=False)


def run(args: argparse.Namespace) -> int:
    out = prepare_out(args.out)
    config = config_from_args(args, out=str(out))  # a latency table profiled here lands beside the supernet
    config = dataclasses.replace(config, scorer="supernet", supernet=str(out), supernet_epochs=args.epochs).validate()
    SearchRun(config, progress=not args.quiet).prepare()  # builds the search's pieces: trains the supernet
    print(f"supernet trained for {args.epochs} epochs in {out}; search with: autoprune search --scorer supernet "
          f"--supernet {out} --supernet-epochs {args.epochs} (and this command's model, space and budgets)")
    return 0
