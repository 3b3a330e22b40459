"""Resolve what the user named on the command line into a model, its data and its analysis."""

from __future__ import annotations

import argparse

from torch import nn

from autoprune.analysis import ModelAnalysis, analyse_model
from autoprune.analysis.layers import example_input
from autoprune.checkpoint import read_checkpoint
from autoprune.data import BUILTIN_DATA, Splits, load_splits
from autoprune.devices import check_torch_device
from autoprune.errors import ConfigError
from autoprune.inputs import Signature, in_channels_of, signature_from_json
from autoprune.model_source import ModelSource, load_example, parse_input_shape, parse_model_args
from autoprune.pruning.prunability import keep_unprunable_whole

MODEL_HELP = "built-in name (resnet20, ...) or your own: path/to/file.py:factory or package.module:factory"


def add_model_args(p: argparse.ArgumentParser, default: str | None = "resnet20", exclude: bool = True) -> None:
    """``--model``, ``--model-args``, ``--weights``, ``--input-shape`` and (``exclude``) ``--exclude``."""
    p.add_argument("--model", default=default, help=MODEL_HELP)
    p.add_argument("--model-args", default=None, metavar="JSON|YAML",
                   help="keyword arguments of your model factory, e.g. '{\"width\": 32}'")
    p.add_argument("--weights", default=None,
                   help="autoprune checkpoint or plain state_dict file (default: shipped weights for "
                        "built-ins; as built for your factory)")
    p.add_argument("--input-shape", default=None, metavar="C,H,W",
                   help="one input's shape (default: from the data or the checkpoint)")
    p.add_argument("--example", default=None, metavar="FILE.py:function",
                   help="a function returning one batch of the model's inputs (a tensor, a tuple, or a dict of "
                        "keyword inputs such as input_ids and attention_mask), for inputs a shape cannot describe")
    if exclude:
        p.add_argument("--exclude", nargs="*", default=[], help="module names whose channels must not be pruned, or "
                                                           "parameters used in forward (their groups are kept whole)")


def model_source(args: argparse.Namespace, ref: str | None = None) -> ModelSource:
    """The :class:`ModelSource` the options name (``ref`` overrides ``--model``)."""
    return ModelSource(ref or args.model, parse_model_args(getattr(args, "model_args", None)),
                       getattr(args, "weights", None), input_signature(args))


def input_signature(args: argparse.Namespace) -> Signature | None:
    """What ``--input-shape`` or ``--example`` says the model takes (None: neither was given)."""
    shape, example = getattr(args, "input_shape", None), getattr(args, "example", None)
    if shape and example:
        raise ConfigError("--input-shape and --example both say what the model takes; give one of them")
    return load_example(example) if example else parse_input_shape(shape)


def resolve_model(args: argparse.Namespace, splits: Splits | None = None) -> tuple[nn.Module, ModelSource]:
    """The model named by the options (weights: given, shipped, or as built), sized for ``splits``;
    for analysing and profiling, where only the structure matters."""
    source = model_source(args)
    sizes = {} if splits is None else {"in_channels": in_channels_of(splits.input_shape) or 1,
                                       "num_classes": splits.num_classes}
    return source.load(same_weights=False, **sizes), source


def resolve_analysis(model: nn.Module, args: argparse.Namespace, source: ModelSource,
                     splits: Splits | None = None) -> ModelAnalysis:
    """Analyse ``model`` for pruning with the user's exclusions; every group is checked to prune cleanly
    (one that does not is kept whole, with the reason in ``kept_whole``)."""
    shape = source.shape(None if splits is None else splits.input_shape, model)
    example = example_input(model, shape, random=True)
    exclude = list(getattr(args, "exclude", []) or [])
    analysis = analyse_model(model, example, exclude=exclude)
    return keep_unprunable_whole(analysis, lambda extra: analyse_model(model, example, exclude=[*exclude, *extra]))[0]


def add_data_args(p: argparse.ArgumentParser) -> None:
    """``--data``, ``--data-dir``, ``--augment`` and ``--torch-device``."""
    p.add_argument("--data", default="fashion-mnist",
                   help=f"{' or '.join(BUILTIN_DATA)}, imagefolder:DIR (DIR/train/<class>/*.png, DIR/val/...), "
                        f"or path/to/file.py:factory returning (train, val[, test]) Datasets or DataLoaders")
    p.add_argument("--data-dir", default=None, help="folder with the Fashion-MNIST IDX files")
    p.add_argument("--augment", default=None, metavar="crop,flip|none",
                   help="training augmentation (default: crop,flip for the built-in data, none for yours)")
    p.add_argument("--torch-device", default=None, metavar="cpu|cuda|mps",
                   help="where torch scores, trains and fine-tunes (default: cuda when available, else cpu)")


def resolve_splits(args: argparse.Namespace, shape: Signature | None = None) -> Splits:
    """The data set named by the options (image folders resized, synthetic data made, to
    ``--input-shape``, else to ``shape``: the one a policy or checkpoint records)."""
    return load_splits(args.data, args.data_dir, getattr(args, "augment", None),
                       input_signature(args) or shape)


def recorded_signature(checkpoint: str) -> Signature | None:
    """What a checkpoint records its model takes (None when it records nothing: a plain state dict)."""
    return signature_from_json(read_checkpoint(checkpoint).get("input_shape"), f"checkpoint {checkpoint}")


def torch_device(args: argparse.Namespace) -> str:
    """The torch device the options name, checked (default: cuda when available)."""
    return check_torch_device(getattr(args, "torch_device", None))
