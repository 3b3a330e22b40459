"""Channel-Bench-Macro's tables as a score: the measured accuracy of an architecture, looked up.

The benchmark (BCNet, Su et al., CVPR 2021) trained each of the 4^7 architectures of its two
width-search spaces three times on CIFAR-10 and published the test accuracies, FLOPs and
parameters. ``--score channel-bench:PATH`` scores a candidate of ``cbm_mobilenet`` /
``cbm_resnet`` by the table instead of by a validation set: one of its three runs, drawn from the
search's seed, the architecture and how often it was asked before (noisy like a real evaluation,
reproducible, and a resumed search draws the same). The search then measures the optimiser alone:
regret = the best feasible architecture's mean accuracy minus the returned one's.

The tables carry no licence: read them from where they lie, never copy them into a project.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from autoprune.errors import ConfigError, UserCodeError
from autoprune.models.channel_bench import SPACES, WidthSpace

PREFIX = "channel-bench:"
RUNS = 3


@dataclass(frozen=True)
class Entry:
    """One architecture of the table: its three test accuracies (%), their mean, FLOPs and parameters."""

    acc: tuple[float, ...]
    mean: float
    flops: int
    params: int


class ChannelBenchTable:
    """A ``Results_MobileNet.json`` or ``Results_ResNet.json``, checked, with its space recognised."""

    def __init__(self, path: str | Path) -> None:
        path = Path(path).expanduser()
        if not path.is_file():
            raise ConfigError(f"Channel-Bench-Macro table {path} does not exist; give the path of "
                              f"Results_MobileNet.json or Results_ResNet.json")
        try:
            raw = json.loads(path.read_text())
            self.entries = {str(k): Entry(tuple(float(a) for a in v["acc"]), float(v["mean"]), int(v["flops"]),
                                          int(v["params"])) for k, v in raw.items()}
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ConfigError(f"{path} is not a Channel-Bench-Macro table ({type(exc).__name__}); give "
                              f"Results_MobileNet.json or Results_ResNet.json") from None
        full = self.entries.get("4444444")
        if full is None or any(len(e.acc) != RUNS for e in self.entries.values()):
            raise ConfigError(f"{path} is not a Channel-Bench-Macro table (no full-width entry 4444444, or not "
                              f"three runs per architecture)")
        self.path = path
        self.space = _space_of(full.flops, path)
        self.full_flops = full.flops

    def feasible(self, fraction: float) -> list[str]:
        """Keys whose FLOPs are within ``fraction`` of the full-width net's."""
        limit = fraction * self.full_flops
        return [k for k, e in self.entries.items() if e.flops <= limit]

    def best(self, fraction: float) -> tuple[str, float]:
        """The feasible key with the best mean accuracy, and that mean."""
        key = max(self.feasible(fraction), key=lambda k: self.entries[k].mean)
        return key, self.entries[key].mean

    def run(self, key: str, seed: int, repeat: int) -> float:
        """The test accuracy (%) of one of ``key``'s runs: drawn from the seed, the key and ``repeat``."""
        index = int(np.random.default_rng([int(seed), int(key), int(repeat)]).integers(RUNS))
        return self.entries[key].acc[index]


def _space_of(full_flops: int, path: Path) -> WidthSpace:
    from autoprune.analysis import analyse_model
    from autoprune.costs import FlopsCostModel
    from autoprune.models import create_model

    for space in SPACES.values():
        analysis = analyse_model(create_model(space.model, in_channels=3), torch.zeros(1, 3, 32, 32))
        if FlopsCostModel(analysis.layers).dense_cost().flops == full_flops:
            return space
    raise ConfigError(f"{path}: its full-width net has {full_flops} FLOPs, neither Channel-Bench-Macro space's")


class TableScore:
    """A candidate's score from the table (accuracy as a share, like top-1 accuracy).

    The search asks :meth:`of_architecture` with the channels kept (no model is pruned: a lookup);
    called like any score function, ``score(model, batches)``, it reads the widths from the
    (pruned) model's layers. ``repeat``: how often this architecture was asked before.
    """

    def __init__(self, table: ChannelBenchTable, seed: int = 0) -> None:
        self.table, self.seed = table, seed
        self.__name__ = "channel-bench"
        self.asked: dict[str, int] = {}

    def key(self, kept: Mapping[str, int]) -> str:
        """The table key of ``kept``; a one-line error when a width is not one of the table's."""
        missing = [g for g in self.table.space.groups if g not in kept]
        key = None if missing else self.table.space.key(dict(kept))
        if key is None:
            raise UserCodeError(f"--score {PREFIX}{self.table.path}: the candidate {dict(kept)} is not an "
                                f"architecture of {self.table.space.model}; search --model {self.table.space.model} "
                                f"with --widths 0.25,0.5,0.75,1.0")
        return key

    def of_architecture(self, kept: Mapping[str, int], repeat: int | None = None) -> float:
        """One run's accuracy (0-1) of the architecture ``kept``; ``repeat`` None: count the asks here."""
        key = self.key(kept)
        if repeat is None:
            repeat = self.asked.get(key, 0)
        self.asked[key] = max(self.asked.get(key, 0), repeat + 1)
        return self.table.run(key, self.seed, repeat) / 100.0

    def restore(self, asked: Iterable[Mapping[str, int]]) -> None:
        """Count the architectures a resumed search asked before (its history), so draws continue."""
        for kept in asked:
            key = self.key(kept)
            self.asked[key] = self.asked.get(key, 0) + 1

    def __call__(self, model: nn.Module, batches: Iterable[Any]) -> float:
        kept = {}
        for name in self.table.space.groups:
            try:
                layer = model.get_submodule(name)
            except AttributeError:
                raise UserCodeError(f"--score {PREFIX}{self.table.path} scores {self.table.space.model} models; "
                                    f"this model has no layer {name!r}") from None
            kept[name] = int(getattr(layer, "out_channels", 0))
        return self.of_architecture(kept)


def table_score(ref: str, seed: int = 0) -> TableScore:
    """``channel-bench:PATH`` -> its :class:`TableScore` for a search seeded with ``seed``."""
    return TableScore(load_table(ref[len(PREFIX):]), seed)


@functools.lru_cache(maxsize=4)
def _load(path: Path, mtime: float) -> ChannelBenchTable:
    return ChannelBenchTable(path)


def load_table(path: str | Path) -> ChannelBenchTable:
    """The table at ``path``, read once per process (a search validates its settings more than once)."""
    path = Path(path).expanduser().resolve()
    return _load(path, path.stat().st_mtime if path.is_file() else 0.0)


def regret(table: ChannelBenchTable, fraction: float, key: str) -> float:
    """Mean accuracy (points) of the best feasible architecture minus that of ``key``."""
    return table.best(fraction)[1] - table.entries[key].mean if key in table.entries else math.nan
