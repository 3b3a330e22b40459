"""Orchestration after the search: apply, fine-tune, export stages and the chained pipeline."""

from autoprune.workflow.stages import (
                                       FinetuneMode,
                                       apply_stage,
                                       export_stage,
                                       finetune_stage,
                                       sensitivity_stage,
)

__all__ = ["FinetuneMode", "apply_stage", "export_stage", "finetune_stage", "sensitivity_stage"]
