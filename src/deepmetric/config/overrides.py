"""``--set key.path=value`` overrides: parsed as YAML scalars and applied to a config mapping."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import yaml


class ConfigError(ValueError):
    """A config that cannot be read or is invalid; the message is one readable line."""

    __module__ = "deepmetric.config"  # where users import it from


def parse_overrides(overrides: Sequence[str]) -> list[tuple[list[str], Any]]:
    """``["a.b=1", ...]`` as ``[(["a", "b"], 1), ...]``; values parsed as YAML scalars.

    Example:
        >>> parse_overrides(["epochs=3", "miner=null", "loss.name=supcon"])
        [(['epochs'], 3), (['miner'], None), (['loss', 'name'], 'supcon')]
    """
    parsed = []
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key or any(not part for part in key.split(".")):
            raise ConfigError(f"--set must look like key.path=value; got {item!r}")
        try:
            value = yaml.safe_load(text) if text else ""
        except yaml.YAMLError:
            raise ConfigError(f"--set {key}: {text!r} is not a YAML value") from None
        parsed.append((key.split("."), value))
    return parsed


def apply_override(data: dict[str, Any], path: list[str], value: Any, defaults: Any) -> None:
    """Set ``data[path] = value``; a missing section starts as its default, so that
    ``--set model.embedding_dim=32`` changes one field of the default model."""
    node = data
    for depth, part in enumerate(path[:-1]):
        defaults = defaults.get(part) if isinstance(defaults, dict) else None
        child = node.get(part)
        if child is None:
            child = node[part] = dict(defaults) if isinstance(defaults, dict) else {}
        if not isinstance(child, dict):
            where = ".".join(path[: depth + 1])
            raise ConfigError(f"--set {'.'.join(path)}: {where} is {child!r}, not a mapping")
        node = child
    node[path[-1]] = value


__all__ = ["ConfigError", "apply_override", "parse_overrides"]
