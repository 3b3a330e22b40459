"""A small name registry (timm's register / create / list trio) shared by models, importances, cost models."""

from __future__ import annotations

import site
import sysconfig
from collections.abc import Callable
from functools import lru_cache
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Any, Generic, TypeVar

from autoprune.errors import ConfigError
from autoprune.references import named_for_run

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to factories; optionally also reads an entry-point group for plug-ins."""

    def __init__(self, kind: str, entry_point_group: str | None = None) -> None:
        self.kind = kind
        self.entry_point_group = entry_point_group
        self._factories: dict[str, Callable[..., T]] = {}

    def register(self, name: str) -> Callable[[Callable[..., T]], Callable[..., T]]:
        """Decorator: register ``factory`` under ``name``."""

        def decorator(factory: Callable[..., T]) -> Callable[..., T]:
            self._factories[name] = factory
            return factory

        return decorator

    def add(self, name: str, factory: Callable[..., T]) -> None:
        """Register ``factory`` under ``name`` (the non-decorator form)."""
        self._factories[name] = factory

    def _plugins(self, everywhere: bool = False) -> dict[str, Any]:
        """Entry points of the plug-in group not shadowed by a built-in, by name (not loaded yet):
        those of installed packages (in site-packages), and, with ``everywhere``, also those of a
        distribution found anywhere on ``sys.path`` (the working directory, a folder a file added)."""
        if self.entry_point_group is None:
            return {}
        return {ep.name: ep for ep in entry_points(group=self.entry_point_group)
                if ep.name not in self._factories and (everywhere or installed(ep))}

    def _load(self, name: str) -> None:
        """Load the plug-in ``name``: a broken plug-in fails only when it is the one asked for.

        A plug-in from a distribution outside site-packages (an unpacked archive in the working
        directory, say) loads only when the user named it for this run (command line, or
        ``autoprune.consent``): a name read from a file never runs code from such a folder."""
        ep = self._plugins().get(name)
        if ep is None:
            stray = self._plugins(everywhere=True).get(name)
            if stray is None:
                return
            if not named_for_run(name):
                raise ConfigError(f"{self.kind} {name!r} is a plug-in of a package outside site-packages "
                                  f"({_location(stray)}); autoprune loads it only when you name it on the command "
                                  f"line, or install the package with pip")
            ep = stray
        try:
            self._factories[name] = ep.load()
        except Exception as exc:  # noqa: BLE001 - whatever a broken package raises, one line
            raise ConfigError(f"{self.kind} plug-in {name!r} ({ep.value}) failed to load: "
                              f"{type(exc).__name__}: {exc}; fix or uninstall the package that provides it") from None

    def names(self) -> list[str]:
        """Sorted names of everything registered, plug-ins included (listed, not loaded)."""
        return sorted({*self._factories, *self._plugins()})

    def get(self, name: str) -> Callable[..., T]:
        """The factory registered under ``name``; a clear error listing the known names otherwise."""
        if name not in self._factories:
            self._load(name)
        if name not in self._factories:
            raise ConfigError(
                f"unknown {self.kind} {name!r}; known: {', '.join(self.names())}"
            )
        return self._factories[name]

    def create(self, name: str, **kwargs: Any) -> T:
        """Build the thing registered under ``name`` with ``kwargs``."""
        return self.get(name)(**kwargs)


@lru_cache(maxsize=1)
def _site_dirs() -> tuple[Path, ...]:
    """The environment's site-packages folders (where pip installs), resolved."""
    dirs = {*site.getsitepackages(), site.getusersitepackages(), *(sysconfig.get_paths()[k] for k in ("purelib", "platlib"))}
    return tuple(Path(d).resolve() for d in dirs if d)


def _location(ep: EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    return str(Path(str(dist.locate_file(""))).resolve()) if dist is not None else "unknown location"


def installed(ep: EntryPoint) -> bool:
    """True when the entry point's distribution lives in one of the environment's site-packages."""
    dist = getattr(ep, "dist", None)
    if dist is None:
        return False
    where = Path(str(dist.locate_file(""))).resolve()
    return any(where == d or d in where.parents for d in _site_dirs())
