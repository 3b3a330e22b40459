"""Helpers shared by CLI sub-commands: run folders, recorded commands, JSON writes."""

from __future__ import annotations

import shlex
import shutil
import sys
from pathlib import Path

from autoprune.errors import ConfigError


def command_line() -> str:
    """The command that started this process, shell-quoted, for the run folder's record."""
    return " ".join(shlex.quote(a) for a in ["autoprune", *sys.argv[1:]])


MIN_FREE_BYTES = 50 * 2**20  # checkpoints, agent state and history of a search fit in far less


def ensure_writable_dir(path: str | Path, min_free: int = MIN_FREE_BYTES) -> Path:
    """Create ``path`` and check it is writable and has room, before any work is spent."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".write-test"
        probe.write_text("ok")
        probe.unlink()
        free = shutil.disk_usage(path).free
    except OSError as exc:
        raise ConfigError(f"output folder {path} is not writable ({exc.strerror}); choose another --out") from exc
    if free < min_free:
        raise ConfigError(f"only {free / 2**20:.1f} MiB free under {path} (need {min_free // 2**20} MiB); "
                          f"free some space or choose another --out")
    return path

