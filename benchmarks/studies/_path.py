"""Imported first by every study: puts ``benchmarks/`` on the import path, so a study run as
``python benchmarks/studies/<name>.py`` uses the helpers the live benchmarks share (``common``,
``protocol``, ``channel_bench``) without copying them."""

import sys
from pathlib import Path

BENCHMARKS = str(Path(__file__).resolve().parents[1])
if BENCHMARKS not in sys.path:
    sys.path.insert(0, BENCHMARKS)
