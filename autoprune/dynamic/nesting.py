"""Nesting: per-budget policies made into variants that keep subsets of each other's channels."""

from __future__ import annotations

from collections.abc import Callable, Mapping


def nest_variants(variants: Mapping[str, Mapping[str, int]], size: Callable[[Mapping[str, int]], float]
                  ) -> dict[str, dict[str, int]]:
    """Variants ordered from the largest to the smallest by ``size`` (e.g. predicted latency), each
    cut to at most the channels of the next larger one in every group, so every smaller variant
    keeps a subset of every larger one's channels (with one importance order per group). Widths
    only shrink, so a variant that met its budget still does when costs grow with width; callers
    check them against the cost model."""
    ordered = sorted(variants, key=lambda label: size(variants[label]), reverse=True)
    nested: dict[str, dict[str, int]] = {}
    previous: dict[str, int] | None = None
    for label in ordered:
        kept = dict(variants[label])
        if previous is not None:
            kept = {g: min(k, previous.get(g, k)) for g, k in kept.items()}
        nested[label] = kept
        previous = kept
    return nested
