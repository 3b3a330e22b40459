"""Reading a user's batches: an error a loader raises becomes one line naming what was read."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from autoprune.errors import AutopruneError, DataError


def guarded(batches: Iterable[Any], what: str) -> Iterator[Any]:
    """``batches``, with an error raised while reading them turned into one line naming ``what``."""
    iterator, index = iter(batches), 0
    while True:
        try:
            item = next(iterator)
        except StopIteration:
            return
        except AutopruneError:
            raise
        except Exception as exc:  # noqa: BLE001 - a user's loader: whatever it raises, one line
            if isinstance(exc, MemoryError):
                raise
            raise DataError(f"reading {what} failed at batch {index + 1}: {type(exc).__name__}: "
                            f"{str(exc)[:200]}; fix the data or its factory") from None
        yield item
        index += 1
