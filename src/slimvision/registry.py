"""An explicit name -> object registry that refuses to overwrite a name."""

from __future__ import annotations

import importlib
from typing import Callable, Generic, Iterator, TypeVar

from slimvision.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to objects; registering a name twice is an error, never a silent overwrite.

    `plugins` are modules that register more entries when imported (NAS spaces add zoo models,
    proxies add evaluators); they are imported on the first lookup that needs them, so a package
    low in the stack never imports the packages above it.
    """

    def __init__(self, kind: str, plugins: tuple[str, ...] = ()):
        self.kind = kind
        self.plugins = plugins
        self._items: dict[str, T] = {}

    def load_plugins(self) -> None:
        for module in self.plugins:
            importlib.import_module(module)

    def register(self, name: str | None = None) -> Callable[[T], T]:
        """Decorator that registers the object under `name` (default: its __name__)."""

        def decorator(obj: T) -> T:
            self.add(name or obj.__name__, obj)  # type: ignore[attr-defined]
            return obj

        return decorator

    def add(self, name: str, obj: T) -> None:
        if name in self._items:
            raise ConfigError(f"{self.kind} {name!r} is already registered")
        self._items[name] = obj

    def get(self, name: str) -> T:
        if name not in self._items:
            self.load_plugins()
        try:
            return self._items[name]
        except KeyError:
            known = ", ".join(sorted(self._items)) or "none"
            raise ConfigError(f"unknown {self.kind} {name!r}; known: {known}") from None

    def __contains__(self, name: str) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def names(self) -> list[str]:
        self.load_plugins()
        return sorted(self._items)
