"""Run configs: typed, strict, YAML.

``RunConfig`` and its sections; ``load_config(path, overrides)``, ``build_config(mapping,
overrides)``, ``save_config``; ``ConfigError`` for every config problem (one readable line).
:mod:`deepmetric.runs` turns a config into a trained, evaluated model.
"""

from __future__ import annotations

from .schema import (
    ConfigError,
    DataConfig,
    EvaluationConfig,
    OutputConfig,
    RunConfig,
    build_config,
    load_config,
    parse_overrides,
    save_config,
)

__all__ = [
    "ConfigError",
    "DataConfig",
    "EvaluationConfig",
    "OutputConfig",
    "RunConfig",
    "build_config",
    "load_config",
    "parse_overrides",
    "save_config",
]
