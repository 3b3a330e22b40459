"""``autoprune dynamic``: policies for several budgets -> one model whose width is switched at run time."""

from __future__ import annotations

import argparse

from autoprune.cli.common import add_latency_args, add_overwrite_arg, latency_settings, prepare_out
from autoprune.cli.loading import add_data_args, add_model_args, model_source, resolve_splits
from autoprune.data import parse_augment
from autoprune.errors import ConfigError
from autoprune.finetune import FinetuneConfig
from autoprune.policy import PruningPolicy
from autoprune.workflow.dynamic_stage import dynamic_stage
from autoprune.workflow.stages import policy_model_source


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("dynamic", help="nest policies for several budgets into one model with switchable width; "
                                       "export every variant (variants.json, dynamic.pt)")
    p.add_argument("policies", nargs="+", help="policy files, one per budget (best_policy.json of searches)")
    add_model_args(p, default=None, exclude=False)  # the policies say which modules were excluded
    add_data_args(p)
    p.add_argument("--bn-batches", type=int, default=20, help="BN recalibration batches per variant")
    add_latency_args(p, "timing the variants")
    p.add_argument("--epochs", type=int, default=0,
                   help="fine-tune every width jointly, shared weights (sandwich rule, in-place distillation)")
    p.add_argument("--lr", type=float, default=0.01, help="learning rate of that fine-tune")
    p.add_argument("--no-distill", action="store_true", help="train the widest width on labels only, no dense teacher")
    p.add_argument("--out", default="runs/dynamic", help="output folder")
    add_overwrite_arg(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.epochs < 0 or args.lr <= 0:
        raise ConfigError("--epochs must be >= 0 and --lr positive")
    parse_augment(args.augment)
    first = PruningPolicy.load(args.policies[0])
    for path in args.policies[1:]:
        PruningPolicy.load(path)  # every file checked before any work
    source = model_source(args) if args.model else policy_model_source(first, f"policy {args.policies[0]}", args.weights)
    settings = latency_settings(args)
    splits = resolve_splits(args)
    out = prepare_out(args.out, overwrite=args.overwrite, finished=("dynamic.pt",))
    finetune = FinetuneConfig(epochs=args.epochs, lr=args.lr, augment=parse_augment(args.augment),
                              device=args.torch_device) if args.epochs else None
    reports = dynamic_stage(args.policies, source, splits, out, settings, args.bn_batches,
                            require_weights=args.data != "synthetic", finetune=finetune,
                            distill=not args.no_distill, progress=not args.quiet)
    for r in reports:
        budget = "" if r.budget_ms is None else f" (budget {r.budget_ms:.4f} ms: {'within' if r.within_budget else 'OVER'}"
        if r.share_of_dense is not None and r.budget_share_of_dense is not None:
            budget += f", {r.share_of_dense:.1%} of the dense model timed alongside, budget {r.budget_share_of_dense:.1%}"
        budget += ")" if budget else ""
        cut = f"; nesting cut {sum(r.channels_cut_by_nesting.values())} channels" if r.channels_cut_by_nesting else ""
        print(f"{r.label:>6}: test accuracy {r.test_acc:.4f}, {r.measured_ms:.4f} ms{budget}{cut}")
    print(f"variants in {out}/variants.json; weights once in {out}/dynamic.pt "
          f"(autoprune.dynamic.load_dynamic, then set_budget / set_latency_ms)")
    return 0
