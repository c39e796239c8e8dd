"""Neighbourhood Components Analysis (Goldberger, Roweis, Hinton & Salakhutdinov 2004)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..distances import squared_euclidean_distance
from ._base import (
    MahalanobisLearner,
    check_classes,
    check_float,
    check_int,
    initial_components,
    output_dim,
    resolve_device,
    seed_from,
)
from ._solvers import lbfgs, minibatch_adam


def nca_objective(
    embedded: Tensor,
    labels: Tensor,
    ref_embedded: Tensor | None = None,
    ref_labels: Tensor | None = None,
) -> Tensor:
    """The NCA objective ``f = sum_i p_i``, the expected number of correctly classified points.

    ``p_ij = exp(-|z_i - z_j|^2) / sum_{k != i} exp(-|z_i - z_k|^2)`` (``p_ii = 0``) is the
    probability that point ``i`` picks ``j`` as its neighbour in the embedded space ``z = L x``,
    and ``p_i = sum_{j in C_i} p_ij`` sums it over the points of ``i``'s class. With a reference
    set the softmax of each row runs over the reference points instead (the mini-batch form);
    without one it runs over the other rows. A point with no same-class neighbour has ``p_i = 0``.

    Args:
        embedded: ``(n, m)`` points ``L x``.
        labels: ``(n,)`` integer classes.
        ref_embedded: ``(r, m)`` neighbour candidates, or ``None`` for ``embedded`` itself.
        ref_labels: ``(r,)`` their classes.

    Paper: "Neighbourhood Components Analysis", Goldberger et al., NeurIPS 2004,
    https://www.cs.toronto.edu/~hinton/absps/nca.pdf

    Example:
        >>> z = torch.tensor([[0.0], [0.0], [10.0], [10.0]])
        >>> float(nca_objective(z, torch.tensor([0, 0, 1, 1])))
        4.0
    """
    is_self = ref_embedded is None
    ref = embedded if ref_embedded is None else ref_embedded
    ref_lab = labels if ref_labels is None else ref_labels
    logits = -squared_euclidean_distance(embedded, ref)  # (n, r)
    same = labels[:, None] == ref_lab[None, :]
    if is_self:
        eye = torch.eye(len(embedded), dtype=torch.bool, device=embedded.device)
        logits = logits.masked_fill(eye, -torch.inf)
        same = same & ~eye
    has_same = same.any(1)
    # rows without a same-class candidate use all their logits as a stand-in (log p = 0, zeroed
    # below), so that neither a log-sum-exp of only -inf nor an overflowing exp reaches autograd
    same_logits = torch.where(has_same[:, None], logits.masked_fill(~same, -torch.inf), logits)
    log_p = torch.logsumexp(same_logits, 1) - torch.logsumexp(logits, 1)
    return torch.where(has_same, log_p.exp(), 0.0).sum()


class NCA(MahalanobisLearner):
    """Neighbourhood Components Analysis: learn ``L`` that maximises the NCA objective.

    Maximises ``sum_i p_i`` (see ``nca_objective``), the leave-one-out accuracy of a stochastic
    nearest-neighbour classifier in the space ``z = L x``. With ``batch_size=None`` (or at least
    the number of samples) the whole data set is optimised with L-BFGS in float64 (``max_iter``
    iterations, stopping at projected gradient ``tol``). With an int ``batch_size`` Adam runs
    ``max_iter`` epochs of seeded mini-batches, each batch's softmax taken over the batch
    itself, so memory is ``O(batch_size^2)`` whatever the data size.

    Paper: "Neighbourhood Components Analysis", Goldberger et al., NeurIPS 2004,
    https://www.cs.toronto.edu/~hinton/absps/nca.pdf

    Args:
        n_components: output dimension (rows of ``L``); ``None`` keeps ``n_features``.
        init: ``"auto"`` (PCA when reducing the dimension, else identity), ``"identity"``,
            ``"pca"``, ``"random"``, or an ``(n_components, n_features)`` array.
        max_iter: L-BFGS iterations (full batch) or epochs (mini-batch).
        tol: L-BFGS projected-gradient tolerance (full batch only).
        batch_size: ``None`` for full batch, or samples per mini-batch (at least 2).
        learning_rate: Adam step size (mini-batch only).
        device: torch device of the computation, e.g. ``"cpu"`` or ``"cuda"``.
        random_state: seed of the initialisation and of the batches.

    Attributes:
        components_: ``(n_components, n_features)`` learned ``L``.
        classes_: the class labels seen in ``fit``.
        n_iter_: iterations (or epochs) run.

    Example:
        >>> from sklearn.datasets import load_iris
        >>> X, y = load_iris(return_X_y=True)
        >>> NCA(n_components=2, max_iter=5, random_state=0).fit(X, y).transform(X).shape
        (150, 2)
    """

    def __init__(
        self,
        n_components: int | None = None,
        *,
        init: Any = "auto",
        max_iter: int = 50,
        tol: float = 1e-5,
        batch_size: int | None = None,
        learning_rate: float = 0.01,
        device: str = "cpu",
        random_state: Any = None,
    ) -> None:
        self.n_components = n_components
        self.init = init
        self.max_iter = max_iter
        self.tol = tol
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.device = device
        self.random_state = random_state

    def fit(self, X: Any, y: Any) -> NCA:
        """Learn ``components_`` from ``X: (n_samples, n_features)`` and class labels ``y``."""
        X, labels = check_classes(self, X, y)
        check_int("max_iter", self.max_iter, 1)
        check_int("batch_size", self.batch_size, 2, none_ok=True)
        check_float("tol", self.tol, 0.0)
        check_float("learning_rate", self.learning_rate, 0.0)
        device = resolve_device(self.device)
        seed = seed_from(self.random_state)
        start = initial_components(X, output_dim(self.n_components, X.shape[1]), self.init, seed)
        n = len(X)
        if self.batch_size is None or self.batch_size >= n:
            x, lab = torch.tensor(X, device=device), torch.tensor(labels, device=device)
            components, self.n_iter_ = lbfgs(
                lambda L: -nca_objective(x @ L.T, lab) / n,
                start,
                max_iter=self.max_iter,
                tol=self.tol,
                device=device,
            )
        else:
            x = torch.tensor(X, dtype=torch.float32, device=device)
            lab = torch.tensor(labels, device=device)
            components, self.n_iter_ = minibatch_adam(
                lambda L, b: -nca_objective(x[b] @ L.T, lab[b]) / len(b),
                start,
                n_samples=n,
                batch_size=self.batch_size,
                epochs=self.max_iter,
                learning_rate=self.learning_rate,
                seed=seed,
                device=device,
            )
        self.components_ = np.ascontiguousarray(components)
        return self
