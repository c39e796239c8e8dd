"""Training history records grouped into plot panels: loss, learning rate, validation, monitor.

A record is one mapping of names to numbers. Records with ``kind == "step"``, or with a
``"step"`` and no ``"epoch"``, are per-step and plotted against the step; the others against the
epoch (or their position when they carry none). Validation metrics may be named ``val/x``,
``val_x`` or ``validation/x``; monitor statistics ``monitor/x`` or ``train_x``. Non-numeric, boolean
and non-finite values are skipped.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

_AXES = ("epoch", "step", "kind")
_VAL_PREFIXES = ("val/", "val_", "validation/")
_MONITOR_PREFIXES = ("monitor/", "train_")
_PRETTY = {
    "precision_at_1": "P@1",
    "r_precision": "R-precision",
    "map_at_r": "MAP@R",
    "map": "mAP",
    "mrr": "MRR",
    "nmi": "NMI",
    "lr": "learning rate",
}


@dataclass(frozen=True)
class Series:
    """One line: ``label``, its ``x`` and ``y`` values."""

    label: str
    x: list[float]
    y: list[float]


@dataclass
class Panel:
    """One small plot: a title, the x axis name and its lines."""

    title: str
    xlabel: str
    series: list[Series] = field(default_factory=list)
    log_y: bool = False


def pretty(name: str) -> str:
    """A readable metric name: ``recall_at_4`` -> ``Recall@4``, ``map_at_r`` -> ``MAP@R``.

    Example:
        >>> pretty("recall_at_4"), pretty("map_at_r"), pretty("neg_dist")
        ('Recall@4', 'MAP@R', 'neg dist')
    """
    if name in _PRETTY:
        return _PRETTY[name]
    match = re.fullmatch(r"(recall|ndcg|precision)_at_(\d+)", name)
    if match:
        family = {"recall": "Recall", "ndcg": "NDCG", "precision": "P"}[match.group(1)]
        return f"{family}@{match.group(2)}"
    return name.replace("_", " ")


def _is_step(record: Mapping[str, Any]) -> bool:
    return record.get("kind") == "step" or ("step" in record and "epoch" not in record)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        return None
    return float(value) if math.isfinite(float(value)) else None


def collect(records: Sequence[Mapping[str, Any]], axis: str) -> dict[str, Series]:
    """Every numeric key of ``records`` as a series against ``axis`` (or the record position)."""
    out: dict[str, Series] = {}
    for position, record in enumerate(records):
        x = _number(record.get(axis))
        x = float(position) if x is None else x
        for key, value in record.items():
            y = _number(value)
            if key in _AXES or y is None:
                continue
            series = out.setdefault(key, Series(key, [], []))
            series.x.append(x)
            series.y.append(y)
    return out


def _strip(key: str, prefixes: Sequence[str]) -> str | None:
    for prefix in prefixes:
        if key.startswith(prefix):
            return key[len(prefix) :]
    return None


def _family(key: str) -> tuple[str, str]:
    """``(group, panel title)`` for a key of an epoch record."""
    val = _strip(key, _VAL_PREFIXES)
    mon = _strip(key, _MONITOR_PREFIXES)
    if "loss" in key:
        return "training", "Loss"
    if key in ("lr", "learning_rate") or key.startswith("lr/"):
        return "training", "Learning rate"
    if val is not None:
        if re.fullmatch(r"(recall|precision)_at_\d+", val):
            return "validation", "Validation Recall@k"
        if re.fullmatch(r"ndcg_at_\d+", val):
            return "validation", "Validation NDCG@k"
        return "validation", "Validation ranking metrics"
    if mon is not None:
        if "dist" in mon and ("pos" in mon or "neg" in mon):
            return "monitor", "Same-class vs different-class distance"
        if "violation" in mon:
            return "monitor", "Margin violations"
        return "monitor", pretty(mon).capitalize()
    if key.endswith("time"):
        return "other", "Time (s)"
    return "other", pretty(key)


def _label(key: str) -> str:
    name = _strip(key, _VAL_PREFIXES) or _strip(key, _MONITOR_PREFIXES) or key
    if re.fullmatch(r"pos_dist(ance)?", name):
        return "same-class"
    if re.fullmatch(r"neg_dist(ance)?", name):
        return "different-class"
    return pretty(name)


def history_panels(history: Sequence[Mapping[str, Any]]) -> dict[str, list[Panel]]:
    """Panels by group (``training``, ``validation``, ``monitor``, ``other``, ``steps``).

    Example:
        >>> groups = history_panels([{"epoch": 0, "loss": 1.0, "val/map_at_r": 0.2}])
        >>> [(g, [p.title for p in ps]) for g, ps in groups.items() if ps]
        [('training', ['Loss']), ('validation', ['Validation ranking metrics'])]
    """
    groups: dict[str, dict[str, Panel]] = {
        g: {} for g in ("training", "validation", "monitor", "other", "steps")
    }
    steps = [r for r in history if _is_step(r)]
    epochs = [r for r in history if not _is_step(r)]
    epoch_axis = "epoch" if any("epoch" in r for r in epochs) else "record"
    for key, series in collect(epochs, "epoch").items():
        group, title = _family(key)
        panel = groups[group].setdefault(title, Panel(title, epoch_axis))
        panel.series.append(Series(_label(key), series.x, series.y))
    for key, series in collect(steps, "step").items():
        title = f"{pretty(key).capitalize()} per step"
        panel = groups["steps"].setdefault(title, Panel(title, "step"))
        panel.series.append(Series(_label(key), series.x, series.y))
    for panel in (p for g in groups.values() for p in g.values()):
        values = [v for s in panel.series for v in s.y]
        panel.log_y = "Learning rate" in panel.title and min(values) > 0 and (
            max(values) / min(values) > 20
        )  # fmt: skip
    return {g: list(panels.values()) for g, panels in groups.items()}
