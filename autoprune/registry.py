"""A small name registry (timm's register / create / list trio) shared by models, importances, cost models."""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any, Generic, TypeVar

from autoprune.errors import ConfigError

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

    def _plugins(self) -> dict[str, Any]:
        """Entry points of the plug-in group not shadowed by a built-in, by name (not loaded yet)."""
        if self.entry_point_group is None:
            return {}
        return {ep.name: ep for ep in entry_points(group=self.entry_point_group) if ep.name not in self._factories}

    def _load(self, name: str) -> None:
        """Load the plug-in ``name``: a broken plug-in fails only when it is the one asked for."""
        ep = self._plugins().get(name)
        if ep is None:
            return
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
