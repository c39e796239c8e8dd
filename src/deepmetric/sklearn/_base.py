"""The shared base of the Mahalanobis learners and the input checks of every estimator.

A Mahalanobis learner holds ``components_ = L`` of shape ``(n_components, n_features)``; its
metric is ``d(x, y) = |L (x - y)| = sqrt((x - y)^T M (x - y))`` with ``M = L^T L``.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.decomposition import PCA
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from .._checks import check_device, check_int

Array = np.ndarray[Any, Any]
FLOATS = [np.float64, np.float32]


def check_classes(estimator: BaseEstimator, X: Any, y: Any) -> tuple[Array, Array]:
    """Validated ``X (n, d)`` float64 and ``y`` encoded as ``0..c-1``; sets ``classes_``.

    Raises ``ValueError`` (scikit-learn's wording) for NaN/Inf, fewer than 2 samples, a
    continuous target, a single class, or a class with a single member.
    """
    X, y = validate_data(estimator, X, y, dtype=np.float64, ensure_min_samples=2)
    check_classification_targets(y)
    classes, encoded, counts = np.unique(y, return_inverse=True, return_counts=True)
    name = type(estimator).__name__
    if len(classes) < 2:
        raise ValueError(
            f"{name} needs samples of at least 2 classes in the data; "
            f"got 1 class: {classes.tolist()[0]!r}"
        )
    if counts.min() < 2:
        lonely = classes.tolist()[counts.argmin()]
        raise ValueError(
            f"The least populated class in y has only 1 member, which is too few: {name} needs "
            f"at least 2 members in every class to compare them (class {lonely!r} has 1)"
        )
    estimator.classes_ = classes
    return X, encoded.astype(np.int64)


def resolve_device(device: str) -> torch.device:
    """``torch.device(device)``; ``ValueError`` for an unknown or unavailable device."""
    return check_device(device)


def seed_from(random_state: Any) -> int:
    """An int seed from ``random_state`` (None, int or RandomState), never the global RNGs."""
    if random_state is None:  # fresh OS entropy rather than numpy's global state
        return int(np.random.SeedSequence().generate_state(1)[0] >> 1)
    if isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool):
        return int(random_state) % (2**63)
    if isinstance(random_state, np.random.RandomState):
        return int(random_state.randint(2**31 - 1))
    raise ValueError(f"random_state must be None, an int or a RandomState; got {random_state!r}")


def initial_components(X: Array, n_components: int, init: Any, seed: int) -> Array:
    """``(n_components, d)`` starting ``L``: ``"identity"``, ``"pca"``, ``"random"``, ``"auto"``
    (PCA when reducing the dimension, else identity) or a given array."""
    d = X.shape[1]
    if isinstance(init, np.ndarray):
        if init.shape != (n_components, d):
            raise ValueError(
                f"init must have shape (n_components, n_features) = ({n_components}, {d}); "
                f"got {init.shape}"
            )
        return init.astype(np.float64)
    if init == "auto":
        init = "pca" if n_components < d else "identity"
    if init == "identity":
        return np.eye(n_components, d)
    if init == "pca":
        k = min(n_components, X.shape[0])
        pca = PCA(n_components=k, random_state=seed).fit(X)
        rows = np.zeros((n_components, d))
        rows[:k] = pca.components_
        return rows
    if init == "random":
        return np.random.default_rng(seed).standard_normal((n_components, d)) / np.sqrt(d)
    raise ValueError(f"init must be 'auto', 'identity', 'pca', 'random' or an array; got {init!r}")


def output_dim(n_components: int | None, n_features: int) -> int:
    """The number of output dimensions; ``ValueError`` if above ``n_features``."""
    check_int("n_components", n_components, 1, optional=True)
    if n_components is None:
        return n_features
    if n_components > n_features:
        raise ValueError(f"n_components must be <= n_features = {n_features}; got {n_components}")
    return int(n_components)


def check_pairs(pairs: Any, n_features: int | None = None) -> Array:
    """``pairs`` as a float64 ``(n, 2, d)`` array; a 2-D ``(n, 2 d)`` array is split in halves.

    ``ValueError`` for another shape, NaN/Inf, no pairs, or ``d != n_features``.
    """
    array = np.asarray(pairs)
    if array.ndim == 2 and array.shape[1] % 2 == 0 and array.shape[1] > 0:
        array = array.reshape(array.shape[0], 2, array.shape[1] // 2)
    if array.ndim != 3 or array.shape[1] != 2:
        raise ValueError(
            "pairs must be a (n_pairs, 2, n_features) array, or (n_pairs, 2 * n_features) with "
            f"the first point in the left half; got shape {np.shape(pairs)}"
        )
    if array.shape[0] == 0:
        raise ValueError("pairs must hold at least one pair; got 0")
    if not np.issubdtype(array.dtype, np.number) or np.iscomplexobj(array):
        raise ValueError(f"pairs must be real numbers; got dtype {array.dtype}")
    array = array.astype(np.float64)
    if not np.isfinite(array).all():
        raise ValueError("Input pairs contains NaN or infinity.")
    if n_features is not None and array.shape[2] != n_features:
        raise ValueError(
            f"pairs have {array.shape[2]} features per point, but the estimator is expecting "
            f"{n_features} features as input"
        )
    return array


class MahalanobisMetric:
    """``d(u, v) = |L (u - v)|`` for two 1-D points: a picklable callable for
    ``KNeighborsClassifier(metric=...)``.

    Example:
        >>> MahalanobisMetric(np.array([[2.0, 0.0]]))(np.array([1.0, 5.0]), np.array([0.0, 0.0]))
        2.0
    """

    def __init__(self, components: Array) -> None:
        self.components = np.array(components, dtype=np.float64)

    def __call__(self, u: Array, v: Array) -> float:
        diff = np.asarray(u, dtype=np.float64) - np.asarray(v, dtype=np.float64)
        return float(np.linalg.norm(self.components @ diff))


class MahalanobisLearner(TransformerMixin, BaseEstimator):
    """Base of NCA, LMNN and ITML: ``transform(X) = X L^T`` and the metric ``|L (x - y)|``."""

    components_: Array

    def transform(self, X: Any) -> Array:
        """``X L^T``: ``(n, n_features) -> (n, n_components)``."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=FLOATS)
        return np.asarray(X @ self.components_.T.astype(X.dtype))

    def get_mahalanobis_matrix(self) -> Array:
        """``M = L^T L``: ``(n_features, n_features)``, symmetric positive semi-definite."""
        check_is_fitted(self)
        return np.asarray(self.components_.T @ self.components_)

    def pair_distance(self, pairs: Any) -> Array:
        """``|L (a - b)|`` for each pair: ``(n, 2, n_features) -> (n,)``."""
        check_is_fitted(self)
        checked = check_pairs(pairs, self.n_features_in_)
        return np.asarray(
            np.linalg.norm((checked[:, 0] - checked[:, 1]) @ self.components_.T, axis=1)
        )

    def get_metric(self) -> MahalanobisMetric:
        """The learned metric as a callable on two 1-D points (a copy: refitting leaves it be)."""
        check_is_fitted(self)
        return MahalanobisMetric(self.components_)

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        return tags
