"""Scoring a pruning candidate during search: mask, recalibrate BN, measure the validation score."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import torch

from autoprune.analysis.groups import ModelAnalysis
from autoprune.data.batches import Splits
from autoprune.data.guard import guarded
from autoprune.errors import DataError, TrainingError, UserCodeError
from autoprune.inputs import describe
from autoprune.pruning.masked import MaskedPruner
from autoprune.pruning.physical import prune_physically
from autoprune.scoring import LossFn, ScoreFn, accuracy
from autoprune.training import TrainConfig, evaluate, recalibrate_bn, train

SHORT_FINETUNE_LR = 0.01
BN_BATCH_SIZE = 128


def search_bn_batches(splits: Splits, bn_batches: int, batch_size: int = BN_BATCH_SIZE) -> list:
    """The fixed training batches a search recalibrates BN on (the leading ones, in order, not
    augmented); ``apply`` and the Python API recalibrate on the same, so scores reproduce."""
    return list(guarded(splits.train(batch_size, shuffle=False, augment=False, limit=bn_batches * batch_size),
                        "the training data"))  # a few hundred steps from pruned weights: gentle, no warm-up needed


def check_scorable(model: torch.nn.Module, splits: Splits, score: ScoreFn, device: str | torch.device = "cpu",
                   samples: int = 8) -> float:
    """The unpruned model's score on the first ``samples`` validation samples; a one-line
    :class:`DataError` with the cause when it cannot be scored (data that does not fit the model),
    before any search: a candidate that fails later is only recorded as NaN."""
    if getattr(score, "of_architecture", None) is not None:
        return math.nan
    batches = list(guarded(splits.val(batch_size=samples, limit=samples), "the validation data"))
    if not batches:
        raise DataError("the validation split is empty; give the data validation samples")
    try:
        value = evaluate(model.to(device), batches, score)
    except (UserCodeError, DataError, TrainingError):
        raise
    except Exception as exc:  # noqa: BLE001 - the user's model on the user's data
        raise DataError(f"the unpruned model cannot be scored on the validation data, whose inputs are "
                        f"{describe(batches[0][0])} ({type(exc).__name__}: {str(exc).strip().splitlines()[0][:160]}); "
                        f"give data the model takes (several inputs: a tuple or a dict per sample)") from None
    finally:
        model.cpu()
    if math.isnan(value):
        raise DataError("the unpruned model scores NaN on the first validation samples; check the data and the "
                        "--score function (a search could not rank candidates by it)")
    return value


class CandidateEvaluator:
    """``evaluator(kept) -> score`` on a fixed validation subset, after EagleEye BN recalibration.

    The validation samples come from the held-out split (never the test set); the recalibration
    batches are a fixed slice of the training split, so the same candidate always gets the same score.
    Both slices are read once and kept (``val_size`` samples, ``bn_batches`` batches); everything
    else streams. The score is top-1 accuracy unless ``score`` says otherwise (higher is better).
    Candidates are scored on ``device`` (the analysis model stays where it is).

    ``scorer`` (set after construction) replaces the first-stage score: e.g. a supernet sliced to
    the candidate (:class:`~autoprune.dynamic.supernet.SupernetScorer`, given this evaluator's slices).

    ``mode="physical"`` scores a physically pruned copy (~20 ms to build for ResNet-20), whose
    forward pass is as much faster as the candidate is; ``mode="masked"`` scores the dense model
    with channel masks (~2 ms to apply, but dense compute). Both give the same accuracy; physical
    is faster once scoring a candidate takes more than a few tens of milliseconds.
    """

    def __init__(self, analysis: ModelAnalysis, ranking: Mapping[str, torch.Tensor], splits: Splits,
                 val_size: int = 2000, bn_batches: int = 5, batch_size: int = BN_BATCH_SIZE,
                 mode: str = "physical", finetune_batch: int = 64, score: ScoreFn = accuracy,
                 device: str | torch.device = "cpu", loss: LossFn | None = None) -> None:
        if mode not in ("physical", "masked"):
            raise ValueError(f"mode must be physical or masked, got {mode!r}")
        self.analysis, self.ranking, self.mode = analysis, ranking, mode
        self.pruner = MaskedPruner(analysis, ranking) if mode == "masked" else None
        self.model = analysis.model
        self.bn_data = search_bn_batches(splits, bn_batches, batch_size)
        self.val_data = list(guarded(splits.val(batch_size=500, limit=val_size), "the validation data"))
        self.bn_batches = bn_batches
        self.splits, self.finetune_batch = splits, finetune_batch
        self.score, self.device, self.loss = score, torch.device(device), loss
        self.scorer: Callable[[Mapping[str, int]], float] | None = None  # scores instead of a pruned copy

    def restore(self, asked: list[Mapping[str, int]]) -> None:
        """A resumed search's earlier candidates, for a lookup score that draws per ask (see
        :mod:`autoprune.channel_bench`); nothing to do for scores computed on the model."""
        if hasattr(self.score, "restore"):
            self.score.restore(asked)

    def __call__(self, kept: Mapping[str, int]) -> float:
        """Validation score of the model pruned to ``kept`` channels per group (NaN on failure).

        A score that looks the architecture up (``score.of_architecture``, a benchmark table)
        is asked with the channels directly: no model is pruned.
        """
        lookup = getattr(self.score, "of_architecture", None)
        if lookup is not None:
            return float(lookup(kept))
        try:
            if self.scorer is not None:  # e.g. a supernet sliced to ``kept``
                return float(self.scorer(kept))
            if self.mode == "physical":
                model = prune_physically(self.analysis, self.ranking, kept).to(self.device)
                recalibrate_bn(model, self.bn_data, self.bn_batches)
                acc = evaluate(model, self.val_data, self.score)
            else:
                with self.pruner.applied(kept):
                    recalibrate_bn(self.model, self.bn_data, self.bn_batches)
                    acc = evaluate(self.model, self.val_data, self.score)
        except (UserCodeError, DataError):  # the user's score, loss or data misbehaves: stop, naming it
            raise
        except Exception:  # noqa: BLE001 - any failure of a user model: recorded (NaN) and skipped
            acc = math.nan
        return acc

    def finetuned(self, kept: Mapping[str, int], steps: int, seed: int = 0) -> float:
        """Second-stage score: the validation score after ``steps`` SGD steps of fine-tuning.

        Every candidate trains on the same fixed, seeded slice of the training split, so scores
        compare; this measures how well a candidate recovers, which BN recalibration alone cannot.
        """
        try:
            model = prune_physically(self.analysis, self.ranking, kept).to(self.device)
            recalibrate_bn(model, self.bn_data, self.bn_batches)
            batches = self.splits.train(self.finetune_batch, shuffle=True, seed=seed,
                                        limit=steps * self.finetune_batch)
            cfg = TrainConfig(epochs=1, lr=SHORT_FINETUNE_LR, batch_size=self.finetune_batch, augment=False,
                              seed=seed)
            train(model, lambda epoch: batches, cfg, loss_fn=self.loss, progress=False)
            return evaluate(model, self.val_data, self.score)
        except (UserCodeError, DataError):
            raise
        except TrainingError as exc:  # a loss that turns NaN: never an empty score left unsaid
            raise TrainingError(f"re-ranking's short fine-tune of a candidate stopped: {exc}; or skip re-ranking "
                                f"with --rerank-top 0") from None
        except Exception:  # noqa: BLE001 - as for the first stage: recorded (NaN) and skipped
            return math.nan
