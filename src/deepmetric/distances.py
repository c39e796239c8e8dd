"""Pairwise distances and similarities between two sets of embeddings.

Every function maps ``x: (n, d)`` and ``y: (m, d)`` to an ``(n, m)`` matrix. Nothing is normalised
behind the caller's back: ``cosine_similarity`` is the cosine of the angle (so it is scale-free by
definition), while ``dot_product`` and the euclidean distances use the vectors as given.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

Metric = Literal["cosine", "euclidean", "squared_euclidean", "dot"]
METRICS: tuple[str, ...] = ("cosine", "euclidean", "squared_euclidean", "dot")

_EPS = 1e-12


def _check(x: Tensor, y: Tensor) -> None:
    if x.dim() != 2 or y.dim() != 2:
        raise ValueError(
            f"x and y must be 2-D (n, d) and (m, d); got shapes {tuple(x.shape)} "
            f"and {tuple(y.shape)}"
        )
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"x and y must have the same dim; got {x.shape[1]} and {y.shape[1]}")


class _Gram(torch.autograd.Function):
    """``x @ x.T`` whose backward is one product, ``(g + g.T) @ x``, instead of two."""

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, x: Tensor) -> Tensor:
        ctx.save_for_backward(x)
        return x @ x.T

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: Tensor) -> Tensor:
        (x,) = ctx.saved_tensors  # type: ignore[attr-defined]
        return (grad + grad.T) @ x


def _products(x: Tensor, y: Tensor) -> Tensor:
    """``x @ y.T``, with the cheaper symmetric backward when ``y`` is ``x`` (a batch vs itself)."""
    return _Gram.apply(x) if y is x else x @ y.T


def dot_product(x: Tensor, y: Tensor) -> Tensor:
    """Inner products ``x @ y.T``: ``(n, d), (m, d) -> (n, m)``."""
    _check(x, y)
    return _products(x, y)


def normalize_rows(x: Tensor) -> Tensor:
    """Rows scaled to unit L2 norm (a zero row stays 0: its norm is clamped at 1e-12).

    Multiplies by ``rsqrt`` of the squared norms: faster, forward and backward, than dividing
    by the norms.
    """
    return x * torch.rsqrt((x * x).sum(dim=-1, keepdim=True).clamp_min(_EPS * _EPS))


def cosine_similarity(x: Tensor, y: Tensor) -> Tensor:
    """Cosine of the angle between every row of ``x`` and of ``y``: ``(n, m)`` in [-1, 1].

    A zero vector has cosine 0 with everything (its norm is clamped to 1e-12).

    Example:
        >>> x, y = torch.tensor([[2.0, 0.0]]), torch.tensor([[1.0, 1.0]])
        >>> cosine_similarity(x, y).round(decimals=4)
        tensor([[0.7071]])
    """
    _check(x, y)
    xn = normalize_rows(x)
    yn = xn if y is x else normalize_rows(y)
    return _products(xn, yn)


def squared_euclidean_distance(x: Tensor, y: Tensor) -> Tensor:
    """``|x_i - y_j|^2`` via one matrix product, clamped at 0 against round-off: ``(n, m)``."""
    _check(x, y)
    x_sq = (x * x).sum(1)
    y_sq = x_sq if y is x else (y * y).sum(1)
    return (x_sq[:, None] + y_sq[None, :] - 2.0 * _products(x, y)).clamp_min(0.0)


def euclidean_distance(x: Tensor, y: Tensor) -> Tensor:
    """``|x_i - y_j|``: ``(n, m)``.

    Computed by ``torch.cdist`` through one matrix product; the gradient at a zero distance (an
    item with itself) is 0 instead of the ``NaN`` that a plain ``sqrt`` gives.

    Example:
        >>> euclidean_distance(torch.tensor([[0.0, 0.0]]), torch.tensor([[3.0, 4.0]]))
        tensor([[5.]])
    """
    _check(x, y)
    # cdist's fused kernels beat the matrix-product formula plus elementwise sqrt at large n
    return torch.cdist(x, y, compute_mode="use_mm_for_euclid_dist")


def paired(x: Tensor, y: Tensor, metric: Metric) -> Tensor:
    """The metric between matching rows, ``x[i]`` and ``y[i]``: ``(k, d), (k, d) -> (k,)``.

    Agrees with the diagonal of ``pairwise(x, y, metric)``; the euclidean gradient at a zero
    distance is 0.

    Example:
        >>> paired(torch.tensor([[0.0, 0.0], [1.0, 1.0]]), torch.tensor([[3.0, 4.0], [1.0, 1.0]]),
        ...        "euclidean")
        tensor([5., 0.])
    """
    if x.shape != y.shape or x.dim() != 2:
        raise ValueError(f"x and y must both be (k, d); got {tuple(x.shape)} and {tuple(y.shape)}")
    if metric == "cosine":
        return (normalize_rows(x) * normalize_rows(y)).sum(1)
    if metric == "dot":
        return (x * y).sum(1)
    if metric == "euclidean":
        return torch.linalg.vector_norm(x - y, dim=1)
    if metric == "squared_euclidean":
        return (x - y).square().sum(1)
    raise ValueError(f"metric must be one of {METRICS}; got {metric!r}")


def pairwise(x: Tensor, y: Tensor, metric: Metric) -> Tensor:
    """The ``(n, m)`` matrix of ``metric`` between the rows of ``x`` and ``y``."""
    if metric == "cosine":
        return cosine_similarity(x, y)
    if metric == "dot":
        return dot_product(x, y)
    if metric == "euclidean":
        return euclidean_distance(x, y)
    if metric == "squared_euclidean":
        return squared_euclidean_distance(x, y)
    raise ValueError(f"metric must be one of {METRICS}; got {metric!r}")


def is_similarity(metric: Metric) -> bool:
    """True when larger values mean closer (cosine, dot), False for distances."""
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}; got {metric!r}")
    return metric in ("cosine", "dot")


def check_metric(metric: str) -> None:
    """Raise ``ValueError`` unless ``metric`` is a known metric name."""
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}; got {metric!r}")
