"""``autoprune finetune``: fine-tune a pruned model (or prune gradually, rewind, or sparsify)."""

from __future__ import annotations

import argparse

from autoprune.cli.common import add_overwrite_arg, add_score_arg, prepare_out
from autoprune.cli.loading import (
    add_data_args,
    model_source,
    recorded_signature,
    resolve_splits,
    torch_device,
)
from autoprune.data import parse_augment
from autoprune.finetune import FinetuneConfig
from autoprune.scoring import load_loss, load_score
from autoprune.settings import add_settings, settings_from_args
from autoprune.workflow import FinetuneMode, finetune_stage

D = FinetuneConfig()
MODES = ["gradual_policy", "rewind_from", "iterative_policy", "sparsity", "sparsity_scope"]
ITERATIVE = ["steps", "schedule", "rounds", "epochs_per_step"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("finetune", help="fine-tune a model: plain, gradual pruning, rewinding or sparsity")
    p.add_argument("checkpoint", help="model.pt from apply (or a dense one for --gradual / --sparsity)")
    p.add_argument("--model", default=None,
                   help="the model, when CHECKPOINT is a plain state_dict (built-in name or file.py:factory)")
    p.add_argument("--model-args", default=None, metavar="JSON|YAML", help="keyword arguments of your model factory")
    p.add_argument("--input-shape", default=None, metavar="C,H,W", help="one input's shape (default: the checkpoint's)")
    p.add_argument("--example", default=None, metavar="FILE.py:function",
                   help="a function returning one batch of the model's inputs (default: as the checkpoint records)")
    add_data_args(p)
    add_training_args(p)
    add_task_args(p)
    add_settings(p.add_argument_group("modes (at most one)"), FinetuneMode, only=MODES)
    add_settings(p.add_argument_group("iterative pruning (--iterative, --sparsity with --rounds)"), FinetuneMode,
                 only=ITERATIVE)
    add_settings(p.add_argument_group("polynomial-decay schedule (gradual, sparsity)"), FinetuneMode,
                 skip=MODES + ITERATIVE)
    p.add_argument("--out", default="runs/finetune", help="output folder")
    add_overwrite_arg(p)
    p.add_argument("--output", default=None, metavar="KEY",
                   help="the model output that is scored and trained (the search's --output)")
    p.set_defaults(func=run)


def add_training_args(p: argparse.ArgumentParser, epochs: int = D.epochs) -> None:
    """Optimiser, schedule and distillation options (shared with ``autoprune pipeline``)."""
    t = p.add_argument_group("training")
    add_settings(t, FinetuneConfig)
    p.set_defaults(epochs=epochs)
    t.add_argument("--no-augment", action="store_true", help="no augmentation (the same as --augment none)")
    t.add_argument("--distill", action="store_true", help="knowledge distillation from the dense model")
    t.add_argument("--teacher", default=None, help="dense teacher checkpoint (default: the shipped weights)")


def add_task_args(p: argparse.ArgumentParser) -> None:
    """``--score`` and ``--loss``: what is maximised and what is trained, for tasks beyond classification."""
    add_score_arg(p, "pick the best epoch")
    p.add_argument("--loss", default=None, metavar="FILE.py:FUNCTION",
                   help="training loss FUNCTION(output, target) (default: cross-entropy)")


def training_config(args: argparse.Namespace) -> FinetuneConfig:
    """The fine-tuning hyper-parameters, with one-line errors for impossible values."""
    augment = parse_augment("none" if args.no_augment else getattr(args, "augment", None))
    return FinetuneConfig(**settings_from_args(FinetuneConfig, args), augment=augment,
                          device=torch_device(args)).check()


def run(args: argparse.Namespace) -> int:
    mode = FinetuneMode(**settings_from_args(FinetuneMode, args))
    mode.name  # noqa: B018 - validates that at most one mode is chosen, before loading anything
    (score, score_name), cfg, loss = load_score(args.score), training_config(args), load_loss(args.loss)
    out = prepare_out(args.out, overwrite=args.overwrite, finished=("model.pt",))
    source = model_source(args) if args.model else None
    s = finetune_stage(args.checkpoint, resolve_splits(args, recorded_signature(args.checkpoint)), cfg, out, mode,
                       args.teacher, args.distill,
                       source=source, score=score, loss=loss)
    if s["mode"] in ("iterative", "imp"):
        rows = s["steps" if s["mode"] == "iterative" else "rounds"]
        for row in rows:
            what = (f"{row['params']} weights, {row['latency_ms']} ms" if s["mode"] == "iterative"
                    else f"sparsity {row['mask_sparsity']:.3f}")
            print(f"{s['mode']} {row.get('step', row.get('round'))}: {what}, test {row['test_score']:.4f}")
        print(f"saved {out / 'model.pt'} (every step's model and table in {out})")
        return 0
    extra = ""
    if "sparsity" in s:
        sp = s["sparsity"]
        extra = (f"; weight sparsity {sp['weight_sparsity']:.3f}, {sp['bytes'] / 1e3:.0f} kB raw, "
                 f"{sp['gzip_bytes'] / 1e3:.0f} kB gzipped")
    print(f"{s['mode']} fine-tuning, {args.epochs} epochs in {s['seconds'] / 60:.1f} min: test {score_name} "
          f"{s['test_acc_before']:.4f} -> {s['test_acc']:.4f} (best epoch {s['best_epoch']}){extra}; "
          f"saved {out / 'model.pt'}")
    return 0
