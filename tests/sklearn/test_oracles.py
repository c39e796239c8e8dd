"""The learners' math against slow loops written from the papers, and the metric's identities."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.datasets import load_wine
from sklearn.neighbors import KNeighborsClassifier
from sklearn.preprocessing import StandardScaler

from deepmetric.sklearn import (
    ITML,
    LMNN,
    NCA,
    itml_projections,
    lmnn_loss,
    nca_loss,
    nca_objective,
    neighbourhood_scale,
)
from deepmetric.sklearn.lmnn import target_neighbors


def nca_paper(X: np.ndarray, y: np.ndarray, A: np.ndarray) -> tuple[float, np.ndarray]:
    """f(A) = sum_i p_i and the paper's gradient
    df/dA = 2 A sum_i (p_i sum_k p_ik x_ik x_ik^T - sum_{j in C_i} p_ij x_ij x_ij^T)."""
    n = len(X)
    f, inner = 0.0, np.zeros((X.shape[1], X.shape[1]))
    for i in range(n):
        others = [k for k in range(n) if k != i]
        w = np.array([np.exp(-np.sum((A @ X[i] - A @ X[k]) ** 2)) for k in others])
        p = dict(zip(others, w / w.sum(), strict=True))
        p_i = sum(p[j] for j in others if y[j] == y[i])
        f += p_i
        for k in others:
            d = X[i] - X[k]
            inner += p_i * p[k] * np.outer(d, d)
            if y[k] == y[i]:
                inner -= p[k] * np.outer(d, d)
    return f, 2 * A @ inner


def test_nca_objective_and_gradient_match_the_paper() -> None:
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(9, 3)), np.array([0, 0, 0, 1, 1, 1, 2, 2, 3])  # class 3 is alone
    A = rng.normal(size=(2, 3)) * 0.7
    L = torch.tensor(A, requires_grad=True)
    value = nca_objective(torch.tensor(X) @ L.T, torch.tensor(y))
    (grad,) = torch.autograd.grad(value, L)
    f, g = nca_paper(X, y, A)
    np.testing.assert_allclose(float(value.detach()), f, rtol=1e-10)
    np.testing.assert_allclose(grad.numpy(), g, rtol=1e-8, atol=1e-12)


def test_nca_objective_with_a_reference_set_is_a_softmax_over_it() -> None:
    rng = np.random.default_rng(1)
    z, r = rng.normal(size=(4, 2)), rng.normal(size=(6, 2))
    y, ry = np.array([0, 1, 2, 0]), np.array([0, 0, 1, 1, 3, 3])
    expected = 0.0
    for i in range(4):
        w = np.exp(-((z[i] - r) ** 2).sum(1))
        expected += w[ry == y[i]].sum() / w.sum()
    got = nca_objective(*map(torch.tensor, (z, y, r, ry)))
    np.testing.assert_allclose(float(got), expected, rtol=1e-12)


def test_regularised_nca_loss_is_the_paper_objective_plus_the_spread() -> None:
    # loss(A) = -f(A) / n + alpha (1/n) sum_i |A (x_i - mean)|^2, gradient -g / n + 2 alpha A S
    rng = np.random.default_rng(4)
    X, y = rng.normal(size=(9, 3)) + 5.0, np.array([0, 0, 0, 1, 1, 1, 2, 2, 3])
    A, alpha = rng.normal(size=(2, 3)) * 0.7, 0.3
    f, g = nca_paper(X, y, A)
    centred = [x - X.mean(0) for x in X]
    spread = sum(float(np.sum((A @ c) ** 2)) for c in centred) / len(X)
    cov = sum(np.outer(c, c) for c in centred) / len(X)
    L = torch.tensor(A, requires_grad=True)
    value = nca_loss(torch.tensor(X) @ L.T, torch.tensor(y), alpha)
    (grad,) = torch.autograd.grad(value, L)
    np.testing.assert_allclose(float(value.detach()), -f / len(X) + alpha * spread, rtol=1e-10)
    np.testing.assert_allclose(grad.numpy(), -g / len(X) + 2 * alpha * A @ cov, rtol=1e-8)
    plain = nca_loss(torch.tensor(X @ A.T), torch.tensor(y), 0.0)
    assert float(plain) == pytest.approx(-f / len(X), rel=1e-10)  # alpha = 0: plain NCA


def _perplexities(Z: np.ndarray, s: float) -> list[float]:
    """exp(-sum_j q_ij log q_ij) of q_ij = exp(-s d_ij) / sum_{k != i} exp(-s d_ik), per row."""
    out = []
    for i in range(len(Z)):
        w = [np.exp(-s * np.sum((Z[i] - Z[j]) ** 2)) for j in range(len(Z)) if j != i]
        q = np.array(w) / sum(w)
        out.append(float(np.exp(-sum(p * np.log(p) for p in q if p > 0))))
    return out


@pytest.mark.parametrize(("n", "target", "reached"), [(30, 5.0, 5.0), (4, 5.0, 1.5)])
def test_neighbourhood_scale_meets_the_mean_perplexity(n: int, target: float, reached: float):
    Z = np.random.default_rng(5).normal(size=(n, 3)) * 40.0  # far from the unit scale
    s = neighbourhood_scale(torch.tensor(Z), target)
    assert np.mean(_perplexities(Z, s)) == pytest.approx(reached, rel=1e-4)  # capped at (n-1)/2
    assert neighbourhood_scale(torch.tensor(Z / 10), target) == pytest.approx(100 * s, rel=1e-4)
    assert neighbourhood_scale(torch.zeros(3, 2, dtype=torch.float64), target) == 1.0


def test_auto_start_is_scaled_to_the_perplexity_and_alpha_prices_the_spread() -> None:
    X, y = load_wine(return_X_y=True)  # unscaled: squared distances in the tens of thousands
    X, y = X[::2], y[::2]
    short = NCA(max_iter=1, random_state=0).fit(X, y)
    start = np.eye(13) * np.sqrt(neighbourhood_scale(torch.tensor(X), 5.0))
    Z = X @ start.T
    assert np.mean(_perplexities(Z, 1.0)) == pytest.approx(5.0, rel=1e-3)

    # one L-BFGS step from that start lowers the loss, by the paper loop's value plus the spread
    def loss(L: np.ndarray) -> float:
        spread = np.mean(np.sum(((X - X.mean(0)) @ L.T) ** 2, 1))
        return -nca_paper(X, y, L)[0] / len(X) + 0.01 * spread

    assert loss(short.components_) < loss(start)
    spreads = [
        np.var(NCA(alpha=alpha, max_iter=30, random_state=0).fit(X, y).transform(X), 0).sum()
        for alpha in (0.001, 0.01, 0.1)
    ]
    assert spreads[0] > spreads[1] > spreads[2]


def lmnn_paper(Z: np.ndarray, y: np.ndarray, targets: np.ndarray, mask: np.ndarray, mu: float):
    """(1 - mu) sum_{i, j~>i} d_ij + mu sum_{i, j~>i} sum_{l: y_l != y_i} [1 + d_ij - d_il]_+."""
    pull = push = 0.0
    for i in range(len(Z)):
        for j, valid in zip(targets[i], mask[i], strict=True):
            if not valid:
                continue
            d_ij = np.sum((Z[i] - Z[j]) ** 2)
            pull += d_ij
            for m in range(len(Z)):
                if y[m] != y[i]:
                    push += max(0.0, 1.0 + d_ij - np.sum((Z[i] - Z[m]) ** 2))
    return (1 - mu) * pull + mu * push


def test_target_neighbors_are_the_nearest_same_class_points() -> None:
    rng = np.random.default_rng(2)
    X, y = rng.normal(size=(14, 3)), np.array([0] * 6 + [1] * 6 + [2] * 2)
    idx, mask = target_neighbors(X, y, 3)
    for i in range(len(X)):
        same = [j for j in range(len(X)) if y[j] == y[i] and j != i]
        expected = sorted(same, key=lambda j: np.sum((X[i] - X[j]) ** 2))[:3]
        assert idx[i][mask[i]].tolist() == expected


def test_lmnn_loss_matches_the_paper_loop() -> None:
    rng = np.random.default_rng(3)
    X, y = rng.normal(size=(12, 3)), np.array([0] * 5 + [1] * 5 + [2] * 2)
    idx, mask = target_neighbors(X, y, 3)
    Z = X @ rng.normal(size=(3, 2))
    z, lab = torch.tensor(Z), torch.tensor(y)
    got = lmnn_loss(z, z[torch.tensor(idx)], torch.tensor(mask), z, lab, lab, 0.3)
    np.testing.assert_allclose(float(got), lmnn_paper(Z, y, idx, mask, 0.3), rtol=1e-12)


def test_itml_meets_its_constraints_on_a_tiny_problem() -> None:
    # similar pairs differ mostly along axis 0, dissimilar ones along axes 1 and 2: feasible
    similar = np.array([True] * 3 + [False] * 3)
    diffs = np.array(
        [[2.0, 0.1, 0.0], [-1.5, 0.0, 0.1], [3.0, 0.1, 0.1],
         [0.0, 1.0, 0.0], [0.2, 0.8, 0.0], [0.0, 0.5, 0.6]]
    )  # fmt: skip
    u, low = 0.5, 6.0
    A, sweeps = itml_projections(diffs, similar, (u, low), np.eye(3), 1e6, 5000, 1e-9)
    dist = np.einsum("cd,de,ce->c", diffs, A, diffs)
    before = np.einsum("cd,cd->c", diffs, diffs)
    assert not ((before[similar] <= u).all() and (before[~similar] >= low).all())  # work to do
    assert (dist[similar] <= u * 1.001).all() and (dist[~similar] >= low * 0.999).all()
    assert np.linalg.eigvalsh(A).min() > 0 and sweeps < 5000


@pytest.mark.parametrize(
    "learner",
    [
        NCA(n_components=3, max_iter=10, random_state=0),
        LMNN(n_components=3, max_iter=10, random_state=0),
        ITML(n_components=3, max_iter=20, random_state=0),
    ],
    ids=["nca", "lmnn", "itml"],
)
def test_metric_callable_pair_distance_and_mahalanobis_matrix_agree(learner) -> None:
    X, y = load_wine(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    learner.fit(X, y)
    L = learner.components_
    assert L.shape == (3, 13)
    np.testing.assert_allclose(learner.get_mahalanobis_matrix(), L.T @ L, rtol=1e-12)
    pairs = np.stack([X[:20], X[20:40]], axis=1)
    metric = learner.get_metric()
    by_callable = np.array([metric(a, b) for a, b in pairs])
    np.testing.assert_allclose(learner.pair_distance(pairs), by_callable, rtol=1e-10)
    M = learner.get_mahalanobis_matrix()
    by_matrix = np.sqrt(np.einsum("nd,de,ne->n", X[:20] - X[20:40], M, X[:20] - X[20:40]))
    np.testing.assert_allclose(by_callable, by_matrix, rtol=1e-8)
    # kNN with the metric callable predicts what euclidean kNN after transform predicts
    with_metric = KNeighborsClassifier(3, metric=metric, algorithm="brute").fit(X[::2], y[::2])
    transformed = KNeighborsClassifier(3).fit(learner.transform(X[::2]), y[::2])
    np.testing.assert_array_equal(
        with_metric.predict(X[1::2]), transformed.predict(learner.transform(X[1::2]))
    )
