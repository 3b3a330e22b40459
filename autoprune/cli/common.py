"""Helpers shared by CLI sub-commands: run folders, recorded commands, JSON writes."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from autoprune.errors import ConfigError


def command_line() -> str:
    """The command that started this process, shell-quoted, for the run folder's record."""
    return " ".join(shlex.quote(a) for a in ["autoprune", *sys.argv[1:]])


def ensure_writable_dir(path: str | Path) -> Path:
    """Create ``path`` and check it is writable, before any work is spent."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise ConfigError(f"output folder {path} is not writable ({exc.strerror}); choose another --out") from exc
    return path

