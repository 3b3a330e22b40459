"""Handing freed heap memory back to the OS during long runs.

A search builds and drops thousands of differently-shaped pruned models (reference cycles,
freed only by a full garbage collection) and agent tensors; glibc's allocator keeps freed pages.
Resident memory then creeps up (~50 KB an episode with an SB3 agent) although nothing is leaked.
A full collection plus ``malloc_trim`` returns it; without glibc the trim is a no-op.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import gc


@functools.lru_cache(maxsize=1)
def _libc():
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    return libc if libc is not None and hasattr(libc, "malloc_trim") else None


def release_free_memory() -> bool:
    """Collect cyclic garbage, then return freed heap pages to the OS (glibc ``malloc_trim``).

    Returns False where the trim is unavailable (the collection still happens).
    """
    gc.collect()
    libc = _libc()
    return bool(libc.malloc_trim(0)) if libc is not None else False


def rss_mib() -> float | None:
    """This process's resident memory in MiB (Linux ``/proc``), None elsewhere."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * 4096 / 2**20
    except OSError:
        return None
