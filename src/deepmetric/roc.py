"""ROC curves and threshold calibration over scored pairs: the primitive under verification
metrics and the index's match threshold.

``scores: (n,)`` pair scores and ``is_same: (n,)`` booleans. With ``higher_is_similar=True``
(similarities) a pair is accepted when ``score >= threshold``; with ``False`` (distances) when
``score <= threshold``. A leaf module.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

FloatArray = np.ndarray[Any, np.dtype[np.float64]]


@dataclass(frozen=True)
class RocCurve:
    """ROC points, one per distinct score plus the accept-nothing point first.

    ``fpr``, ``tpr`` and ``thresholds`` are ``(points,)``; ``fpr`` and ``tpr`` never decrease.
    ``thresholds[0]`` is ``inf`` (``-inf`` for distances): nothing is accepted.
    """

    fpr: FloatArray
    tpr: FloatArray
    thresholds: FloatArray


def to_numpy(name: str, value: Any) -> np.ndarray[Any, Any]:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    array = np.asarray(value)
    if array.ndim != 1 or array.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D array; got shape {array.shape}")
    return array


def check_pairs(scores: Any, is_same: Any) -> tuple[FloatArray, np.ndarray[Any, Any]]:
    """``(scores as float64, is_same as bool)``, or a ValueError naming the bad argument."""
    s, same = to_numpy("scores", scores), to_numpy("is_same", is_same)
    if s.dtype.kind not in "iuf":
        raise ValueError(f"scores must be real numbers; got dtype {s.dtype}")
    s = s.astype(np.float64)
    if not np.isfinite(s).all():
        raise ValueError(f"scores must be finite; got {int((~np.isfinite(s)).sum())} NaN/Inf")
    if same.shape != s.shape:
        raise ValueError(f"is_same must have the shape of scores {s.shape}; got {same.shape}")
    if same.dtype.kind in "iu" and np.isin(same, (0, 1)).all():
        same = same.astype(bool)
    if same.dtype != np.bool_:
        raise ValueError(f"is_same must be bool (or 0/1 integers); got dtype {same.dtype}")
    positives = int(same.sum())
    if positives in (0, same.size):
        raise ValueError(
            "is_same must hold both same and different pairs; "
            f"got {positives} same and {same.size - positives} different"
        )
    return s, same


def counts(s: FloatArray, same: np.ndarray[Any, Any]) -> tuple[FloatArray, FloatArray, FloatArray]:
    """``(accepted same, accepted different, threshold)`` per distinct value of ``s``, descending.

    Accepting ``s >= threshold``; the accept-nothing point ``(0, 0, inf)`` comes first.
    """
    order = np.argsort(-s, kind="stable")
    s_sorted, same_sorted = s[order], same[order]
    # the last position of each run of equal scores: the ROC moves by whole ties at once
    ends = np.flatnonzero(np.r_[s_sorted[1:] != s_sorted[:-1], True])
    tp = np.cumsum(same_sorted)[ends].astype(np.float64)
    fp = (ends + 1) - tp
    return np.r_[0.0, tp], np.r_[0.0, fp], np.r_[np.inf, s_sorted[ends]]


def roc_curve(scores: Any, is_same: Any, *, higher_is_similar: bool = True) -> RocCurve:
    """The ROC curve: FPR and TPR at every distinct score used as a threshold.

    Equals ``sklearn.metrics.roc_curve(is_same, scores, drop_intermediate=False)`` (scores
    negated for distances), whose first point is the accept-nothing threshold.

    Args:
        scores: ``(n,)`` pair similarities (or distances with ``higher_is_similar=False``).
        is_same: ``(n,)`` bools; both classes must be present.

    Example:
        >>> roc = roc_curve([0.9, 0.8, 0.3], [True, False, False])
        >>> roc.fpr.tolist(), roc.tpr.tolist(), roc.thresholds.tolist()
        ([0.0, 0.0, 0.5, 1.0], [0.0, 1.0, 1.0, 1.0], [inf, 0.9, 0.8, 0.3])
    """
    s, same = check_pairs(scores, is_same)
    sign = 1.0 if higher_is_similar else -1.0
    tp, fp, thresholds = counts(sign * s, same)
    return RocCurve(fp / fp[-1], tp / tp[-1], sign * thresholds)


def far_positions(roc: RocCurve, fars: Sequence[float]) -> np.ndarray[Any, Any]:
    """For each FAR, the last ROC point with ``fpr <= far`` (the most true accepts)."""
    bad = [f for f in fars if not 0.0 <= f <= 1.0]
    if bad:
        raise ValueError(f"fars must lie in [0, 1]; got {bad}")
    return np.searchsorted(roc.fpr, np.asarray(fars, dtype=np.float64), side="right") - 1


def threshold_at_far(
    scores: Any, is_same: Any, far: float, *, higher_is_similar: bool = True
) -> float:
    """The most permissive threshold whose FAR on these pairs is at most ``far`` (calibration).

    Raises ``ValueError`` when ``far < 1 / num_different_pairs``: such a FAR cannot be measured.

    Example:
        >>> threshold_at_far([0.9, 0.8, 0.7, 0.1], [True, False, True, False], 0.5)
        0.7
    """
    s, same = check_pairs(scores, is_same)
    negatives = int((~same).sum())
    if not 1.0 / negatives <= far <= 1.0:
        raise ValueError(
            f"far must be in [1/{negatives}, 1] for {negatives} different pairs; got {far!r}"
        )
    roc = roc_curve(s, same, higher_is_similar=higher_is_similar)
    return float(roc.thresholds[far_positions(roc, [far])[0]])
