"""autoprune: hardware-aware, RL-searched structured pruning for PyTorch models.

One call: ``autoprune.prune_to_budget(model, example_input, train_data, val_data, budget="50%")``,
then ``autoprune.finetune_model`` and ``autoprune.export_model`` (see :mod:`autoprune.workflow.python_api`).
"""

from typing import Any

__version__ = "0.1.0"
__all__ = ["PruneResult", "consent", "export_model", "finetune_model", "prune_to_budget", "__version__"]


def __getattr__(name: str) -> Any:
    """The one-call API, imported on first use (so ``import autoprune`` stays light)."""
    if name in ("PruneResult", "export_model", "finetune_model", "prune_to_budget"):
        from autoprune.workflow import python_api

        return getattr(python_api, name)
    if name == "consent":  # code named in a file runs only inside ``with autoprune.consent(ref):``
        from autoprune.references import consent

        return consent
    raise AttributeError(f"module 'autoprune' has no attribute {name!r}")
