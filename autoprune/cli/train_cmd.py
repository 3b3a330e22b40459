"""``autoprune train``: train a model (built-in or your factory) on a data set and save a safe checkpoint."""

from __future__ import annotations

import argparse
import time
from dataclasses import asdict

import torch

from autoprune.atomic import write_json_atomic
from autoprune.checkpoint import save_checkpoint
from autoprune.cli.common import add_overwrite_arg, add_score_arg, command_line, prepare_out
from autoprune.cli.loading import (
    MODEL_HELP,
    add_data_args,
    model_source,
    resolve_splits,
    torch_device,
)
from autoprune.data import parse_augment
from autoprune.errors import ConfigError
from autoprune.inputs import in_channels_of
from autoprune.models import create_model
from autoprune.scoring import load_loss, load_score
from autoprune.settings import add_settings, settings_from_args
from autoprune.training import TrainConfig, evaluate, train


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the sub-command."""
    p = sub.add_parser("train", help="train a model from scratch (saves model.pt and train.json)")
    p.add_argument("--model", default="resnet20", help=MODEL_HELP)
    p.add_argument("--model-args", default=None, metavar="JSON|YAML", help="keyword arguments of your model factory")
    add_data_args(p)
    p.add_argument("--loss", default=None, metavar="FILE.py:FUNCTION",
                   help="training loss FUNCTION(output, target) (default: cross-entropy)")
    add_score_arg(p, "pick the best epoch")
    add_settings(p.add_argument_group("training"), TrainConfig)
    p.add_argument("--no-augment", action="store_true", help="no augmentation (the same as --augment none)")
    p.add_argument("--save-epochs", default="", metavar="N,M",
                   help="also save model_epochN.pt after these epochs (early weights for lottery-ticket rewinding)")
    p.add_argument("--out", default="runs/train", help="output folder")
    add_overwrite_arg(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Train, evaluate on validation each epoch and on test at the end, save everything."""
    save_at = parse_epochs(args.save_epochs, args.epochs)
    (score, score_name), loss = load_score(args.score), load_loss(args.loss)
    cfg = TrainConfig(**settings_from_args(TrainConfig, args),
                      augment=parse_augment("none" if args.no_augment else args.augment), device=torch_device(args)).check()
    source = model_source(args)
    splits = resolve_splits(args)
    out = prepare_out(args.out, overwrite=args.overwrite, finished=("model.pt",))
    torch.manual_seed(args.seed)
    shape = splits.input_shape
    model = create_model(source.ref, in_channels_of(shape) or 1, splits.num_classes, source.args or None)
    num_classes = splits.num_classes
    epoch = {"n": 0}

    def save(path, m: torch.nn.Module, meta: dict) -> None:
        save_checkpoint(path, m, source.ref, in_channels_of(shape) or 1, num_classes, meta, input_shape=shape, model_args=source.args)

    def evaluate_and_save(m: torch.nn.Module) -> float:
        epoch["n"] += 1
        acc = evaluate(m, splits.val(), score)
        if epoch["n"] in save_at:
            save(out / f"model_epoch{epoch['n']}.pt", m, {"epoch": epoch["n"], "val_acc": acc, "data": args.data})
        return acc

    start = time.perf_counter()
    history = train(model, lambda e: splits.train(cfg.batch_size, augment=cfg.augment, seed=cfg.seed * 1000 + e),
                    cfg, evaluate_fn=evaluate_and_save, loss_fn=loss)
    seconds = time.perf_counter() - start
    test_acc = evaluate(model, splits.test(), score)
    record = {"command": command_line(), "model": source.ref, "data": args.data, "config": asdict(cfg),
              "history": history, "val_acc": history[-1]["val_acc"], "test_acc": test_acc,
              "train_seconds": round(seconds, 1), "torch": torch.__version__}
    save(out / "model.pt", model, {"val_acc": record["val_acc"], "test_acc": test_acc, "data": args.data})
    write_json_atomic(out / "train.json", record)
    print(f"test {score_name} {test_acc:.4f} after {args.epochs} epochs ({seconds / 60:.1f} min); "
          f"saved {out / 'model.pt'}")
    return 0


def parse_epochs(text: str, epochs: int) -> set[int]:
    """``"1,3"`` -> ``{1, 3}``, each within ``1..epochs``."""
    try:
        chosen = {int(t) for t in text.split(",") if t.strip()}
    except ValueError as exc:
        raise ConfigError(f"--save-epochs must be comma-separated epoch numbers, got {text!r}") from exc
    bad = sorted(e for e in chosen if not 1 <= e <= epochs)
    if bad:
        raise ConfigError(f"--save-epochs {bad[0]} is outside 1..{epochs} (the --epochs trained)")
    return chosen
