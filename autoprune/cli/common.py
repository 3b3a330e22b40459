"""Helpers shared by CLI sub-commands: run folders, recorded commands, JSON writes."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from autoprune.run_folder import MIN_FREE_BYTES, ensure_writable, prepare_run_folder


def command_line() -> str:
    """The command that started this process, shell-quoted, for the run folder's record."""
    return " ".join(shlex.quote(a) for a in ["autoprune", *sys.argv[1:]])


def prepare_out(path: str | Path, resume: bool = False, overwrite: bool = False, finished: tuple[str, ...] = ()) -> Path:
    """The ``--out`` run folder, checked before any work (see :mod:`autoprune.run_folder`)."""
    return prepare_run_folder(path, resume=resume, overwrite=overwrite, finished=finished)


def add_overwrite_arg(p: argparse.ArgumentParser) -> None:
    """``--overwrite``: replace the finished results of an earlier run in ``--out``."""
    p.add_argument("--overwrite", action="store_true", help="replace the finished results already in --out")


def ensure_writable_dir(path: str | Path, min_free: int = MIN_FREE_BYTES) -> Path:
    """Create ``path`` and check it is writable and has room, before any work is spent."""
    return ensure_writable(path, "--out", min_free)

