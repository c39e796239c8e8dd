"""The one calibration rule of the applications: the most permissive cut-off that lets at most
a given share of a set of scores through."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .._checks import check_number


def cutoff(scores: Any, rate: float, *, higher_passes: bool) -> float:
    """A threshold ``t`` such that at most ``floor(rate * n)`` of ``scores`` pass it, and no
    more permissive one does: passing is ``score > t`` when ``higher_passes``, else
    ``score < t`` (ties with ``t`` never pass, so tied scores are never split).

    Example:
        >>> cutoff([0.1, 0.2, 0.3, 0.4], 0.5, higher_passes=True)  # 0.4 and 0.3 pass
        0.2
    """
    check_number("rate", rate, low=0, high=1)
    values = np.sort(np.asarray(scores, dtype=np.float64).ravel())
    if values.size == 0 or not np.isfinite(values).all():
        raise ValueError("calibration needs at least one finite score")
    allowed = min(math.floor(rate * values.size), values.size - 1)
    return float(values[::-1][allowed] if higher_passes else values[allowed])
