"""Pair verification: ROC, AUC, EER, TAR at fixed FAR, calibration and the LFW 10-fold protocol.

Every function takes ``scores: (n,)`` pair scores and ``is_same: (n,)`` booleans (True for a
same-identity pair). With ``higher_is_similar=True`` (similarities) a pair is accepted when
``score >= threshold``; with ``False`` (distances) when ``score <= threshold``. Thresholds are
always reported in the caller's units. Torch tensors and numpy arrays are both accepted.

Definitions: TAR (true accept rate, TPR) = accepted same pairs / same pairs; FAR (false accept
rate, FPR) = accepted different pairs / different pairs; FRR (FNR) = 1 - TAR.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..roc import (
    FloatArray,
    check_pairs,
    counts,
    far_positions,
    roc_curve,
    to_numpy,
)

DEFAULT_FARS: tuple[float, ...] = (1e-4, 1e-3, 1e-2, 1e-1)


@dataclass(frozen=True)
class EqualErrorRate:
    """The rate where FAR equals FRR and the threshold that gives it."""

    eer: float
    threshold: float


@dataclass(frozen=True)
class KFoldAccuracy:
    """Held-out accuracy of the k-fold protocol: mean, std (ddof=0) and per fold ``(folds,)``."""

    mean: float
    std: float
    accuracies: FloatArray
    thresholds: FloatArray


def roc_auc(scores: Any, is_same: Any, *, higher_is_similar: bool = True) -> float:
    """Area under the ROC curve (trapezoids; a tie between a same and a different pair counts 1/2).

    Equals ``sklearn.metrics.roc_auc_score``: the probability that a random same pair scores as
    more similar than a random different pair.

    Example:
        >>> roc_auc([0.9, 0.5, 0.5, 0.1], [True, True, False, False])
        0.875
    """
    s, same = check_pairs(scores, is_same)
    tp, fp, _ = counts(s if higher_is_similar else -s, same)
    # trapezoids on integer counts (exact for perfect separation), scaled once at the end
    return float(np.sum(np.diff(fp) * (tp[1:] + tp[:-1])) / (2 * tp[-1] * fp[-1]))


def equal_error_rate(
    scores: Any, is_same: Any, *, higher_is_similar: bool = True
) -> EqualErrorRate:
    """The equal error rate, where FAR = FRR on the ROC curve, linearly interpolated.

    Between the last ROC point with ``FAR < FRR`` and the next one, the segment is cut where
    ``FAR = FRR``; the threshold is interpolated at the same fraction between the two points'
    thresholds (the next point's threshold when the first is the accept-nothing ``inf``).

    Example:
        >>> equal_error_rate([0.9, 0.7, 0.6, 0.2], [True, False, True, False])
        EqualErrorRate(eer=0.5, threshold=0.7)
    """
    roc = roc_curve(scores, is_same, higher_is_similar=higher_is_similar)
    gap = roc.fpr - (1.0 - roc.tpr)  # -1 at the first point, >= 0 at the last; never decreases
    i = int(np.argmax(gap >= 0))
    frac = gap[i - 1] / (gap[i - 1] - gap[i])
    eer = roc.fpr[i - 1] + frac * (roc.fpr[i] - roc.fpr[i - 1])
    t0, t1 = roc.thresholds[i - 1], roc.thresholds[i]
    threshold = t1 if np.isinf(t0) else t0 + frac * (t1 - t0)
    return EqualErrorRate(float(eer), float(threshold))


def tar_at_far(
    scores: Any,
    is_same: Any,
    *,
    fars: Sequence[float] = DEFAULT_FARS,
    higher_is_similar: bool = True,
) -> dict[str, float]:
    """The best TAR among thresholds whose FAR is at most each target (no interpolation).

    A FAR below ``1 / num_different_pairs`` cannot be measured: it is reported as NaN with a
    warning rather than read off the zero-FAR point.

    Returns:
        ``{"tar_at_far_1e-04": ..., ...}`` (keys formatted ``f"{far:.0e}"``).

    Example:
        >>> tar_at_far([0.9, 0.8, 0.7, 0.1], [True, False, True, False], fars=(0.5,))
        {'tar_at_far_5e-01': 1.0}
    """
    s, same = check_pairs(scores, is_same)
    roc = roc_curve(s, same, higher_is_similar=higher_is_similar)
    positions = far_positions(roc, fars)
    negatives = int((~same).sum())
    result = {
        f"tar_at_far_{far:.0e}": float(roc.tpr[pos]) if far >= 1 / negatives else float("nan")
        for far, pos in zip(fars, positions, strict=True)
    }
    if len(result) != len(fars):
        raise ValueError(f"fars must differ in their first digit (keys {{far:.0e}}); got {fars}")
    if any(far < 1 / negatives for far in fars):
        message = f"FARs below 1/{negatives} different pairs cannot be measured; reported as NaN"
        warnings.warn(message, stacklevel=2)
    return result


def _fold_ids(n: int, folds: int, fold_ids: Any) -> np.ndarray[Any, Any]:
    if fold_ids is None:
        if not 2 <= folds <= n:
            raise ValueError(f"folds must be in [2, {n}] for {n} pairs; got {folds!r}")
        return np.arange(n) * folds // n  # consecutive, equal-size folds (LFW's pairs.txt)
    ids = to_numpy("fold_ids", fold_ids)
    if ids.dtype.kind not in "iu" or ids.shape != (n,):
        raise ValueError(f"fold_ids must be ({n},) integers; got {ids.shape} {ids.dtype}")
    if len(np.unique(ids)) != folds:
        raise ValueError(f"fold_ids has {len(np.unique(ids))} distinct folds; folds={folds}")
    return np.unique(ids, return_inverse=True)[1]


def _best_accuracy_threshold(s: FloatArray, same: np.ndarray[Any, Any]) -> float:
    """The midpoint threshold ``t`` maximising the accuracy of ``s > t``; ties: the highest."""
    tp, fp, values = counts(s, same)
    accuracy = tp + (fp[-1] - fp)  # accepted same + rejected different
    best = int(np.argmax(accuracy))
    if best == 0:
        return float("inf")
    if best == len(values) - 1:
        return float("-inf")
    return float((values[best] + values[best + 1]) / 2)


def kfold_accuracy(
    scores: Any,
    is_same: Any,
    *,
    folds: int = 10,
    fold_ids: Any = None,
    higher_is_similar: bool = True,
) -> KFoldAccuracy:
    """Accuracy under the LFW k-fold protocol.

    For each fold, the threshold maximising accuracy on the other folds is applied to the held-out
    fold; candidates are the midpoints between consecutive distinct scores (and ``+-inf``), ties
    going to the strictest. Follows "Labeled Faces in the
    Wild" (Huang et al., 2007, http://vis-www.cs.umass.edu/lfw/), whose pairs.txt lists 10
    consecutive sets: the default folds are consecutive and equal, and ``fold_ids: (n,)`` can give
    any other split (then ``folds`` must be its number of distinct ids). The midpoint thresholds
    make the result invariant to increasing affine maps of the scores, not to every monotone one.

    Example:
        >>> kfold_accuracy([0.9, 0.1, 0.8, 0.2], [True, False, True, False], folds=2).mean
        1.0
    """
    s, same = check_pairs(scores, is_same)
    ids = _fold_ids(len(s), folds, fold_ids)
    oriented = s if higher_is_similar else -s
    accuracies, thresholds = np.zeros(folds), np.zeros(folds)
    for k in range(folds):
        held = ids == k
        if same[~held].all() or not same[~held].any():
            raise ValueError(f"the training folds for fold {k} hold only one kind of pair")
        t = _best_accuracy_threshold(oriented[~held], same[~held])
        accuracies[k] = np.mean((oriented[held] > t) == same[held])
        thresholds[k] = t if higher_is_similar else -t
    return KFoldAccuracy(float(accuracies.mean()), float(accuracies.std()), accuracies, thresholds)


def verification_metrics(
    scores: Any,
    is_same: Any,
    *,
    higher_is_similar: bool = True,
    fars: Sequence[float] = DEFAULT_FARS,
    folds: int = 10,
    fold_ids: Any = None,
) -> dict[str, float]:
    """All verification numbers in one flat dict.

    Keys: ``auc``, ``eer``, ``eer_threshold``, ``tar_at_far_{far:.0e}`` per FAR (NaN below
    1/num_different_pairs), ``accuracy`` and ``accuracy_std`` (k-fold protocol).

    Example:
        >>> m = verification_metrics([0.9, 0.1, 0.8, 0.2], [1, 0, 1, 0], fars=(0.5,), folds=2)
        >>> m["auc"], m["eer"], m["tar_at_far_5e-01"], m["accuracy"]
        (1.0, 0.0, 1.0, 1.0)
    """
    s, same = check_pairs(scores, is_same)
    eer = equal_error_rate(s, same, higher_is_similar=higher_is_similar)
    kfold = kfold_accuracy(
        s, same, folds=folds, fold_ids=fold_ids, higher_is_similar=higher_is_similar
    )
    return {
        "auc": roc_auc(s, same, higher_is_similar=higher_is_similar),
        "eer": eer.eer,
        "eer_threshold": eer.threshold,
        **tar_at_far(s, same, fars=fars, higher_is_similar=higher_is_similar),
        "accuracy": kfold.mean,
        "accuracy_std": kfold.std,
    }
