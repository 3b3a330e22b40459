"""From a pruning ratio to a channel count: the single rule every part of the tool shares."""

from __future__ import annotations

import math
from collections.abc import Mapping

from autoprune.analysis.groups import PrunableGroup

DEFAULT_MAX_RATIO = 0.8  # the largest share of one group a search or a global rule removes, unless told


def multiple(round_to: int = 1, step: int = 1) -> int:
    """The multiple a group's channel count is kept in: ``round_to`` and the group's unit size both."""
    return math.lcm(max(1, int(round_to)), max(1, int(step)))


def channels_kept(channels: int, ratio: float, round_to: int = 1, step: int = 1) -> int:
    """Channels kept when ``ratio`` of ``channels`` is pruned, rounded to a multiple of ``round_to``
    and of the group's unit size ``step`` (a norm group, one position per convolution group, a head).

    At least one channel (or the multiple, if the layer is that wide) is always kept.
    """
    if not 0.0 <= ratio < 1.0:
        raise ValueError(f"ratio must be in [0, 1), got {ratio}")
    step = multiple(round_to, step)
    kept = int(round(channels * (1.0 - ratio) / step)) * step
    return max(min(step, channels), min(kept, channels))


def group_kept(group: PrunableGroup, ratio: float, round_to: int = 1) -> int:
    """:func:`channels_kept` for a group: its channels, kept in whole units (``group.step``)."""
    return channels_kept(group.channels, ratio, round_to, group.step)


def architecture_for(groups: list[PrunableGroup], ratios: Mapping[str, float],
                     round_to: int = 1) -> dict[str, int]:
    """Channels kept per group for ``ratios`` (groups not named keep every channel)."""
    return {g.name: group_kept(g, float(ratios.get(g.name, 0.0)), round_to) for g in groups}
