"""The search space: which widths (channels kept) each group may take.

Two forms, one type. A *grid* (the default) allows every multiple of ``round_to`` between the
widths the ratio bounds give (AMC's continuous ratio, rounded). A *list* allows only the widths
named (``--widths 0.25,0.5,0.75,1.0``: fractions of a group's channels; whole numbers above 1 are
channel counts), per group if a config file says so: Channel-Bench-Macro's four choices, or
hardware that runs only multiples of 16 or 32. Every searcher, the budget wall and the projection
take their widths from here, so no candidate ever leaves the space.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from autoprune.analysis.groups import PrunableGroup
from autoprune.errors import ConfigError
from autoprune.pruning.ratios import channels_kept, group_kept, multiple


@dataclass(frozen=True)
class WidthChoices:
    """Allowed widths per group, ascending; ``listed``: given as a short list (searchers then pick
    among them with equal chance) rather than a fine grid (an action maps to a ratio, rounded)."""

    levels: dict[str, tuple[int, ...]]
    listed: bool = False

    @classmethod
    def grid(cls, groups: Sequence[PrunableGroup], min_ratio: Sequence[float], max_ratio: Sequence[float],
             round_to: int = 1) -> WidthChoices:
        """Multiples of ``round_to`` (a group narrower than that: every width) within the ratio bounds."""
        levels = {}
        for g, lo_ratio, hi_ratio in zip(groups, min_ratio, max_ratio):
            lo, hi = group_kept(g, hi_ratio, round_to), group_kept(g, lo_ratio, round_to)
            every = multiple(round_to, g.step)
            step = every if g.channels >= every else 1
            levels[g.name] = tuple(sorted({*range(lo, hi, step), hi}))
        return cls(levels)

    @classmethod
    def listing(cls, groups: Sequence[PrunableGroup], widths: Sequence[float],
                per_group: Mapping[str, Sequence[float]] | None = None, min_ratio: Sequence[float] | None = None,
                max_ratio: Sequence[float] | None = None, round_to: int = 1) -> WidthChoices:
        """The widths named (fractions, or channel counts above 1), per group overrides first; each
        rounded as a policy rounds it (to ``round_to``) and kept within the ratio bounds."""
        per_group = dict(per_group or {})
        unknown = sorted(set(per_group) - {g.name for g in groups})
        if unknown:
            raise ConfigError(f"widths are given for group {unknown[0]!r}, which the model does not have; "
                              f"its groups are {', '.join(g.name for g in list(groups)[:4])}, ...")
        levels = {}
        for t, g in enumerate(groups):
            named = [width_in_channels(w, g.channels, round_to, g.step) for w in per_group.get(g.name, widths)]
            lo = 0 if max_ratio is None else group_kept(g, max_ratio[t], round_to)
            hi = g.channels if min_ratio is None else group_kept(g, min_ratio[t], round_to)
            allowed = sorted({n for n in named if lo <= n <= hi})
            if not allowed:
                raise ConfigError(f"no width of {sorted(set(named))} for group {g.name!r} ({g.channels} channels) lies "
                                  f"within the ratio bounds ({lo} to {hi} channels); widen --max-ratio or the widths")
            levels[g.name] = tuple(allowed)
        return cls(levels, listed=True)

    def lowest(self, name: str) -> int:
        return self.levels[name][0]

    def highest(self, name: str) -> int:
        return self.levels[name][-1]

    def snap(self, name: str, width: float) -> int:
        """The allowed width nearest ``width``; on a tie the one at an even position of the list
        (on a grid this is Python's ``round``: half to even)."""
        levels = self.levels[name]
        i = bisect.bisect_left(levels, width)
        if i == 0:
            return levels[0]
        if i == len(levels):
            return levels[-1]
        below, above = levels[i - 1], levels[i]
        if above - width == width - below:
            return above if i % 2 == 0 else below
        return above if above - width < width - below else below

    def wider(self, name: str, width: int) -> int:
        """The next allowed width above ``width`` (itself at the top)."""
        levels = self.levels[name]
        i = bisect.bisect_right(levels, width)
        return levels[i] if i < len(levels) else levels[-1]

    def narrower(self, name: str, width: int) -> int:
        """The next allowed width below ``width`` (itself at the bottom)."""
        levels = self.levels[name]
        i = bisect.bisect_left(levels, width)
        return levels[i - 1] if i > 0 else levels[0]

    def pick(self, name: str, share: float) -> int:
        """The width at ``share`` in [0, 1] of the list, each width an equal part (listed spaces)."""
        levels = self.levels[name]
        return levels[min(len(levels) - 1, max(0, int(share * len(levels))))]

    def share_of(self, name: str, width: int) -> float:
        """The middle of the part of [0, 1] that :meth:`pick` maps to ``width`` (snapped)."""
        levels = self.levels[name]
        return (levels.index(self.snap(name, width)) + 0.5) / len(levels)

    def to_dict(self) -> dict[str, list[int]]:
        """Channels allowed per group (for a policy file)."""
        return {name: list(levels) for name, levels in self.levels.items()}


def width_in_channels(width: float, channels: int, round_to: int = 1, step: int = 1) -> int:
    """A width as channels: a fraction in (0, 1] of ``channels`` (rounded as policies are), or a count
    (down to a whole number of the group's blocks of ``step`` channels)."""
    if isinstance(width, bool) or not isinstance(width, (int, float)) or not width > 0:
        raise ConfigError(f"a width must be a fraction in (0, 1] or a channel count, got {width!r}")
    if width <= 1.0:
        return channels_kept(channels, 1.0 - float(width), round_to, step) if width < 1.0 else channels
    if float(width) != int(width):
        raise ConfigError(f"a width above 1 is a channel count and must be whole, got {width!r}")
    return max(step, min(int(width), channels) // step * step)


def parse_widths(text: str | Sequence[float] | None) -> list[float]:
    """``"0.25,0.5,0.75,1.0"`` (or ``16,32,48,64`` channel counts) -> the list; one-line errors."""
    if text is None or text == "" or text == []:
        return []
    items = text.split(",") if isinstance(text, str) else list(text)
    try:
        widths = [float(v) for v in items]
    except (TypeError, ValueError):
        raise ConfigError(f"--widths takes comma-separated fractions like 0.25,0.5,0.75,1.0 (or channel "
                          f"counts like 16,32,64), got {text!r}") from None
    if not all(math.isfinite(w) for w in widths):
        raise ConfigError(f"--widths must be finite numbers (fractions like 0.5 or channel counts like 32), got {text!r}")
    for w in widths:
        width_in_channels(w, 1 << 30)
    if len(widths) > 256:
        raise ConfigError("--widths lists more than 256 widths; use --round-to for a fine grid")
    return widths
