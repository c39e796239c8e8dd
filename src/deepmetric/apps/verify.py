"""Verification: is this pair the same identity? Scores, a calibrated threshold, decisions."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ..distances import Metric, check_metric, is_similarity, paired
from ..evaluation import equal_error_rate, roc_auc, tar_at_far
from ..roc import threshold_at_far


def pair_scores(a: Any, b: Any, metric: Metric = "cosine") -> np.ndarray:
    """``(n,)`` scores of the pairs ``(a[i], b[i])``: a similarity for cosine and dot, a
    distance for the euclidean metrics."""
    check_metric(metric)
    x, y = torch.as_tensor(np.asarray(a)).double(), torch.as_tensor(np.asarray(b)).double()
    return paired(x, y, metric).numpy()


def calibrate_threshold(scores: Any, same: Any, *, far: float, metric: Metric = "cosine") -> float:
    """The most permissive threshold whose false accept rate on these labelled pairs is at
    most ``far``: a pair is "same" when its score is at least as similar as it.

    Example:
        >>> calibrate_threshold([0.9, 0.8, 0.7, 0.1], [True, False, True, False], far=0.5)
        0.7
    """
    return threshold_at_far(scores, same, far, higher_is_similar=is_similarity(metric))


def decide(scores: Any, threshold: float, metric: Metric = "cosine") -> np.ndarray:
    """``(n,)`` booleans: each score at the threshold or more similar."""
    s = np.asarray(scores, dtype=np.float64)
    return s >= threshold if is_similarity(metric) else s <= threshold


def verification_report(
    scores: Any,
    same: Any,
    *,
    metric: Metric = "cosine",
    threshold: float | None = None,
    fars: Sequence[float] = (1e-3, 1e-2, 1e-1),
) -> dict[str, float]:
    """ROC AUC, EER, TAR at each FAR and, with a threshold, the accuracy and the FAR and TAR
    measured at it, of labelled pairs."""
    higher = is_similarity(metric)
    truth = np.asarray(same, dtype=bool)
    out = {
        "pairs": float(len(truth)),
        "roc_auc": roc_auc(scores, truth, higher_is_similar=higher),
        "eer": equal_error_rate(scores, truth, higher_is_similar=higher).eer,
    }
    usable = [f for f in fars if f * (~truth).sum() >= 1]
    out.update(tar_at_far(scores, truth, fars=usable, higher_is_similar=higher))
    if threshold is not None:
        said = decide(scores, threshold, metric)
        out["accuracy"] = float((said == truth).mean())
        out["far_at_threshold"] = float(said[~truth].mean()) if (~truth).any() else float("nan")
        out["tar_at_threshold"] = float(said[truth].mean()) if truth.any() else float("nan")
    return out


__all__ = ["calibrate_threshold", "decide", "pair_scores", "verification_report"]
