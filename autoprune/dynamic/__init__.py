"""Dynamic pruning: nested variants of one model, switched at run time (slimmable networks)."""

from autoprune.dynamic.model import DynamicModel, check_nested
from autoprune.dynamic.nesting import nest_variants
from autoprune.dynamic.reorder import reorder_channels
from autoprune.dynamic.variants import (
           Variant,
           VariantSet,
           export_variants,
           load_dynamic,
           save_dynamic,
)

__all__ = ["DynamicModel", "Variant", "VariantSet", "check_nested", "export_variants", "load_dynamic", "nest_variants",
           "reorder_channels", "save_dynamic"]
