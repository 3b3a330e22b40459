"""``autoprune apply``: a policy file + the dense model -> a physically pruned model."""

from __future__ import annotations

import argparse

from autoprune.cli.common import ensure_writable_dir
from autoprune.cli.loading import add_data_args, resolve_splits
from autoprune.errors import ConfigError
from autoprune.policy import PruningPolicy
from autoprune.workflow import apply_stage


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("apply", help="prune a model to a policy for real (writes model.pt, apply.json)")
    p.add_argument("policy", help="policy file (best_policy.json of a search)")
    p.add_argument("--model", default=None, help="built-in model (default: the one the policy names)")
    p.add_argument("--weights", default=None, help="dense checkpoint (default: the shipped weights)")
    add_data_args(p)
    p.add_argument("--importance", default=None, help="channel criterion (default: the policy's)")
    p.add_argument("--bn-batches", type=int, default=20, help="BN recalibration batches after pruning")
    p.add_argument("--out", default="runs/apply", help="output folder")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    model = args.model or PruningPolicy.load(args.policy).model
    if not model:
        raise ConfigError(f"policy {args.policy} names no model; pass --model NAME")
    out = ensure_writable_dir(args.out)
    s = apply_stage(args.policy, model, args.weights, resolve_splits(args), out, args.importance,
                    args.bn_batches, require_weights=args.data != "synthetic")
    print(f"pruned {s['dense_params']} -> {s['pruned_params']} parameters; test accuracy {s['dense_test_acc']:.4f} "
          f"dense, {s['pruned_test_acc_raw']:.4f} pruned, {s['pruned_test_acc_bn']:.4f} after BN "
          f"recalibration; saved {out / 'model.pt'} (fine-tune it with: autoprune finetune {out / 'model.pt'})")
    return 0
