"""Model analysis: prunable channel groups, per-layer shapes and costs, per-group agent features."""

from autoprune.analysis.architecture import Architecture, layer_channels
from autoprune.analysis.features import FEATURE_COLUMNS, group_features
from autoprune.analysis.fingerprint import model_fingerprint
from autoprune.analysis.groups import ModelAnalysis, PrunableGroup, analyse_model
from autoprune.analysis.layers import LayerSpec

__all__ = ["Architecture", "FEATURE_COLUMNS", "LayerSpec", "ModelAnalysis", "PrunableGroup",
           "analyse_model", "group_features", "layer_channels", "model_fingerprint"]
