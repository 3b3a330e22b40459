"""``autoprune finetune``: fine-tune a pruned model (or prune gradually, rewind, or sparsify)."""

from __future__ import annotations

import argparse

from autoprune.cli.common import ensure_writable_dir
from autoprune.cli.loading import add_data_args, model_source, resolve_splits, torch_device
from autoprune.data import parse_augment
from autoprune.errors import ConfigError
from autoprune.finetune import FinetuneConfig
from autoprune.scoring import load_loss, load_score
from autoprune.workflow import FinetuneMode, finetune_stage

D = FinetuneConfig()


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("finetune", help="fine-tune a model: plain, gradual pruning, rewinding or sparsity")
    p.add_argument("checkpoint", help="model.pt from apply (or a dense one for --gradual / --sparsity)")
    p.add_argument("--model", default=None,
                   help="the model, when CHECKPOINT is a plain state_dict (built-in name or file.py:factory)")
    p.add_argument("--model-args", default=None, metavar="JSON|YAML", help="keyword arguments of your model factory")
    p.add_argument("--input-shape", default=None, metavar="C,H,W", help="one input's shape (default: the checkpoint's)")
    add_data_args(p)
    add_training_args(p)
    add_task_args(p)
    m = p.add_argument_group("modes (at most one)")
    m.add_argument("--gradual", metavar="POLICY", default=None,
                   help="prune the dense checkpoint to POLICY gradually while training, then for real")
    m.add_argument("--rewind-from", metavar="EARLY.pt", default=None,
                   help="lottery-ticket rewinding: keep the pruned structure, retrain from these early weights")
    m.add_argument("--iterative", metavar="POLICY", default=None,
                   help="cut the dense checkpoint toward POLICY in --steps steps, fine-tuning after each")
    m.add_argument("--sparsity", type=float, default=None,
                   help="unstructured magnitude pruning to this share of zero weights (torch.nn.utils.prune); "
                        "with --rounds > 1, iterative magnitude pruning (IMP)")
    i = p.add_argument_group("iterative pruning (--iterative, --sparsity with --rounds)")
    i.add_argument("--steps", type=int, default=3, help="prune -> fine-tune cycles toward the policy")
    i.add_argument("--schedule", default="geometric", choices=["geometric", "linear"],
                   help="channels per step: the same share of the remaining (geometric) or the same number")
    i.add_argument("--rounds", type=int, default=1, help="IMP rounds (each prunes a share of the remaining weights)")
    i.add_argument("--epochs-per-step", type=int, default=None,
                   help="fine-tuning epochs after each step or round (default: --epochs split evenly)")
    m.add_argument("--sparsity-scope", default="layer", choices=["layer", "global"])
    s = p.add_argument_group("polynomial-decay schedule (gradual, sparsity)")
    s.add_argument("--begin-step", type=int, default=0)
    s.add_argument("--end-step", type=int, default=None, help="default: half of the training steps")
    s.add_argument("--frequency", type=int, default=100, help="steps between mask updates")
    s.add_argument("--power", type=float, default=3.0)
    s.add_argument("--initial", type=float, default=0.0,
                   help="initial sparsity, or initial share of the final ratios for --gradual")
    p.add_argument("--out", default="runs/finetune", help="output folder")
    p.set_defaults(func=run)


def add_training_args(p: argparse.ArgumentParser, epochs: int = D.epochs) -> None:
    """Optimiser, schedule and distillation options (shared with ``autoprune pipeline``)."""
    t = p.add_argument_group("training")
    t.add_argument("--epochs", type=int, default=epochs)
    t.add_argument("--lr", type=float, default=D.lr, help="peak learning rate (cosine decay to 0)")
    t.add_argument("--optimizer", default=D.optimizer, choices=["sgd", "adamw"])
    t.add_argument("--weight-decay", type=float, default=D.weight_decay)
    t.add_argument("--batch-size", type=int, default=D.batch_size)
    t.add_argument("--ft-seed", type=int, default=D.seed, help="fine-tuning seed")
    t.add_argument("--no-augment", action="store_true", help="no augmentation (the same as --augment none)")
    t.add_argument("--ft-val-size", type=int, default=None, help="validation images per epoch (default: all)")
    t.add_argument("--distill", action="store_true", help="knowledge distillation from the dense model")
    t.add_argument("--teacher", default=None, help="dense teacher checkpoint (default: the shipped weights)")
    t.add_argument("--kd-alpha", type=float, default=D.kd_alpha)
    t.add_argument("--kd-temperature", type=float, default=D.kd_temperature)


def add_task_args(p: argparse.ArgumentParser) -> None:
    """``--score`` and ``--loss``: what is maximised and what is trained, for tasks beyond classification."""
    p.add_argument("--score", default=None, metavar="FILE.py:FUNCTION",
                   help="validation score FUNCTION(model, batches) -> float, higher is better (default: accuracy)")
    p.add_argument("--loss", default=None, metavar="FILE.py:FUNCTION",
                   help="training loss FUNCTION(output, target) (default: cross-entropy)")


def training_config(args: argparse.Namespace) -> FinetuneConfig:
    """The fine-tuning hyper-parameters, with one-line errors for impossible values."""
    if args.epochs < 1 or args.lr <= 0 or args.batch_size < 1:
        raise ConfigError("--epochs and --batch-size must be >= 1 and --lr > 0")
    if not 0.0 <= args.kd_alpha <= 1.0 or args.kd_temperature <= 0:
        raise ConfigError("--kd-alpha must be in [0, 1] and --kd-temperature > 0")
    augment = parse_augment("none" if args.no_augment else getattr(args, "augment", None))
    return FinetuneConfig(epochs=args.epochs, lr=args.lr, optimizer=args.optimizer, weight_decay=args.weight_decay,
                          batch_size=args.batch_size, seed=args.ft_seed, augment=augment, val_size=args.ft_val_size,
                          kd_alpha=args.kd_alpha, kd_temperature=args.kd_temperature, device=torch_device(args))


def run(args: argparse.Namespace) -> int:
    mode = FinetuneMode(gradual_policy=args.gradual, iterative_policy=args.iterative, steps=args.steps,
                        schedule=args.schedule, epochs_per_step=args.epochs_per_step, rounds=args.rounds,
                        rewind_from=args.rewind_from, sparsity=args.sparsity,
                        sparsity_scope=args.sparsity_scope, begin_step=args.begin_step, end_step=args.end_step,
                        frequency=args.frequency, power=args.power, initial=args.initial)
    mode.name  # noqa: B018 - validates that at most one mode is chosen, before loading anything
    cfg, score, loss = training_config(args), load_score(args.score)[0], load_loss(args.loss)
    out = ensure_writable_dir(args.out)
    source = model_source(args) if args.model else None
    s = finetune_stage(args.checkpoint, resolve_splits(args), cfg, out, mode, args.teacher, args.distill,
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
    print(f"{s['mode']} fine-tuning, {args.epochs} epochs in {s['seconds'] / 60:.1f} min: test accuracy "
          f"{s['test_acc_before']:.4f} -> {s['test_acc']:.4f} (best epoch {s['best_epoch']}){extra}; "
          f"saved {out / 'model.pt'}")
    return 0
