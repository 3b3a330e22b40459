"""Fine-tuning a pruned model: distillation, gradual channel pruning, unstructured sparsity, rewinding."""

from autoprune.finetune.distill import distillation_loss
from autoprune.finetune.gradual import GradualChannelPruning
from autoprune.finetune.loop import FinetuneConfig, FinetuneResult, finetune
from autoprune.finetune.rewind import rewind
from autoprune.finetune.schedule import PolynomialDecay
from autoprune.finetune.unstructured import MagnitudeSparsity, sparsity_report

__all__ = ["FinetuneConfig", "FinetuneResult", "GradualChannelPruning", "MagnitudeSparsity",
           "PolynomialDecay", "distillation_loss", "finetune", "rewind", "sparsity_report"]
