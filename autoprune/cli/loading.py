"""Resolve what the user named on the command line into a model and its analysis."""

from __future__ import annotations

import argparse

import torch
from torch import nn

from autoprune.analysis import ModelAnalysis, analyse_model
from autoprune.checkpoint import load_or_create
from autoprune.data import DataSplits, load_splits
from autoprune.pruning.verify import check_prunable


def add_model_args(p: argparse.ArgumentParser, default: str = "resnet20") -> None:
    """``--model`` (built-in name) and ``--weights`` (checkpoint) options."""
    p.add_argument("--model", default=default, help=f"built-in model name (default: {default})")
    p.add_argument("--weights", default=None,
                   help="checkpoint to load (default: the shipped Fashion-MNIST weights where there are some)")
    p.add_argument("--exclude", nargs="*", default=[], help="module names whose channels must not be pruned")


def resolve_model(args: argparse.Namespace) -> tuple[nn.Module, str]:
    """The model named by ``--model``/``--weights`` (weights: given, shipped, or random)."""
    return load_or_create(args.model, args.weights), args.model


def resolve_analysis(model: nn.Module, args: argparse.Namespace,
                     input_shape: tuple[int, ...] = (1, 28, 28)) -> ModelAnalysis:
    """Analyse ``model`` for pruning with the user's exclusions; every group is checked to prune cleanly."""
    analysis = analyse_model(model, torch.randn(1, *input_shape), exclude=getattr(args, "exclude", []) or [])
    check_prunable(analysis)
    return analysis


def add_data_args(p: argparse.ArgumentParser) -> None:
    """``--data`` and ``--data-dir`` options."""
    p.add_argument("--data", default="fashion-mnist", help="fashion-mnist or synthetic")
    p.add_argument("--data-dir", default=None, help="folder with the Fashion-MNIST IDX files")


def resolve_splits(args: argparse.Namespace) -> DataSplits:
    """The data set named by ``--data``/``--data-dir``."""
    return load_splits(args.data, args.data_dir)
