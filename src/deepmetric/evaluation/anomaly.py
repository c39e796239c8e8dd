"""Novelty scores from a learned metric, and how well they separate anomalies (AUROC, AUPR).

A test item far from every reference (normal) item is novel. Two scores, larger = more novel:

- ``knn``: the distance to the k-th nearest reference item (``aggregate="kth"``, Ramaswamy et
  al., "Efficient Algorithms for Mining Outliers from Large Data Sets", SIGMOD 2000), or the mean
  distance to the k nearest (``"mean"``, Angiulli & Pizzuti, PKDD 2002);
- ``centroid``: the distance to the nearest class centre of the reference set.

For ``cosine`` the distance is ``1 - cosine similarity``; for ``dot`` it is the negated product.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from torch import Tensor

from .._checks import as_ids
from ..distances import Metric, check_metric, pairwise
from ..search import knn
from ..search.neighbors import ArrayLike, as_embeddings

Aggregate = Literal["kth", "mean"]


def _as_distance(scores: Tensor, metric: Metric) -> Tensor:
    if metric == "cosine":
        return 1.0 - scores
    return -scores if metric == "dot" else scores


def knn_novelty(
    test: ArrayLike,
    reference: ArrayLike,
    *,
    k: int = 1,
    metric: Metric = "euclidean",
    aggregate: Aggregate = "kth",
) -> Tensor:
    """``(n_test,)`` distance of each test item to its k-th nearest reference item (or the mean
    over the k nearest).

    Example:
        >>> reference = torch.tensor([[0.0, 0.0], [1.0, 0.0]])
        >>> knn_novelty(torch.tensor([[0.0, 0.5], [5.0, 0.0]]), reference).tolist()
        [0.5, 4.0]
    """
    if aggregate not in ("kth", "mean"):
        raise ValueError(f"aggregate must be 'kth' or 'mean'; got {aggregate!r}")
    found = knn(test, reference, k=k, metric=metric)
    distance = _as_distance(found.scores, metric)
    return distance[:, -1] if aggregate == "kth" else distance.mean(1)


def centroid_novelty(
    test: ArrayLike,
    reference: ArrayLike,
    reference_labels: ArrayLike,
    *,
    metric: Metric = "euclidean",
) -> Tensor:
    """``(n_test,)`` distance of each test item to the nearest class centre (mean of a class's
    reference embeddings; for ``cosine`` the centre's direction).

    Example:
        >>> reference = torch.tensor([[0.0, 0.0], [2.0, 0.0], [10.0, 0.0]])
        >>> labels = torch.tensor([0, 0, 1])
        >>> centroid_novelty(torch.tensor([[1.0, 1.0]]), reference, labels).tolist()
        [1.0]
    """
    check_metric(metric)
    x = as_embeddings(test, "test")
    r = as_embeddings(reference, "reference")
    if r.shape[1] != x.shape[1]:
        raise ValueError(f"reference must have dim {x.shape[1]} like test; got {r.shape[1]}")
    y = as_ids(reference_labels, r.shape[0], "reference_labels")
    classes, inverse = torch.unique(y, return_inverse=True)
    sums = torch.zeros(len(classes), r.shape[1], dtype=r.dtype).index_add_(0, inverse, r)
    centres = sums / torch.bincount(inverse, minlength=len(classes))[:, None].to(r.dtype)
    with torch.no_grad():
        scores = pairwise(x, centres, metric)
    distance = _as_distance(scores, metric)
    return distance.amin(1)


def detection_metrics(novelty: ArrayLike, is_anomaly: ArrayLike) -> dict[str, float]:
    """AUROC and AUPR (average precision, anomalies as the positive class) of novelty scores.

    Example:
        >>> detection_metrics(torch.tensor([0.1, 0.2, 0.9]), torch.tensor([False, False, True]))
        {'auroc': 1.0, 'aupr': 1.0}
    """
    scores = np.asarray(torch.as_tensor(novelty).detach().cpu().double().numpy())
    truth = np.asarray(torch.as_tensor(is_anomaly).detach().cpu().numpy())
    if scores.ndim != 1 or truth.shape != scores.shape:
        raise ValueError(
            f"novelty and is_anomaly must be (n,) of the same length; got {scores.shape} and "
            f"{truth.shape}"
        )
    if truth.dtype != np.bool_ and not np.isin(truth, (0, 1)).all():
        raise ValueError("is_anomaly must hold booleans (or 0/1)")
    if not np.isfinite(scores).all():
        raise ValueError("novelty must be finite")
    truth = truth.astype(bool)
    if truth.all() or not truth.any():
        raise ValueError("is_anomaly must hold both normal and anomalous items to score a detector")
    from sklearn import metrics  # here, not at import: scikit-learn takes a second to load

    return {
        "auroc": float(metrics.roc_auc_score(truth, scores)),
        "aupr": float(metrics.average_precision_score(truth, scores)),
    }


def anomaly_metrics(
    test: ArrayLike,
    is_anomaly: ArrayLike,
    reference: ArrayLike,
    reference_labels: ArrayLike | None = None,
    *,
    k: int = 1,
    metric: Metric = "euclidean",
) -> dict[str, float]:
    """AUROC and AUPR of the kNN novelty score (``knn_auroc``, ``knn_aupr``) and, when reference
    labels are given, of the class-centre score (``centroid_auroc``, ``centroid_aupr``).

    Args:
        test: ``(n, dim)`` embeddings of normal and anomalous items.
        is_anomaly: ``(n,)`` booleans.
        reference: ``(m, dim)`` embeddings of normal items only.
        reference_labels: ``(m,)`` classes of the reference items.
        k: neighbours for the kNN score (distance to the k-th).
    """
    out = {f"knn_{name}": value for name, value in detection_metrics(
        knn_novelty(test, reference, k=k, metric=metric), is_anomaly).items()}  # fmt: skip
    if reference_labels is not None:
        novelty = centroid_novelty(test, reference, reference_labels, metric=metric)
        out |= {f"centroid_{name}": v for name, v in detection_metrics(novelty, is_anomaly).items()}
    return out
