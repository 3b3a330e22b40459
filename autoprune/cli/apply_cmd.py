"""``autoprune apply``: a policy file + the dense model -> a physically pruned model."""

from __future__ import annotations

import argparse

from autoprune.cli.common import add_overwrite_arg, add_score_arg, prepare_out
from autoprune.cli.loading import add_data_args, add_model_args, model_source, resolve_splits
from autoprune.errors import ConfigError
from autoprune.policy import PruningPolicy
from autoprune.scoring import load_score
from autoprune.workflow import apply_stage
from autoprune.workflow.stages import policy_model_source


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("apply", help="prune a model to a policy for real (writes model.pt, apply.json)")
    p.add_argument("policy", help="policy file (best_policy.json of a search)")
    add_model_args(p, default=None, exclude=False)  # the policy says which modules were excluded
    add_data_args(p)
    p.add_argument("--importance", default=None, help="channel criterion (default: the policy's)")
    add_score_arg(p, "report test and validation scores (the search's --score)")
    p.add_argument("--bn-batches", type=int, default=None,
                   help="BN recalibration batches after pruning (default: the search's, so the score matches)")
    p.add_argument("--init", default="dense", choices=["dense", "supernet"],
                   help="the pruned model's weights: the dense model's channels, or the supernet's slice (--supernet)")
    p.add_argument("--supernet", default=None, metavar="DIR", help="the supernet folder for --init supernet")
    p.add_argument("--out", default="runs/apply", help="output folder")
    add_overwrite_arg(p)
    p.add_argument("--output", default=None, metavar="KEY",
                   help="the model output that is scored and trained (the search's --output)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if (args.init == "supernet") != (args.supernet is not None):
        raise ConfigError("--init supernet and --supernet DIR go together (the supernet's folder, e.g. the search's "
                          "<out>/supernet)")
    policy = PruningPolicy.load(args.policy)
    source = model_source(args) if args.model else policy_model_source(policy, f"policy {args.policy}", args.weights)
    if args.model is None and (args.model_args or args.input_shape or args.example):
        source = model_source(args, policy.model)
    score, score_name = load_score(args.score)
    splits = resolve_splits(args, policy.signature)
    out = prepare_out(args.out, overwrite=args.overwrite, finished=("model.pt",))
    s = apply_stage(args.policy, source, splits, out, args.importance,
                    args.bn_batches, require_weights=args.data != "synthetic", score=score, supernet=args.supernet)
    print(f"pruned {s['dense_params']} -> {s['pruned_params']} parameters; test {score_name} {s['dense_test_acc']:.4f} "
          f"dense, {s['pruned_test_acc_raw']:.4f} pruned, {s['pruned_test_acc_bn']:.4f} after BN "
          f"recalibration; saved {out / 'model.pt'} (fine-tune it with: autoprune finetune {out / 'model.pt'})")
    return 0
