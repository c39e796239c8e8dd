"""Name → component registries, so that config files can say ``{"name": "triplet", "margin": 0.1}``.

A leaf module: it imports nothing from the package.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """A mapping from explicit names to classes, with strict building.

    Example:
        >>> things = Registry("thing")
        >>> @things.register("pair")
        ... class Pair:
        ...     def __init__(self, left: int = 1, right: int = 2) -> None:
        ...         self.left, self.right = left, right
        >>> things.build({"name": "pair", "left": 5}).left
        5
        >>> things.names()
        ['pair']
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, type[T]] = {}

    def register(self, name: str) -> Callable[[type[T]], type[T]]:
        """Class decorator that adds the class under ``name``; a duplicate name raises."""

        def add(cls: type[T]) -> type[T]:
            if name in self._entries:
                raise ValueError(
                    f"{self.kind} name {name!r} is already registered to "
                    f"{self._entries[name].__qualname__}"
                )
            self._entries[name] = cls
            return cls

        return add

    def names(self) -> list[str]:
        """The registered names, sorted."""
        return sorted(self._entries)

    def get(self, name: str) -> type[T]:
        """The class registered as ``name``; a miss raises ``KeyError`` with close matches."""
        if name not in self._entries:
            close = difflib.get_close_matches(name, self._entries, n=3)
            hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
            raise KeyError(f"unknown {self.kind} {name!r}{hint} known: {', '.join(self.names())}")
        return self._entries[name]

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def build(self, spec: Mapping[str, Any] | str) -> T:
        """Build from ``{"name": ..., **params}`` (or a bare name); unknown parameters raise."""
        if isinstance(spec, str):
            spec = {"name": spec}
        if not isinstance(spec, Mapping) or "name" not in spec:
            raise ValueError(f"{self.kind} spec must be a mapping with a 'name' key; got {spec!r}")
        params = {k: v for k, v in spec.items() if k != "name"}
        cls = self.get(spec["name"])
        signature = inspect.signature(cls)
        accepted = [p for p in signature.parameters if p != "self"]
        unknown = [k for k in params if k not in accepted]
        if unknown:
            hints = []
            for key in unknown:
                close = difflib.get_close_matches(key, accepted, n=1)
                hints.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
            raise KeyError(
                f"{self.kind} {spec['name']!r} got unknown parameter(s) {', '.join(hints)}; "
                f"accepted: {', '.join(accepted) or 'none'}"
            )
        try:
            signature.bind(**params)
        except TypeError as err:
            raise TypeError(f"{self.kind} {spec['name']!r}: {err}") from None
        return cls(**params)
