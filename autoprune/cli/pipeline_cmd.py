"""``autoprune pipeline``: search -> apply -> fine-tune -> export, the whole job in one command."""

from __future__ import annotations

import argparse
from pathlib import Path

from autoprune.cli.common import command_line, prepare_out
from autoprune.cli.export_cmd import report
from autoprune.cli.finetune_cmd import add_training_args, training_config
from autoprune.cli.search_cmd import add_search_args, config_from_args
from autoprune.errors import ConfigError
from autoprune.workflow.pipeline import run_pipeline

FINETUNE_EPOCHS = 3  # the main job stays near 10 minutes on 2 cores; more epochs gain a little


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("pipeline", help="search, apply, fine-tune and export in one run folder")
    add_search_args(p)
    add_training_args(p, epochs=FINETUNE_EPOCHS)
    p.add_argument("--out", default="runs/pipeline", help="run folder (search/, apply/, finetune/, export/)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run, skipping finished stages")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    search = config_from_args(args, out=str(Path(args.out) / "search"))
    if search.budgets:
        raise ConfigError("pipeline prunes for one --budget; for several, run search --budgets, then "
                          "autoprune dynamic on its policies")
    out = prepare_out(args.out, resume=args.resume)
    s = run_pipeline(search, training_config(args), out, args.distill, search.latency_settings(), args.resume,
                     command_line())
    print(f"test {s['score']}: dense {s['dense_test_acc']:.4f}, pruned {s['pruned_test_acc_bn']:.4f}, "
          f"fine-tuned {s['finetuned_test_acc']:.4f} ({s['finetune_epochs']} epochs)")
    print(report(s, str(out / "export")))
    return 0
