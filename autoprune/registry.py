"""A small name registry (timm's register / create / list trio) shared by models, importances, cost models."""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any, Callable, Generic, TypeVar

from autoprune.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to factories; optionally also reads an entry-point group for plug-ins."""

    def __init__(self, kind: str, entry_point_group: str | None = None) -> None:
        self.kind = kind
        self.entry_point_group = entry_point_group
        self._factories: dict[str, Callable[..., T]] = {}
        self._plugins_loaded = False

    def register(self, name: str) -> Callable[[Callable[..., T]], Callable[..., T]]:
        """Decorator: register ``factory`` under ``name``."""

        def decorator(factory: Callable[..., T]) -> Callable[..., T]:
            self._factories[name] = factory
            return factory

        return decorator

    def add(self, name: str, factory: Callable[..., T]) -> None:
        """Register ``factory`` under ``name`` (the non-decorator form)."""
        self._factories[name] = factory

    def _load_plugins(self) -> None:
        if self._plugins_loaded or self.entry_point_group is None:
            return
        self._plugins_loaded = True
        for ep in entry_points(group=self.entry_point_group):
            if ep.name not in self._factories:
                try:
                    self._factories[ep.name] = ep.load()
                except Exception as exc:  # a broken plug-in must not break the built-ins
                    raise ConfigError(
                        f"{self.kind} plug-in {ep.name!r} ({ep.value}) failed to load: {exc}; "
                        f"fix or uninstall the package that provides it"
                    ) from exc

    def names(self) -> list[str]:
        """Sorted names of everything registered, plug-ins included."""
        self._load_plugins()
        return sorted(self._factories)

    def get(self, name: str) -> Callable[..., T]:
        """The factory registered under ``name``; a clear error listing the known names otherwise."""
        self._load_plugins()
        if name not in self._factories:
            raise ConfigError(
                f"unknown {self.kind} {name!r}; known: {', '.join(self.names())}"
            )
        return self._factories[name]

    def create(self, name: str, **kwargs: Any) -> T:
        """Build the thing registered under ``name`` with ``kwargs``."""
        return self.get(name)(**kwargs)
