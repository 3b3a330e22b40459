"""The budget: a ceiling on one cost metric, parsed once and checked in one place.

A budget is written as a share of the dense model's cost (``50%`` or ``0.5``) or as an absolute
value with its unit (``0.15ms`` for latency, ``12M`` MACs for FLOPs). :class:`BudgetSpec` is the
parsed text, checked before any model is loaded; :meth:`BudgetSpec.resolve` turns it into a
:class:`Budget` once the cost model has priced the dense model. A share is a share of the dense
model as *measured* where the cost model holds a measurement (a latency table records the dense
model timed among its calibration samples), else of the cost model's price for it. "Within budget" has one meaning,
:meth:`Budget.fits`; a measured latency may exceed the budget by :data:`MEASURED_TOLERANCE`.
"""

from __future__ import annotations

import math
import numbers
import re
from dataclasses import dataclass
from typing import Any

from autoprune.costs.base import checked_cost
from autoprune.errors import ConfigError

MEASURED_TOLERANCE = 0.05  # a measured latency may be this share over its budget (timing noise)
_EXACT = 1e-9  # predicted costs: float rounding only
_MAC_UNITS = {"k": 1e3, "m": 1e6, "g": 1e9}
_METRIC_UNITS = {"latency_ms": "ms", "flops": "MACs"}


def _floor3(x: float) -> float:
    """``x`` rounded down to three significant digits."""
    scale = 10.0 ** (2 - math.floor(math.log10(x)))
    return math.floor(x * scale + 1e-9) / scale


@dataclass(frozen=True)
class BudgetSpec:
    """A budget as the user wrote it: a ``fraction`` of dense, or an absolute ``value`` in ``unit``."""

    text: str
    fraction: float | None = None
    value: float | None = None
    unit: str | None = None  # "ms" or "MACs" for absolute budgets

    @classmethod
    def parse(cls, spec: str | float) -> BudgetSpec:
        """Read ``50%``, ``0.5``, ``0.15ms``, ``12M``/``1.2G``/``300k`` MACs; one-line error otherwise."""
        text = str(spec).strip()
        low = text.lower()
        hint = "use a share of the dense cost (50% or 0.5), ms for latency (0.15ms) or MACs (12M)"
        try:
            if low.endswith("%"):
                out = cls(text, fraction=float(low[:-1]) / 100)
            elif low.endswith("ms"):
                out = cls(text, value=float(low[:-2]), unit="ms")
            elif low[-1:] in _MAC_UNITS:
                out = cls(text, value=float(low[:-1]) * _MAC_UNITS[low[-1]], unit="MACs")
            else:
                number = float(low)
                if number > 1.0 and math.isfinite(number):
                    raise ConfigError(f"budget {text!r} has no unit; {hint}")
                out = cls(text, fraction=number)
        except ValueError:
            raise ConfigError(f"cannot read budget {text!r}; {hint}") from None
        amount = out.fraction if out.fraction is not None else out.value
        if not math.isfinite(amount) or amount <= 0:
            raise ConfigError(f"budget {text!r} must be a positive, finite number; {hint}")
        if out.fraction is not None and out.fraction > 1.0:
            raise ConfigError(f"budget {text!r} is more than the dense model costs; give at most 100%")
        return out

    def tightened(self, factor: float) -> str:
        """This budget divided by ``factor``, written as the user wrote it (a share or an absolute
        amount), rounded down: what to ask for where the costs run ``factor`` times the prediction."""
        if self.fraction is not None:
            return f"{_floor3(self.fraction / factor * 100):g}%"
        if self.unit == "ms":
            return f"{_floor3(self.value / factor):g}ms"
        return f"{_floor3(self.value / factor / 1e6):g}M"

    def resolve(self, metric: str, dense: float, cost_model: str = "the cost model",
                dense_measured: bool = False) -> Budget:
        """The absolute budget for a cost model that prices the dense model at ``dense`` ``metric``
        (``dense_measured``: that figure is a measurement, not the cost model's prediction)."""
        if self.fraction is not None:
            return Budget(metric, dense * self.fraction, dense, dense_measured)
        if _METRIC_UNITS.get(metric) != self.unit:
            raise ConfigError(f"budget {self.text!r} is in {self.unit} but {cost_model} predicts {metric}; "
                              f"give a share of the dense cost like 50%")
        if self.value > dense:
            raise ConfigError(f"budget {self.text!r} is above the dense model's cost ({dense:.6g} "
                              f"{self.unit}); nothing would be pruned, give a smaller budget")
        return Budget(metric, float(self.value), dense, dense_measured)


@dataclass(frozen=True)
class Budget:
    """A ceiling on one cost metric: ``value`` in the metric's unit, ``dense`` the unpruned cost
    (``dense_measured``: measured, see the module note; else the cost model's prediction)."""

    metric: str
    value: float
    dense: float
    dense_measured: bool = False

    @classmethod
    def parse(cls, spec: str | float, metric: str, dense: float, cost_model: str = "the cost model") -> Budget:
        """Shorthand for ``BudgetSpec.parse(spec).resolve(metric, dense)``."""
        return BudgetSpec.parse(spec).resolve(metric, dense, cost_model)

    @classmethod
    def from_spec(cls, cost_model: Any, spec: str | float | BudgetSpec) -> Budget:
        """The budget ``spec`` for ``cost_model`` (anything with ``metric``, ``name``, ``dense_cost()``)."""
        parsed = spec if isinstance(spec, BudgetSpec) else BudgetSpec.parse(spec)
        dense = checked_cost(cost_model, {}).value(cost_model.metric)
        if not (isinstance(dense, numbers.Real) and math.isfinite(dense) and dense > 0):
            raise ConfigError(f"cost model {cost_model.name!r} prices the dense model at {dense!r}; a cost "
                              f"must be a positive, finite number; fix the cost model")
        measured = getattr(cost_model, "measured_dense", lambda: None)()
        if measured is not None and not (isinstance(measured, numbers.Real) and math.isfinite(measured)
                                         and measured > 0):
            raise ConfigError(f"cost model {cost_model.name!r} gives the dense model's measured cost as "
                              f"{measured!r}; it must be a positive, finite number; fix the cost model")
        return parsed.resolve(cost_model.metric, float(dense if measured is None else measured),
                              f"cost model {cost_model.name!r}", measured is not None)

    @property
    def fraction(self) -> float:
        """The budget as a share of the dense cost."""
        return self.value / self.dense

    def matches(self, value: float | None) -> bool:
        """Whether ``value`` is this budget's value (as an episode or history row records it)."""
        return value is not None and abs(value - self.value) <= 1e-9 * max(abs(self.value), 1.0)

    def fits(self, cost: float, tolerance: float = 0.0) -> bool:
        """Whether ``cost`` meets the budget; ``tolerance`` is a share over it that still counts
        (0 for predicted costs, :data:`MEASURED_TOLERANCE` for measured latency)."""
        return bool(cost <= self.value * (1 + max(tolerance, _EXACT)))

    @property
    def unit(self) -> str:
        return _METRIC_UNITS.get(self.metric, self.metric)

    def to_dict(self) -> dict[str, Any]:
        out = {"metric": self.metric, "value": self.value, "fraction": round(self.fraction, 6), "dense": self.dense}
        if self.dense_measured:
            out["dense_measured"] = True
        return out

    @classmethod
    def from_dict(cls, data: Any, source: str = "budget") -> Budget:
        """The inverse of :meth:`to_dict` (``dense`` may be left out when ``fraction`` is given),
        with one-line errors for malformed records."""
        try:
            value = float(data["value"])
            dense = float(data["dense"]) if "dense" in data else value / float(data["fraction"])
            out = cls(str(data["metric"]), value, dense, data.get("dense_measured") is True)
        except (TypeError, KeyError, ValueError, ZeroDivisionError) as exc:
            raise ConfigError(f"{source}: malformed budget ({type(exc).__name__}: {exc})") from None
        if not (math.isfinite(out.value) and math.isfinite(out.dense) and out.value > 0 and out.dense > 0):
            raise ConfigError(f"{source}: budget value and dense cost must be positive, finite numbers")
        return out


def file_label(label: str) -> str:
    """A budget as written (``"30%"``, ``"0.15ms"``) as a file-name part: ``30pct``, ``0.15ms``."""
    return re.sub(r"[^A-Za-z0-9._-]+", "", label.replace("%", "pct")) or "budget"
