"""Helpers shared by the benchmark scripts: result folders that record how they were made."""

from __future__ import annotations

import dataclasses
import platform
import shlex
import sys
from datetime import datetime, timezone
from pathlib import Path

import onnxruntime
import torch

from autoprune.atomic import write_json_atomic, write_text_atomic
from autoprune.data import DataSplits
from autoprune.devices import device_info

ROOT = Path(__file__).resolve().parents[1]


def trimmed(splits: DataSplits, images: int | None) -> DataSplits:
    """``splits`` with its training split cut to the first ``images`` (None: whole)."""
    if not images:
        return splits
    return dataclasses.replace(splits, x_train=splits.x_train[:images], y_train=splits.y_train[:images])


def result_dir(name: str) -> Path:
    """``results/<name>/`` with ``command.txt`` and ``machine.json`` written."""
    return _stamped(ROOT / "results" / name)


def output_dir(out: str | None, name: str) -> Path:
    """The folder the user named (``--out``), else ``results/<name>/``; either way with
    ``command.txt`` and ``machine.json`` written, so every results folder says how it was made."""
    return _stamped(Path(out)) if out else result_dir(name)


def _stamped(out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    script = Path(sys.argv[0]).resolve().relative_to(ROOT)
    args = " ".join(shlex.quote(a) for a in [str(script), *sys.argv[1:]])
    write_text_atomic(out / "command.txt", f"python {args}   # from the repository root\n")
    write_json_atomic(out / "machine.json", {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), **device_info(),
        "torch": torch.__version__, "onnxruntime": onnxruntime.__version__, "platform": platform.platform()})
    return out
