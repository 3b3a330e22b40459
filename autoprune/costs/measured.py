"""Measured latency: the candidate is physically pruned and timed (ONNX Runtime or torch), cached."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from autoprune.analysis.architecture import Architecture
from autoprune.analysis.groups import ModelAnalysis
from autoprune.costs.base import LatencyCostModel
from autoprune.inputs import Signature
from autoprune.latency import (
    Alongside,
    LatencySettings,
    measure_against,
    measure_latencies,
    measure_latency,
)
from autoprune.pruning.physical import prune_physically
from autoprune.records import CostModelRecord


class MeasuredLatencyCostModel(LatencyCostModel):
    """Ground truth, slow (~0.3-1 s per new architecture): verification and fidelity checks.

    Which channels are removed does not change latency, so channels are dropped by index.
    """

    name = "measured"

    def __init__(self, analysis: ModelAnalysis, settings: LatencySettings = LatencySettings()) -> None:
        super().__init__(analysis.layers)
        self.analysis = analysis
        self.settings = settings
        self.name = f"{settings.backend}-measured"
        self._ranking = {g.name: _reverse_index(g.channels) for g in analysis.groups}
        self._cache: dict[tuple, float] = {}

    def latency(self, arch: Architecture) -> float:
        """Measured latency (ms) of the physically pruned ``arch``, measured once per architecture."""
        key = self._key(arch)
        if key not in self._cache:
            self._cache[key] = measure_latency(self._build(arch), self._shape, self.settings)
        return self._cache[key]

    def measured_dense(self) -> float:
        """Every cost this model gives is a measurement, the dense model's included."""
        return self.latency({})

    def latencies(self, archs: Sequence[Architecture], progress: Callable[[], None] | None = None) -> list[float]:
        """Latencies of many architectures measured round-robin, ``settings.rounds`` passes (cached).

        This is how candidates that will be compared should be measured: one burst of interference
        on a shared machine then spoils single passes of many, not every round of one. Big models go
        in chunks (about 1 GB of weights each), each chunk interleaved. ``progress`` is called once
        per candidate built and once per candidate timed in a pass.
        """
        todo = {self._key(a): a for a in archs if self._key(a) not in self._cache}
        keys, step = list(todo), self._chunk()
        for i in range(0, len(keys), step):  # chunks bound memory: every session holds its weights
            chunk = keys[i:i + step]
            times = measure_latencies((self._build(todo[k], progress) for k in chunk), self._shape,
                                      self.settings, progress=progress)
            self._cache.update(zip(chunk, times))
        return [self._cache[self._key(a)] for a in archs]

    def shares_of(self, archs: Sequence[Architecture], reference: Architecture) -> Alongside:
        """Each of ``archs`` as a share of ``reference`` timed just before and after it in every pass
        (:func:`~autoprune.latency.against_reference`; not cached)."""
        shares, best, ref = [], [], float("inf")
        step = max(1, self._chunk() - 1)  # the reference travels with every chunk
        for i in range(0, len(archs), step):
            timed = measure_against((self._build(a) for a in archs[i:i + step]), self._build(reference),
                                    self._shape, self.settings)
            shares, best, ref = shares + timed.shares, best + timed.best_ms, min(ref, timed.reference_ms)
        return Alongside(shares, best, ref)

    def _chunk(self, memory_bytes: float = 1e9) -> int:
        """Candidates measured together: all of them for small models, fewer for big ones (~1 GB).

        Chunks are a last resort: a slow spell of a few seconds on a shared VM can cover every
        pass of one small chunk (32 ResNet-20 candidates read 20 % slow together once).
        """
        weight_bytes = sum(p.numel() * p.element_size() for p in self.analysis.model.parameters())
        return int(max(2, min(1024, memory_bytes // max(2 * weight_bytes, 1))))

    @property
    def _shape(self) -> Signature:
        return self.analysis.signature

    def _key(self, arch: Architecture) -> tuple[int, ...]:
        return tuple(int(arch.get(g.name, g.channels)) for g in self.analysis.groups)

    def _build(self, arch: Architecture, progress: Callable[[], None] | None = None) -> torch.nn.Module:
        model = prune_physically(self.analysis, self._ranking, arch)
        if progress is not None:
            progress()
        return model

    def describe(self) -> CostModelRecord:
        return {**super().describe(), **self.settings.__dict__}


def _reverse_index(n: int) -> torch.Tensor:
    return torch.arange(n - 1, -1, -1)
