"""ITML on weakly supervised data: pairs labelled similar (+1) or dissimilar (-1).

A separate estimator rather than an ``ITML.fit_pairs`` method: its ``fit`` and ``predict`` take
pairs, not points, so it is a binary classifier of pairs (usable in ``cross_val_score`` and
``GridSearchCV`` on pairs), while ``ITML`` stays a transformer of points. Pairs come as an
``(n, 2, d)`` array, or flattened to ``(n, 2 d)`` with the first point in the left half (the form
scikit-learn's 2-D tools pass around).
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from scipy import sparse
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import check_is_fitted, validate_data

from .._checks import check_int, check_number
from ._base import Array, MahalanobisMetric, check_pairs
from .itml import components_from_matrix, fit_bounds, itml_projections, prior_matrix

Strategy = Literal["accuracy", "f1"]


def best_threshold(distances: Array, similar: Array, strategy: Strategy) -> float:
    """The distance threshold (similar when ``distance < t``) that maximises ``strategy`` on
    the given pairs; it is placed midway between two consecutive distinct distances."""
    order = np.argsort(distances, kind="stable")
    d, sim = distances[order], similar[order]
    tp = np.concatenate([[0], np.cumsum(sim)])  # cut after the first k pairs, k = 0..n
    fp = np.arange(len(d) + 1) - tp
    fn = sim.sum() - tp
    if strategy == "accuracy":
        score = (tp + (len(d) - sim.sum() - fp)) / len(d)
    elif strategy == "f1":
        score = 2 * tp / np.maximum(2 * tp + fp + fn, 1)
    else:
        raise ValueError(f"strategy must be 'accuracy' or 'f1'; got {strategy!r}")
    cuts = np.concatenate([[True], d[1:] > d[:-1], [True]])  # never split equal distances
    k = int(np.flatnonzero(cuts)[np.argmax(score[cuts])])
    if k == 0:
        return float(d[0] - 1.0)
    if k == len(d):
        return float(d[-1] + 1.0)
    return float((d[k - 1] + d[k]) / 2.0)


class ITMLPairs(ClassifierMixin, BaseEstimator):
    """ITML from labelled pairs, with a calibrated threshold to classify new pairs.

    ``fit(pairs, y)`` learns ``A`` by the Bregman projections of ``ITML`` over the given pairs
    (``y = +1`` similar, ``-1`` dissimilar; any two labels work, the larger one meaning
    similar, as scikit-learn's positive class), then calibrates ``threshold_`` on the same pairs
    for accuracy. ``decision_function(pairs) = threshold_ - distance``; ``predict`` gives the
    similar label where it is positive.

    Paper: "Information-Theoretic Metric Learning", Davis et al., ICML 2007,
    https://www.cs.utexas.edu/~pjain/pubs/metriclearning_icml.pdf

    Args:
        gamma, max_iter, tol, prior, bounds, n_components: as in ``ITML``.

    Attributes:
        components_: ``(n_components, d)``; bounds_; threshold_; classes_ (``[dissimilar,
        similar]``); n_iter_; n_features_in_: ``2 d``, the width of a flattened pair.

    Example:
        >>> pairs = np.array([[[0.0, 0.0], [0.1, 0.0]], [[0.0, 0.0], [3.0, 0.0]],
        ...                   [[1.0, 1.0], [1.0, 1.2]], [[1.0, 1.0], [1.0, 4.0]]])
        >>> ITMLPairs().fit(pairs, [1, -1, 1, -1]).predict(pairs).tolist()
        [1, -1, 1, -1]
    """

    def __init__(
        self,
        gamma: float = 0.1,
        max_iter: int = 1000,
        tol: float = 1e-3,
        prior: Any = "identity",
        bounds: Any = None,
        n_components: int | None = None,
    ) -> None:
        self.gamma = gamma
        self.max_iter = max_iter
        self.tol = tol
        self.prior = prior
        self.bounds = bounds
        self.n_components = n_components

    def _pairs(self, pairs: Any, y: Any = None, reset: bool = False) -> Any:
        """Validated ``(n, 2, d)`` pairs (and ``y``), through ``validate_data`` on the flat form."""
        ndim = np.ndim(pairs) if isinstance(pairs, list | tuple) else getattr(pairs, "ndim", 2)
        if not sparse.issparse(pairs) and ndim == 3:
            pairs = np.asarray(pairs).reshape(len(pairs), -1)
        if reset:
            flat, y = validate_data(self, pairs, y, dtype=np.float64)
        else:
            flat = validate_data(self, pairs, reset=False, dtype=np.float64)
        if flat.shape[1] % 2:
            raise ValueError(
                "pairs flattened to 2-D need an even number of columns, the first point then the "
                f"second (n_pairs, 2 * n_features); got {flat.shape[1]} feature(s)"
            )
        return check_pairs(flat) if y is None else (check_pairs(flat), y)

    def fit(self, pairs: Any, y: Any) -> ITMLPairs:
        """Learn the metric from ``pairs: (n, 2, d)`` and their labels ``y: (n,)``."""
        checked, y = self._pairs(pairs, y, reset=True)
        check_classification_targets(y)
        if type_of_target(y) != "binary":
            raise ValueError(
                "Only binary classification is supported: y must label pairs similar (+1) or "
                f"dissimilar (-1); got target type {type_of_target(y)!r}"
            )
        self.classes_, similar = np.unique(y, return_inverse=True)
        if len(self.classes_) != 2:
            raise ValueError(
                "ITMLPairs needs pairs of both labels, similar (+1) and dissimilar (-1); got 1 "
                f"class: {self.classes_[0]!r}"
            )
        check_number("gamma", self.gamma, low=0.0, strict=True)
        check_int("max_iter", self.max_iter, 1)
        check_number("tol", self.tol, low=0.0, strict=True)
        check_int("n_components", self.n_components, 1, optional=True)
        d = checked.shape[2]
        diffs = checked[:, 0] - checked[:, 1]
        prior = prior_matrix(checked.reshape(-1, d), self.prior)
        self.bounds_ = fit_bounds(np.einsum("cd,de,ce->c", diffs, prior, diffs), self.bounds)
        A, self.n_iter_ = itml_projections(
            diffs, similar == 1, self.bounds_, prior, float(self.gamma), self.max_iter, self.tol
        )
        self.components_ = components_from_matrix(A, min(self.n_components or d, d))
        self.threshold_ = best_threshold(self._distance(checked), similar == 1, "accuracy")
        return self

    def _distance(self, checked: Array) -> Array:
        return np.asarray(
            np.linalg.norm((checked[:, 0] - checked[:, 1]) @ self.components_.T, axis=1)
        )

    def pair_distance(self, pairs: Any) -> Array:
        """``|L (a - b)|`` for each pair: ``(n, 2, d) -> (n,)``."""
        check_is_fitted(self)
        return self._distance(self._pairs(pairs))

    def get_mahalanobis_matrix(self) -> Array:
        """``M = L^T L``: ``(d, d)``."""
        check_is_fitted(self)
        return np.asarray(self.components_.T @ self.components_)

    def get_metric(self) -> MahalanobisMetric:
        """The learned metric as a callable on two 1-D points."""
        check_is_fitted(self)
        return MahalanobisMetric(self.components_)

    def decision_function(self, pairs: Any) -> Array:
        """``threshold_ - distance``: positive for pairs predicted similar; ``(n,)``."""
        check_is_fitted(self)
        return self.threshold_ - self.pair_distance(pairs)

    def predict(self, pairs: Any) -> Array:
        """``classes_[1]`` (similar, +1) where ``decision_function > 0``, else ``classes_[0]``."""
        check_is_fitted(self)
        return np.asarray(self.classes_[(self.decision_function(pairs) > 0).astype(int)])

    def calibrate_threshold(self, pairs: Any, y: Any, strategy: Strategy = "accuracy") -> ITMLPairs:
        """Set ``threshold_`` to maximise ``strategy`` (``"accuracy"`` or ``"f1"``) on labelled
        pairs (for instance held-out ones); returns ``self``."""
        distances = self.pair_distance(pairs)
        y = np.asarray(y)
        if y.shape != distances.shape:
            raise ValueError(
                f"y must have one label per pair, shape ({len(distances)},); got {y.shape}"
            )
        unknown = np.setdiff1d(y, self.classes_)
        if len(unknown):
            raise ValueError(
                f"y holds labels {unknown.tolist()} not seen in fit {self.classes_.tolist()}"
            )
        self.threshold_ = best_threshold(distances, y == self.classes_[1], strategy)
        return self

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = False
        return tags
