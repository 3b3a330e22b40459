"""autoprune: hardware-aware, RL-searched structured pruning for PyTorch models."""

__version__ = "0.1.0"
