"""Bounds on every size a user or a file controls, checked before anything is built from it.

Files travel (policies, checkpoints, dynamic models) and options are typed by hand; a size that
is far beyond any real model is a damaged file or a typo, and is refused in one line instead of
allocating gigabytes first.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from autoprune.errors import ConfigError

MAX_INPUT_ELEMENTS = 1 << 26  # one input's elements (64 M: a 4k RGB image is 25 M)
MAX_MODEL_ARGS_BYTES = 64 * 1024  # a factory's keyword arguments, not data
MAX_MODEL_ARGS_DEPTH = 16
MAX_CLASSES, MAX_IN_CHANNELS = 1_000_000, 4096


def checked_file(path: str | Path, what: str, limit: int, fix: str, error: type[Exception] = ConfigError) -> Path:
    """``path`` as a file of at most ``limit`` bytes, or a one-line ``error``: ``{what} {path} does
    not exist; {fix}`` or ``... is N bytes, over the L MiB limit; is it the right file?``."""
    path = Path(path)
    if not path.is_file():
        raise error(f"{what} {path} does not exist{'; ' + fix if fix else ''}")
    size = path.stat().st_size
    if size > limit:
        shown = f"{limit // 2**20} MiB" if limit >= 2**20 else f"{limit // 1024} KiB"
        raise error(f"{what} {path} is {size} bytes, over the {shown} limit; is it the right file?")
    return path


def check_input_size(shape: Sequence[int], source: str) -> None:
    """Refuse an input shape of more than :data:`MAX_INPUT_ELEMENTS` elements."""
    elements = math.prod(int(s) for s in shape)
    if elements > MAX_INPUT_ELEMENTS:
        raise ConfigError(f"{source} {list(shape)} is {elements:,} elements per input, over the "
                          f"{MAX_INPUT_ELEMENTS:,} this tool handles; check the shape")
