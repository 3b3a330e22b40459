"""The data checked against the model before any training: a wrong split, shape or label is one
line naming it, not a traceback in the first step or an epoch scored on nothing."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from autoprune.data.batches import Splits
from autoprune.data.guard import guarded
from autoprune.errors import DataError
from autoprune.inputs import Signature, call, describe_signature, signature_of, to_device
from autoprune.outputs import scored_output

PROBE = 8  # samples of each split read by the check


def check_training_data(splits: Splits, model: nn.Module, shape: Signature, classification: bool,
                        source: str) -> None:
    """Both splits non-empty; their inputs of ``shape`` and accepted by ``model``; for classification
    (the default cross-entropy) integer labels within the model's outputs and at least two classes.

    Raises:
        DataError: one line naming the split and the fix.
    """
    probes = (("training", splits.train(PROBE, shuffle=False, augment=False, limit=PROBE)),
              ("validation", splits.val(PROBE, limit=PROBE)))
    for name, batches in probes:
        first = next(iter(guarded(batches, f"the {name} data")), None)
        if first is None:
            raise DataError(f"the {name} split is empty; give the data {name} samples")
        x, y = first
        if describe_signature(signature_of(x)) != describe_signature(shape):
            raise DataError(f"the {name} inputs have {describe_signature(signature_of(x))}, but {source} takes "
                            f"{describe_signature(shape)}; pass data of that shape")
        if classification and not (isinstance(y, torch.Tensor) and not y.is_floating_point() and y.dim() == 1):
            raise DataError(f"the {name} labels are {_describe(y)}, not class indices (one integer per sample); "
                            f"convert them, or pass --loss for another task")
        out = _forward(model, x, name, source)
        if classification:
            out = scored_output(out)
        if classification and isinstance(out, torch.Tensor) and out.dim() != 2:
            raise DataError(f"{source} outputs {list(out.shape)}, not (batch, classes): the default cross-entropy "
                            f"trains classifiers; pass --loss FILE.py:function (and --score) for this task")
        if classification and isinstance(out, torch.Tensor) and out.dim() == 2 and y.numel():
            low, high = int(y.min()), int(y.max())
            if low < 0 or high >= out.shape[1]:
                raise DataError(f"the {name} split has label {low if low < 0 else high}, but {source} has "
                                f"{out.shape[1]} outputs (labels 0..{out.shape[1] - 1}); fix the labels")
    classes = splits.num_classes
    if classification and classes is not None and classes < 2:
        raise DataError(f"the data has {classes} class; a classifier needs at least two (add the other classes' "
                        f"samples, or pass --loss for another task)")


@torch.no_grad()
def _forward(model: nn.Module, x: Any, name: str, source: str) -> Any:
    was_training = model.training
    model.eval()
    try:
        device = next(model.parameters()).device
        return call(model, to_device(x, device))
    except Exception as exc:  # noqa: BLE001 - any mismatch between data and model, one line
        raise DataError(f"{source} cannot take the {name} inputs ({type(exc).__name__}: "
                        f"{str(exc).splitlines()[0][:160]}); pass data the model was built for") from None
    finally:
        model.train(was_training)


def _describe(y: Any) -> str:
    if isinstance(y, torch.Tensor):
        return f"{str(y.dtype).removeprefix('torch.')} of shape {list(y.shape)}"
    return type(y).__name__
