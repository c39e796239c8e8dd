"""Neighbourhood Components Analysis (Goldberger, Roweis, Hinton & Salakhutdinov 2004), with the
embedding-spread penalty of regularised NCA and a start scaled to a given neighbourhood size."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .._checks import check_int, check_number
from ..distances import squared_euclidean_distance
from ._base import (
    MahalanobisLearner,
    check_classes,
    initial_components,
    output_dim,
    resolve_device,
    seed_from,
)
from ._solvers import lbfgs, minibatch_adam

INIT_PERPLEXITY = 5.0  # soft neighbourhood size of init="auto": KNeighborsClassifier's default k


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
    if is_self and len(embedded) < 2:  # a lone point has no neighbour to pick
        return embedded.sum() * 0.0
    # distances do not move with a common shift: centring keeps float32 products exact enough
    center = ref.mean(0).detach()
    embedded, ref = embedded - center, ref - center
    # -|z_i - r_j|^2 + |z_i|^2 = 2 z_i.r_j - |r_j|^2: the row constant |z_i|^2 leaves the
    # softmax unchanged, so one fused product gives the logits  (n, r)
    logits = torch.addmm(-(ref * ref).sum(1)[None, :], embedded, ref.T, alpha=2.0)
    if is_self:
        logits.diagonal().fill_(-torch.inf)  # p_ii = 0
    same = labels[:, None] == ref_lab[None, :]
    # p_i: the softmax summed over i's class; 0 where i has no candidate of its class
    return torch.softmax(logits, 1).masked_fill(~same, 0.0).sum()


def nca_loss(embedded: Tensor, labels: Tensor, alpha: float) -> Tensor:
    """The regularised NCA loss ``-(1/n) sum_i p_i + alpha (1/n) sum_i |z_i - mean(z)|^2``.

    The first term is minus the NCA objective per point (see ``nca_objective``). The second is
    ``alpha tr(L S L^T)`` with ``S`` the (biased) covariance of the inputs: the spread of the
    embedding ``z = L x``, in the units of the softmax's logits. Without it, NCA gains by scaling
    ``L`` up without limit, which sharpens the soft neighbours into a leave-one-out 1-NN of the
    training set; the penalty prices that spread. It is the Gaussian prior of regularised NCA
    measured in the data's covariance instead of on the raw entries of ``L``, so it does not
    depend on the units of the features. ``alpha = 0`` is plain NCA.

    Args:
        embedded: ``(n, m)`` points ``L x``, ``n >= 1``.
        labels: ``(n,)`` integer classes.
        alpha: weight of the spread penalty, ``>= 0``.

    Paper: "Regularized Neighborhood Component Analysis", Yang & Laaksonen, SCIA 2007, LNCS 4522,
    https://doi.org/10.1007/978-3-540-73040-8_26

    Example:
        >>> z = torch.tensor([[0.0], [0.0], [10.0], [10.0]])
        >>> float(nca_loss(z, torch.tensor([0, 0, 1, 1]), alpha=0.01))
        -0.75
    """
    spread = (embedded - embedded.mean(0)).pow(2).sum(1).mean()
    return -nca_objective(embedded, labels) / len(embedded) + alpha * spread


def neighbourhood_scale(embedded: Tensor, perplexity: float, *, steps: int = 25) -> float:
    """The factor ``s`` that gives the soft neighbours of ``-s |z_i - z_j|^2`` a mean perplexity.

    Row ``i`` of the softmax ``q_ij = exp(-s d_ij) / sum_{k != i} exp(-s d_ik)`` has perplexity
    ``exp(-sum_j q_ij log q_ij)``, its effective number of neighbours (the calibration of
    Stochastic Neighbor Embedding, with one scale for every point because NCA has one ``L``).
    ``s`` is found by bisection on ``log s`` so that the mean perplexity over the rows meets the
    target; since the perplexity of ``n`` points is at most ``n - 1``, the target is capped at
    ``(n - 1) / 2``. Scaling ``z`` by ``c`` divides ``s`` by ``c^2``.

    Args:
        embedded: ``(n, m)`` points, ``n >= 2``.
        perplexity: wanted mean perplexity, ``> 1``.
        steps: bisection steps.

    Paper: "Stochastic Neighbor Embedding", Hinton & Roweis, NeurIPS 2002,
    https://papers.nips.cc/paper/2276-stochastic-neighbor-embedding

    Example:
        >>> z = torch.tensor([[0.0], [1.0], [3.0], [4.0], [9.0]], dtype=torch.float64)
        >>> round(4 * neighbourhood_scale(2 * z, 2.0) / neighbourhood_scale(z, 2.0), 6)
        1.0
    """
    n = len(embedded)
    off_diagonal = ~torch.eye(n, dtype=torch.bool, device=embedded.device)
    dist = squared_euclidean_distance(embedded, embedded)[off_diagonal].view(n, n - 1)
    positive = dist[dist > 0]
    if positive.numel() == 0:  # every point the same: no scale changes anything
        return 1.0
    target = min(perplexity, (n - 1) / 2)
    middle = -math.log(float(positive.median()))
    low, high = middle - 20.0, middle + 20.0
    for _ in range(steps):
        log_s = (low + high) / 2
        log_q = torch.log_softmax(-math.exp(log_s) * dist, 1)
        mean_perplexity = float((-(log_q.exp() * log_q).sum(1)).exp().mean())
        low, high = (log_s, high) if mean_perplexity > target else (low, log_s)
    return math.exp((low + high) / 2)


class NCA(MahalanobisLearner):
    """Neighbourhood Components Analysis: learn ``L`` that minimises the regularised NCA loss.

    Minimises ``-(1/n) sum_i p_i + alpha tr(L S L^T)`` (see ``nca_loss``): minus the leave-one-out
    accuracy of a stochastic nearest-neighbour classifier in the space ``z = L x`` (``p_i`` from
    ``nca_objective``), plus ``alpha`` times the spread of the embedding, ``S`` being the
    covariance of ``X``. The default ``init="auto"`` starts from the identity (or PCA) scaled so
    that the soft neighbourhoods have perplexity ``INIT_PERPLEXITY = 5``, the ``k`` of
    ``KNeighborsClassifier()``, whatever the units of ``X``. Together the two keep NCA from
    sharpening into a 1-NN of the training set on small data: on unscaled iris, wine and digits
    (5-fold CV, ``make_pipeline(NCA(), KNeighborsClassifier())``) they lift kNN's 0.973, 0.691 and
    0.963 to 0.980, 0.944 and 0.964. ``alpha=0, init="identity"`` is plain NCA.

    With ``batch_size=None`` (or at least the number of samples) the whole data set is optimised
    with L-BFGS in float64 (``max_iter`` iterations, projected-gradient tolerance 1e-5). With an int
    ``batch_size`` Adam runs ``max_iter`` epochs of seeded mini-batches, each batch's softmax and
    spread taken over the batch itself, so memory is ``O(batch_size^2)`` whatever the data size;
    the start is then scaled on one seeded batch, as the softmax sees batches.

    Papers: "Neighbourhood Components Analysis", Goldberger et al., NeurIPS 2004,
    https://www.cs.toronto.edu/~hinton/absps/nca.pdf; "Regularized Neighborhood Component
    Analysis", Yang & Laaksonen, SCIA 2007, https://doi.org/10.1007/978-3-540-73040-8_26

    Args:
        n_components: output dimension (rows of ``L``); ``None`` keeps ``n_features``.
        init: ``"auto"`` (PCA when reducing the dimension, else identity, scaled to perplexity
            ``INIT_PERPLEXITY``), ``"identity"``, ``"pca"``, ``"random"`` (all three unscaled), or
            an ``(n_components, n_features)`` array.
        alpha: weight of the spread penalty, ``>= 0``; ``0`` is plain NCA.
        max_iter: L-BFGS iterations (full batch) or epochs (mini-batch).
        batch_size: ``None`` for full batch, or samples per mini-batch (at least 2).
        learning_rate: Adam's first step size, decayed to 0 along a cosine (mini-batch only).
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
        alpha: float = 0.01,
        max_iter: int = 50,
        batch_size: int | None = None,
        learning_rate: float = 0.01,
        device: str = "cpu",
        random_state: Any = None,
    ) -> None:
        self.n_components = n_components
        self.init = init
        self.alpha = alpha
        self.max_iter = max_iter
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.device = device
        self.random_state = random_state

    def fit(self, X: Any, y: Any) -> NCA:
        """Learn ``components_`` from ``X: (n_samples, n_features)`` and class labels ``y``."""
        X, labels = check_classes(self, X, y)
        check_number("alpha", self.alpha, low=0.0)
        check_int("max_iter", self.max_iter, 1)
        check_int("batch_size", self.batch_size, 2, optional=True)
        check_number("learning_rate", self.learning_rate, low=0.0, strict=True)
        device = resolve_device(self.device)
        seed = seed_from(self.random_state)
        n, alpha = len(X), float(self.alpha)
        batch = None if self.batch_size is None or self.batch_size >= n else int(self.batch_size)
        dtype = torch.float64 if batch is None else torch.float32
        x, lab = torch.tensor(X, dtype=dtype, device=device), torch.tensor(labels, device=device)
        start = self._start(X, x, seed, batch)
        if batch is None:
            components, self.n_iter_ = lbfgs(
                lambda L: nca_loss(x @ L.T, lab, alpha),
                start,
                max_iter=self.max_iter,
                device=device,
            )
        else:
            components, self.n_iter_ = minibatch_adam(
                lambda L, b: nca_loss(x[b] @ L.T, lab[b], alpha),
                start,
                n_samples=n,
                batch_size=batch,
                epochs=self.max_iter,
                learning_rate=self.learning_rate,
                seed=seed,
                device=device,
            )
        self.components_ = np.ascontiguousarray(components)
        return self

    def _start(self, X: Any, x: Tensor, seed: int, batch_size: int | None) -> Any:
        """The starting ``L``; ``init="auto"`` scaled to perplexity ``INIT_PERPLEXITY`` over all
        points (full batch) or over one seeded batch of ``batch_size`` (mini-batch)."""
        start = initial_components(X, output_dim(self.n_components, X.shape[1]), self.init, seed)
        if not (isinstance(self.init, str) and self.init == "auto"):
            return start
        if batch_size is not None:
            gen = torch.Generator().manual_seed(seed)
            x = x[torch.randperm(len(x), generator=gen)[:batch_size].to(x.device)]
        embedded = x @ torch.tensor(start, dtype=x.dtype, device=x.device).T
        return start * math.sqrt(neighbourhood_scale(embedded.double(), INIT_PERPLEXITY))
