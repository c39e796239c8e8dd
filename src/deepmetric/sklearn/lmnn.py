"""Large Margin Nearest Neighbor (Weinberger & Saul 2009)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from .._checks import check_int, check_number
from ..distances import squared_euclidean_distance
from ..search import knn
from ._base import (
    Array,
    MahalanobisLearner,
    check_classes,
    initial_components,
    output_dim,
    resolve_device,
    seed_from,
)
from ._solvers import lbfgs, minibatch_adam


def lmnn_loss(
    anchors: Tensor,
    targets: Tensor,
    target_mask: Tensor,
    impostors: Tensor,
    anchor_labels: Tensor,
    impostor_labels: Tensor,
    push_weight: float,
) -> Tensor:
    """The LMNN loss ``(1 - mu) * pull + mu * push`` (summed, not averaged).

    ``pull = sum_{i, j~>i} d_ij`` over the target neighbours ``j`` of each anchor ``i``, and
    ``push = sum_{i, j~>i} sum_{l: y_l != y_i} [1 + d_ij - d_il]_+`` over the candidates ``l``
    of another class (the impostors), with ``d`` the squared euclidean distance between embedded
    points ``z = L x``.

    Args:
        anchors: ``(b, m)`` embedded anchors.
        targets: ``(b, k, m)`` their embedded target neighbours.
        target_mask: ``(b, k)`` bool, False for padding (an anchor with fewer than k targets).
        impostors: ``(r, m)`` embedded impostor candidates (the anchors' own class is skipped).
        anchor_labels: ``(b,)``; impostor_labels: ``(r,)``.
        push_weight: ``mu`` in ``[0, 1]``.

    Paper: "Distance Metric Learning for Large Margin Nearest Neighbor Classification",
    Weinberger & Saul, JMLR 2009, https://jmlr.org/papers/v10/weinberger09a.html

    Example:
        >>> z = torch.tensor([[0.0], [1.0], [0.5]])  # target at 1, impostor at 0.5
        >>> float(lmnn_loss(z[:1], z[1:2, None], torch.tensor([[True]]), z,
        ...                 torch.tensor([0]), torch.tensor([0, 0, 1]), 0.5))
        1.375
    """
    d_target = (anchors[:, None, :] - targets).square().sum(-1)  # (b, k)
    pull = torch.where(target_mask, d_target, 0.0).sum()
    d_impostor = squared_euclidean_distance(anchors, impostors)  # (b, r)
    hinge = torch.relu(1.0 + d_target[:, :, None] - d_impostor[:, None, :])  # (b, k, r)
    valid = target_mask[:, :, None] & (anchor_labels[:, None] != impostor_labels[None, :])[:, None]
    push = torch.where(valid, hinge, 0.0).sum()
    return (1.0 - push_weight) * pull + push_weight * push


def target_neighbors(embedded: Array, labels: Array, k: int) -> tuple[Array, Array]:
    """The ``k`` nearest same-class points of each point (itself excluded), exact and blocked.

    Returns ``(indices (n, k) int64, mask (n, k) bool)``; a class of ``c <= k`` points gives its
    members ``c - 1`` targets, the other slots padded with the point itself and masked out.
    """
    n = len(embedded)
    indices = np.repeat(np.arange(n)[:, None], k, axis=1)
    mask = np.zeros((n, k), dtype=bool)
    points = torch.as_tensor(embedded)
    for cls in np.unique(labels):  # one blocked search per class, never an (n, n) matrix
        members = np.flatnonzero(labels == cls)
        kc = min(k, len(members) - 1)
        found = knn(points[members], k=kc, metric="euclidean").indices.numpy()
        indices[members, :kc] = members[found]
        mask[members, :kc] = True
    return indices, mask


class LMNN(MahalanobisLearner):
    """Large Margin Nearest Neighbor: pull target neighbours in, push impostors out by a margin.

    Minimises ``lmnn_loss`` over ``L``. Target neighbours are the ``n_neighbors`` nearest
    same-class points in the starting space ``L0 x`` (identity, or PCA when ``n_components`` is
    smaller than ``n_features``), found once with an exact blocked search. Full batch
    (``batch_size=None``): L-BFGS in float64, every other-class point an impostor candidate,
    memory ``O(n^2 k)``. Mini-batch: Adam over seeded batches of anchors, the impostor candidates
    re-found in each batch (the batch's points of other classes), memory
    ``O(batch_size^2 k)``.

    Paper: "Distance Metric Learning for Large Margin Nearest Neighbor Classification",
    Weinberger & Saul, JMLR 2009, https://jmlr.org/papers/v10/weinberger09a.html

    Args:
        n_components: output dimension; ``None`` keeps ``n_features``.
        n_neighbors: target neighbours per point, ``k``.
        push_weight: ``mu`` in ``[0, 1]``, the weight of the impostor term.
        max_iter: L-BFGS iterations (full batch) or epochs (mini-batch).
        batch_size: ``None`` for full batch, or anchors per mini-batch (at least 2).
        learning_rate: Adam's first step size, decayed to 0 along a cosine (mini-batch only).
        device: torch device, e.g. ``"cpu"`` or ``"cuda"``.
        random_state: seed of the PCA start and of the batches.

    Attributes:
        components_: ``(n_components, n_features)`` learned ``L``.
        classes_: the class labels seen in ``fit``.
        n_iter_: iterations (or epochs) run.

    Example:
        >>> from sklearn.datasets import load_iris
        >>> X, y = load_iris(return_X_y=True)
        >>> LMNN(max_iter=5, random_state=0).fit(X, y).components_.shape
        (4, 4)
    """

    def __init__(
        self,
        n_components: int | None = None,
        *,
        n_neighbors: int = 3,
        push_weight: float = 0.5,
        max_iter: int = 100,
        batch_size: int | None = None,
        learning_rate: float = 0.01,
        device: str = "cpu",
        random_state: Any = None,
    ) -> None:
        self.n_components = n_components
        self.n_neighbors = n_neighbors
        self.push_weight = push_weight
        self.max_iter = max_iter
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.device = device
        self.random_state = random_state

    def fit(self, X: Any, y: Any) -> LMNN:
        """Learn ``components_`` from ``X: (n_samples, n_features)`` and class labels ``y``."""
        X, labels = check_classes(self, X, y)
        check_int("n_neighbors", self.n_neighbors, 1)
        check_number("push_weight", self.push_weight, low=0.0, high=1.0)
        check_int("max_iter", self.max_iter, 1)
        check_int("batch_size", self.batch_size, 2, optional=True)
        check_number("learning_rate", self.learning_rate, low=0.0, strict=True)
        device = resolve_device(self.device)
        seed = seed_from(self.random_state)
        start = initial_components(X, output_dim(self.n_components, X.shape[1]), "auto", seed)
        found, found_mask = target_neighbors(X @ start.T, labels, self.n_neighbors)
        full = self.batch_size is None or self.batch_size >= len(X)
        dtype = torch.float64 if full else torch.float32
        x = torch.tensor(X, dtype=dtype, device=device)
        lab = torch.tensor(labels, device=device)
        tgt, mask = torch.tensor(found, device=device), torch.tensor(found_mask, device=device)
        mu = float(self.push_weight)
        if full:
            components, self.n_iter_ = lbfgs(
                lambda L: lmnn_loss(x @ L.T, x[tgt] @ L.T, mask, x @ L.T, lab, lab, mu) / len(x),
                start,
                max_iter=self.max_iter,
                device=device,
            )
        else:

            def objective(L: Tensor, b: Tensor) -> Tensor:
                z = x[b] @ L.T
                return lmnn_loss(z, x[tgt[b]] @ L.T, mask[b], z, lab[b], lab[b], mu) / len(b)

            components, self.n_iter_ = minibatch_adam(
                objective,
                start,
                n_samples=len(X),
                batch_size=int(self.batch_size or 0),
                epochs=self.max_iter,
                learning_rate=self.learning_rate,
                seed=seed,
                device=device,
            )
        self.components_ = np.ascontiguousarray(components)
        return self
