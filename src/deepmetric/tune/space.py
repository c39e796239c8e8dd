"""The search space file of ``deepmetric tune``: run-config keys and their distributions.

```yaml
direction: maximize            # or minimize; the metric is the run's validation.select
pruner: {name: median, warmup_epochs: 1, startup_trials: 5}  # or successive_halving, none
params:
  optimizer.lr: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}
  sampler.m_per_class: {type: int, low: 2, high: 8}
  loss: {type: categorical, choices: [{name: prototypical}, {name: supcon, temperature: 0.1}]}
```

A categorical choice may be a whole sub-config (a loss with its parameters). Every key is
checked against the run config, with every bound of its range, before a trial runs.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import yaml

from .._checks import check_choice, reject_unknown
from ..config import load_config

KINDS = ("float", "int", "categorical")
PRUNERS = ("median", "successive_halving", "none")


class SpaceError(ValueError):
    """A bad space file; the message names the file and the key."""


@dataclasses.dataclass(frozen=True)
class Param:
    """One searched key: ``type`` float, int or categorical, with its range or choices."""

    key: str
    kind: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple[Any, ...] = ()

    def suggest(self, trial: Any) -> Any:
        """The value an Optuna trial picks (a categorical choice as given)."""
        if self.kind == "float":
            return trial.suggest_float(self.key, self.low, self.high, log=self.log, step=self.step)
        if self.kind == "int":
            low, high = int(self.low or 0), int(self.high or 0)
            return trial.suggest_int(self.key, low, high, log=self.log, step=int(self.step or 1))
        index = trial.suggest_categorical(self.key, list(range(len(self.choices))))
        return self.choices[index]

    def extremes(self) -> list[Any]:
        """The values that bound the range (checked against the config before any trial)."""
        return list(self.choices) if self.kind == "categorical" else [self.low, self.high]


@dataclasses.dataclass(frozen=True)
class Space:
    """A parsed space file."""

    params: tuple[Param, ...]
    direction: str = "maximize"
    pruner: dict[str, Any] = dataclasses.field(default_factory=lambda: {"name": "median"})

    def overrides(self, values: dict[str, Any]) -> list[str]:
        """``key=value`` overrides (values as JSON, which is YAML) for :func:`load_config`."""
        return [f"{key}={json.dumps(value)}" for key, value in values.items()]


def _param(where: str, key: str, spec: Any) -> Param:
    if not isinstance(spec, dict) or "type" not in spec:
        raise SpaceError(
            f"{where}: params.{key} must be a mapping with a 'type' ({', '.join(KINDS)})"
        )
    try:
        check_choice(f"params.{key}.type", spec["type"], KINDS)
        kind = spec["type"]
        known = (
            ["type", "choices"] if kind == "categorical" else ["type", "low", "high", "log", "step"]
        )
        reject_unknown("key", spec, known, f"params.{key}", ValueError)
    except ValueError as err:
        raise SpaceError(f"{where}: {err}") from None
    if kind == "categorical":
        choices = spec.get("choices")
        if not isinstance(choices, list) or not choices:
            raise SpaceError(f"{where}: params.{key}.choices must be a non-empty list")
        return Param(key, kind, choices=tuple(choices))
    low, high, log = spec.get("low"), spec.get("high"), bool(spec.get("log", False))
    numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (low, high))
    if not numbers or not low < high or (log and low <= 0):  # type: ignore[operator]
        need = "0 < low < high" if log else "low < high"
        raise SpaceError(
            f"{where}: params.{key} needs numbers with {need}; got low={low!r}, high={high!r}"
        )
    if kind == "int" and not (float(low).is_integer() and float(high).is_integer()):  # type: ignore[arg-type]
        raise SpaceError(f"{where}: params.{key} is an int range; got low={low!r}, high={high!r}")
    return Param(key, kind, float(low), float(high), log, spec.get("step"))  # type: ignore[arg-type]


def load_space(path: str | Path, config: str | Path) -> Space:
    """Read and check a space file against the run config at ``config``.

    Raises:
        SpaceError: one line naming the file, the key and what is wrong.
    """
    where = str(path)
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as err:
        raise SpaceError(f"{where}: cannot read the space file ({err})") from None
    if not isinstance(data, dict) or not isinstance(data.get("params"), dict) or not data["params"]:
        raise SpaceError(f"{where}: a space file is a mapping with a non-empty 'params' mapping")
    try:
        reject_unknown("key", data, ["params", "direction", "pruner"], where, ValueError)
        check_choice("direction", data.get("direction", "maximize"), ("maximize", "minimize"))
        pruner = data.get("pruner") or {"name": "none"}
        check_choice(
            "pruner.name", pruner.get("name") if isinstance(pruner, dict) else pruner, PRUNERS
        )
    except ValueError as err:
        raise SpaceError(f"{where}: {err}") from None
    params = tuple(_param(where, str(key), spec) for key, spec in data["params"].items())
    for param in params:  # every bound must make a valid run config
        for value in param.extremes():
            try:
                load_config(config, [f"{param.key}={json.dumps(value)}"])
            except (ValueError, KeyError) as err:
                text = str(err.args[0]) if isinstance(err, KeyError) else str(err)
                raise SpaceError(
                    f"{where}: params.{param.key} = {value!r}: {text.splitlines()[0]}"
                ) from None
    return Space(params, data.get("direction", "maximize"), dict(pruner))
