"""Name → component registries, so that config files can say ``{"name": "triplet", "margin": 0.1}``.

A leaf module: it imports only the shared argument checks.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Generic, TypeVar

from ._checks import reject_unknown

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
        reject_unknown(self.kind, [name], self.names(), error=KeyError)
        return self._entries[name]

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def check(self, spec: Mapping[str, Any], *, supplied: Sequence[str] = ()) -> type[T]:
        """The class ``spec`` names, once its name and keys are known; ``KeyError`` otherwise.

        ``supplied``: parameters the caller fills in itself, which the spec may not set.
        """
        cls = self.get(spec["name"])
        accepted = [p for p in inspect.signature(cls).parameters if p not in ("self", *supplied)]
        keys = [k for k in spec if k != "name"]
        reject_unknown("parameter", keys, accepted, f"{self.kind} {spec['name']!r}", KeyError)
        return cls

    def build(self, spec: Mapping[str, Any] | str, **context: Any) -> T:
        """Build from ``{"name": ..., **params}`` (or a bare name); unknown parameters raise.

        ``context`` (say ``num_classes=`` from the data) fills in the parameters that the class
        takes and the spec does not set; the class may ignore it.
        """
        if isinstance(spec, str):
            spec = {"name": spec}
        if not isinstance(spec, Mapping) or "name" not in spec:
            raise ValueError(f"{self.kind} spec must be a mapping with a 'name' key; got {spec!r}")
        if context:
            takes = inspect.signature(self.get(spec["name"])).parameters
            spec = {**{k: v for k, v in context.items() if k in takes}, **spec}
        params = {k: v for k, v in spec.items() if k != "name"}
        cls = self.check(spec)
        signature = inspect.signature(cls)
        try:
            signature.bind(**params)
        except TypeError as err:
            raise TypeError(f"{self.kind} {spec['name']!r}: {err}") from None
        return cls(**params)
