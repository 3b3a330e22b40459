"""Run folders: the folder named by ``--out`` is one autoprune made, holds only regular files, and
keeps its finished results unless the user asks to replace them.

A run folder may arrive from elsewhere (unpacked, shared, copied), so before any work is spent:
a folder that holds files autoprune did not write is refused (its own folders carry a marker); a
symbolic link or a hard-linked file anywhere inside is refused (a write through it would land
outside the folder); a finished result (``model.pt``, an export, ``dynamic.pt``) is replaced only
with ``--overwrite`` (a search or pipeline continues with ``--resume``). Writes themselves are atomic renames of files created in the folder
(:mod:`autoprune.atomic`), which replace a link rather than follow it.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from collections.abc import Iterable
from pathlib import Path

from autoprune.errors import ConfigError

MARKER = ".autoprune"  # written into every folder autoprune makes for a run
MIN_FREE_BYTES = 50 * 2**20  # checkpoints, agent state and history of a search fit in far less
MAX_SCANNED = 200_000  # entries looked at for links; a run folder holds far fewer


def prepare_run_folder(path: str | Path, *, resume: bool = False, overwrite: bool = False,
                       finished: Iterable[str] = (), option: str = "--out",
                       min_free: int = MIN_FREE_BYTES) -> Path:
    """Create or reopen ``path`` as a run folder; one-line errors before any work is spent.

    Args:
        resume: the user continues a run in this folder (a folder without the marker is accepted:
            runs made before the marker existed resume too).
        overwrite: finished results in the folder may be replaced.
        finished: file names that are finished results of this command.
        option: the option that named the folder, for messages.

    Raises:
        ConfigError: a link, a foreign non-empty folder, a finished result without ``overwrite``,
            an unwritable folder or a full disk.
    """
    path = Path(path)
    if path.is_symlink():
        raise ConfigError(f"{option} {path} is a symbolic link (to {os.readlink(path)}); name the folder itself")
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{option} {path} is a file, not a folder; choose another {option}")
    if path.is_dir():
        _check_foreign(path, resume, option)
        check_no_links(path, option)
        if not overwrite:
            for name in finished:
                if (path / name).exists():
                    raise ConfigError(f"{path / name} exists (a finished result); pass --overwrite to replace it "
                                      f"or choose another {option}")
    ensure_writable(path, option, min_free)
    if not (path / MARKER).is_file():
        from autoprune.atomic import write_text_atomic

        write_text_atomic(path / MARKER, "made by autoprune: a run folder (safe to resume or overwrite)\n")
    return path


def ensure_writable(path: str | Path, option: str = "--out", min_free: int = MIN_FREE_BYTES) -> Path:
    """Create ``path`` and check it is writable and has room, before any work is spent.

    Raises:
        ConfigError: naming the folder and ``option`` to change.
    """
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=path, prefix=".write-test.")  # O_EXCL: never through a link
        os.close(fd)
        os.unlink(probe)
        free = shutil.disk_usage(path).free
    except OSError as exc:
        raise ConfigError(f"{option} folder {path} is not writable ({exc.strerror}); choose another {option}") from exc
    if free < min_free:
        raise ConfigError(f"only {free / 2**20:.1f} MiB free under {path} (need {min_free // 2**20} MiB); "
                          f"free some space or choose another {option}")
    return path


def _check_foreign(path: Path, resume: bool, option: str) -> None:
    """Refuse a non-empty folder without the marker, unless the user resumes in it."""
    if resume or (path / MARKER).is_file():
        return
    entries = sorted(e.name for _, e in zip(range(4), os.scandir(path)))
    if entries:
        raise ConfigError(f"{option} {path} is not empty and was not made by autoprune (it holds "
                          f"{', '.join(entries)}{' ...' if len(entries) > 3 else ''}); choose a new or empty folder")


def check_no_links(path: str | Path, option: str = "--out") -> None:
    """Refuse a symbolic link or a hard-linked file anywhere under ``path`` (links are not followed).

    Raises:
        ConfigError: naming the first link found.
    """
    seen = 0
    for root, dirs, files in os.walk(path, followlinks=False):
        for name in [*dirs, *files]:
            seen += 1
            if seen > MAX_SCANNED:
                raise ConfigError(f"{option} {path} holds over {MAX_SCANNED} files; choose a new folder")
            full = os.path.join(root, name)
            st = os.lstat(full)
            if stat.S_ISLNK(st.st_mode):
                raise ConfigError(f"{full} is a symbolic link; autoprune writes only files it made inside a run "
                                  f"folder: remove the link or choose another {option}")
            if stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
                raise ConfigError(f"{full} is hard-linked to another file; autoprune writes only files it made "
                                  f"inside a run folder: remove it or choose another {option}")
            if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
                raise ConfigError(f"{full} is not a regular file or folder; remove it or choose another {option}")
