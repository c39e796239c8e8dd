"""Per-feature explanations of a Mahalanobis distance ``d(x, y)^2 = (x - y)^T M (x - y)``.

A pair's squared distance splits exactly over the input features:
``d^2 = sum_f delta_f (M delta)_f`` with ``delta = x - y``. A term is negative when a feature's
difference is offset through correlations the metric learned. :func:`metric_scales` says which
features the metric stretches (``sqrt(M_ff) > 1``) or shrinks (``< 1``) against the plain
euclidean distance, whose ``M`` is the identity.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def mahalanobis_matrix(metric: Any) -> np.ndarray:
    """``M`` from a fitted learner (``get_mahalanobis_matrix()`` or ``components_ = L``, so
    ``M = L^T L``, the :mod:`deepmetric.sklearn` learners and metric-learn's) or a square
    matrix."""
    if hasattr(metric, "get_mahalanobis_matrix"):
        matrix = np.asarray(metric.get_mahalanobis_matrix(), dtype=np.float64)
    elif hasattr(metric, "components_"):
        components = np.asarray(metric.components_, dtype=np.float64)
        matrix = components.T @ components
    else:
        matrix = np.asarray(metric, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or not np.isfinite(matrix).all():
        raise ValueError(
            "metric must be a fitted Mahalanobis learner or a finite square matrix M; got "
            f"shape {matrix.shape}"
        )
    return matrix


def mahalanobis_contributions(metric: Any, x: Any, y: Any) -> np.ndarray:
    """Each feature's share of the squared distance of ``x`` and ``y``: ``(n_features,)`` for
    one pair (1-D inputs) or ``(n, n_features)`` for rows; the shares sum to ``d(x, y)^2``.

    Example:
        >>> M = np.diag([4.0, 1.0])
        >>> mahalanobis_contributions(M, [1.0, 1.0], [0.0, 0.0]).tolist()
        [4.0, 1.0]
    """
    matrix = mahalanobis_matrix(metric)
    delta = np.asarray(x, dtype=np.float64) - np.asarray(y, dtype=np.float64)
    if delta.shape[-1] != matrix.shape[0]:
        raise ValueError(
            f"the inputs have {delta.shape[-1]} features but the metric has {matrix.shape[0]}"
        )
    return np.asarray(delta * (delta @ matrix.T))


def metric_scales(metric: Any) -> np.ndarray:
    """``sqrt(M_ff)`` per feature: how far one unit along feature ``f`` reaches under the
    learned metric (1 for the euclidean distance).

    Example:
        >>> metric_scales(np.diag([4.0, 0.25])).tolist()
        [2.0, 0.5]
    """
    return np.sqrt(np.clip(np.diag(mahalanobis_matrix(metric)), 0.0, None))


__all__ = ["mahalanobis_contributions", "mahalanobis_matrix", "metric_scales"]
