"""Helpers shared by CLI sub-commands: run folders, recorded commands, JSON writes."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from autoprune.devices import check_provider
from autoprune.latency import LATENCY_BATCH_HELP, PROVIDERS_HELP, LatencySettings
from autoprune.run_folder import MIN_FREE_BYTES, ensure_writable, prepare_run_folder
from autoprune.scoring import SCORE_HELP


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



class _Renamed(argparse.Action):
    """Stores the value; the old spelling of an option still works, with a note naming the new one."""

    def __call__(self, parser, namespace, values, option_string=None):
        if option_string != self.option_strings[0]:
            print(f"note: {option_string} is now {self.option_strings[0]}", file=sys.stderr)
        setattr(namespace, self.dest, values)


def add_latency_args(p: argparse.ArgumentParser, what: str) -> None:
    """How latency is measured, spelled as in ``search``: ``--latency-threads``, ``--latency-batch``,
    ``--provider`` (``--threads`` and ``--batch-size``, the old spellings, still read)."""
    p.add_argument("--latency-threads", "--threads", type=int, default=1, action=_Renamed,
                   help=f"ONNX Runtime threads when {what}")
    p.add_argument("--latency-batch", "--batch-size", type=int, default=1, action=_Renamed,
                   help=LATENCY_BATCH_HELP)
    p.add_argument("--provider", default=None, metavar="NAME",
                   help=f"ONNX Runtime execution provider when {what} ({PROVIDERS_HELP})")


def latency_settings(args: argparse.Namespace, **timing: int) -> LatencySettings:
    """The :class:`LatencySettings` of :func:`add_latency_args`' options, checked (``timing``:
    warm-up and repeat counts where a command wants its own)."""
    return LatencySettings(batch_size=args.latency_batch, threads=args.latency_threads,
                           provider=check_provider(args.provider), **timing)


def add_score_arg(p: argparse.ArgumentParser, what: str) -> None:
    """``--score``, with the one description every command shares."""
    p.add_argument("--score", default=None, metavar="FILE.py:FUNCTION", help=f"{what} with {SCORE_HELP}")
