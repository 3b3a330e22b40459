"""When progress bars show: asked for, on a terminal, and not switched off by ``TQDM_DISABLE``."""

from __future__ import annotations

import os
import sys


def bar_disabled(progress: bool) -> bool | None:
    """tqdm's ``disable`` for a caller that wants bars when ``progress``: None lets tqdm hide them
    when output is not a terminal (logs piped to a file stay readable)."""
    if not progress or os.environ.get("TQDM_DISABLE", "").strip().lower() not in ("", "0", "false", "no"):
        return True
    return None


def plain_lines(progress: bool) -> bool:
    """Whether to print occasional plain progress lines instead: bars wanted, but output is a file."""
    return bar_disabled(progress) is None and not sys.stderr.isatty()
