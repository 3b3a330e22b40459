"""Roofline cost model: each layer takes max(compute time, memory time) plus a per-op overhead.

A first-order estimate for hardware you cannot profile on (Williams et al. 2009). Built-in
device classes are rough public figures; users add their own from a small YAML/JSON file.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import yaml

from autoprune.analysis.architecture import Architecture, layer_channels
from autoprune.analysis.groups import ModelAnalysis
from autoprune.costs.base import LatencyCostModel
from autoprune.errors import ConfigError
from autoprune.records import CostModelRecord
from autoprune.yaml_io import load_yaml


@dataclass(frozen=True)
class DeviceProfile:
    """Peak compute (GFLOP/s), memory bandwidth (GB/s), fixed overhead per layer (microseconds)."""

    name: str
    peak_gflops: float
    bandwidth_gbs: float
    overhead_us: float = 5.0
    bytes_per_value: int = 4

    def __post_init__(self) -> None:
        for key in ("peak_gflops", "bandwidth_gbs"):
            if not getattr(self, key) > 0:
                raise ConfigError(f"device profile {self.name!r}: {key} must be > 0")
        if self.overhead_us < 0:
            raise ConfigError(f"device profile {self.name!r}: overhead_us must be >= 0")


DEVICE_PROFILES = {
    p.name: p for p in (
        DeviceProfile("cortex-a53", peak_gflops=8.0, bandwidth_gbs=2.0, overhead_us=15.0),
        DeviceProfile("cortex-a76", peak_gflops=40.0, bandwidth_gbs=8.0, overhead_us=6.0),
        DeviceProfile("x86-avx2-1thread", peak_gflops=60.0, bandwidth_gbs=15.0, overhead_us=4.0),
        DeviceProfile("jetson-nano-gpu", peak_gflops=400.0, bandwidth_gbs=20.0, overhead_us=30.0),
    )
}


def load_device_profile(name_or_path: str | Path) -> DeviceProfile:
    """A built-in profile by name, or one read from a YAML/JSON file with the same fields."""
    if str(name_or_path) in DEVICE_PROFILES:
        return DEVICE_PROFILES[str(name_or_path)]
    path = Path(name_or_path)
    if not path.is_file():
        raise ConfigError(f"unknown device profile {str(name_or_path)!r}; known: "
                          f"{', '.join(DEVICE_PROFILES)}, or a YAML/JSON file")
    try:
        text = path.read_text()
        data = json.loads(text) if path.suffix == ".json" else load_yaml(text, str(path))
        return DeviceProfile(**{"name": path.stem, **data})
    except (TypeError, ValueError, yaml.YAMLError) as exc:
        raise ConfigError(f"device profile {path} is invalid ({str(exc).splitlines()[0][:100]}); it needs "
                          f"peak_gflops, bandwidth_gbs and optionally overhead_us") from exc


class RooflineCostModel(LatencyCostModel):
    """Latency = sum over layers of max(2*MACs/peak, bytes moved/bandwidth) + overhead."""

    name = "roofline"

    def __init__(self, analysis: ModelAnalysis, device: DeviceProfile | str = "cortex-a76") -> None:
        super().__init__(analysis.layers)
        self.device = device if isinstance(device, DeviceProfile) else load_device_profile(device)

    def latency(self, arch: Architecture) -> float:
        d, total = self.device, 0.0
        for spec in self.layers:
            c_in, c_out = layer_channels(spec, arch)
            compute = 2.0 * spec.macs(c_in, c_out) / spec.calls / (d.peak_gflops * 1e9)
            values = (c_in * spec.in_hw[0] * spec.in_hw[1] + c_out * spec.out_hw[0] * spec.out_hw[1]
                      + spec.params(c_in, c_out))
            memory = values * d.bytes_per_value / (d.bandwidth_gbs * 1e9)
            total += (max(compute, memory) + d.overhead_us * 1e-6) * spec.calls  # every call of a shared layer
        return total * 1e3

    def describe(self) -> CostModelRecord:
        return {**super().describe(), "device": asdict(self.device)}
