"""What the layer-based cost models price, checked against an independent count of the whole model.

The lookup-table and roofline models price the traced Conv/Linear layers. A model whose work lies
elsewhere (a transposed convolution, attention's matmuls, a shared module called again at other shapes) would meet
a latency budget on paper only; :func:`coverage` counts every multiply-accumulate with
``torch.utils.flop_counter.FlopCounterMode`` and names what the layers leave out. The FLOPs model
adds that work at its dense value, so its count is complete.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from autoprune.analysis.groups import ModelAnalysis
from autoprune.analysis.layers import no_fastpath
from autoprune.errors import ConfigError
from autoprune.inputs import call

UNCOUNTED_LIMIT = 0.01  # a budget is not reported met while more than this share of the MACs is unpriced
LAYER_COST_MODELS = ("lut", "roofline")  # the built-ins that price the traced layers only


@dataclass(frozen=True)
class Uncounted:
    """Work the layer cost models do not price: a module (or the functional ops of its forward)."""

    name: str
    kind: str
    macs: int


@dataclass(frozen=True)
class Coverage:
    """The independent count of the dense model next to what the traced layers hold."""

    total_macs: int
    counted_macs: int
    uncounted: tuple[Uncounted, ...]

    @property
    def uncounted_share(self) -> float:
        """The share of the independent count that the traced layers do not hold."""
        return max(0, self.total_macs - self.counted_macs) / max(self.total_macs, 1)

    def describe(self, limit: int = 3) -> str:
        """``Conv1d 'c2' 97.0 %, ...`` for the largest uncounted parts."""
        parts = sorted(self.uncounted, key=lambda u: -u.macs)[:limit]
        return ", ".join(f"{u.kind} {u.name!r} {100 * u.macs / max(self.total_macs, 1):.1f} %" for u in parts)


@torch.no_grad()
def coverage(analysis: ModelAnalysis) -> Coverage:
    """Count every MAC of ``analysis.model`` on its example input and attribute the rest per module."""
    model = analysis.model
    was_training = model.training
    model.eval()
    try:
        # attention's plain path and the math kernel of scaled_dot_product_attention: the fused
        # kernels are invisible to the counter
        with no_fastpath(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
            call(model, analysis.example_input)
    finally:
        model.train(was_training)
    root = type(model).__name__
    per_module = {}
    for key, ops in counter.get_flop_counts().items():
        if key == "Global":
            continue
        name = "" if key == root else key.removeprefix(root + ".")
        per_module[name] = sum(ops.values()) // 2  # a multiply-accumulate is two FLOPs
    total = int(counter.get_total_flops()) // 2
    counted: dict[str, int] = {}
    for spec in analysis.layers:  # nn.MultiheadAttention's parts count toward the module itself
        counted[spec.module or spec.name] = counted.get(spec.module or spec.name, 0) + spec.macs()
    modules = dict(model.named_modules())
    uncounted = []
    for name, macs in per_module.items():
        children = sum(v for n, v in per_module.items() if _is_child(n, name))
        own = macs - children  # work done in this module's own forward (its ops, or itself as a leaf layer)
        extra = own - counted.get(name, 0)
        if extra > 0 and own > 0:
            module = modules.get(name)
            kind = type(module).__name__ if module is not None else "op"
            if name in counted:
                kind += " (called again at other shapes)"
            elif module is not None and any(True for _ in module.children()):
                kind = f"ops in {kind}.forward"
            uncounted.append(Uncounted(name or root, kind, extra))
    return Coverage(total, sum(counted.values()), tuple(uncounted))


def _is_child(name: str, parent: str) -> bool:
    """``name`` is a direct child module of ``parent`` (``""`` is the root)."""
    if not parent:
        return bool(name) and "." not in name
    return name.startswith(parent + ".") and "." not in name[len(parent) + 1:]


def check_coverage(analysis: ModelAnalysis, cost_model: str, allow_uncounted: bool) -> Coverage | None:
    """Refuse a layer-based cost model on a model whose unpriced work is over :data:`UNCOUNTED_LIMIT`.

    Raises:
        ConfigError: naming the largest unpriced parts and the ways out.
    """
    if cost_model not in LAYER_COST_MODELS:
        return None
    found = coverage(analysis)
    if found.uncounted_share > UNCOUNTED_LIMIT and not allow_uncounted:
        raise ConfigError(f"the {cost_model} cost model prices {100 * (1 - found.uncounted_share):.1f} % of this "
                          f"model's MACs; not priced: {found.describe()}; a budget would be met on paper only: use "
                          f"--cost-model ort-measured (times the whole model) or flops, or --allow-uncounted to "
                          f"search anyway")
    return found
