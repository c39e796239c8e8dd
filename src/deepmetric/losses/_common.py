"""What every loss shares beyond :mod:`deepmetric.tuples`: the registry, reductions, scalar
checks and a masked log-sum-exp."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, cast

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from .._checks import check_choice
from ..registry import Registry

Reduction = Literal["mean", "sum", "none"]
REDUCTIONS = ("mean", "sum", "none")

LOSSES: Registry[torch.nn.Module] = Registry("loss")


def check_reduction(reduction: str) -> None:
    check_choice("reduction", reduction, REDUCTIONS)


def reduce(values: Tensor, reduction: Reduction) -> Tensor:
    """Apply ``reduction``; the mean of nothing is a 0 that stays in the graph (zero gradient)."""
    if reduction == "none":
        return values
    total = values.sum()
    if reduction == "sum":
        return total
    return total / max(values.numel(), 1)


def zero_loss(embeddings: Tensor) -> Tensor:
    """A scalar 0 connected to ``embeddings``, so ``backward()`` works and gives zero gradient."""
    return (embeddings * 0.0).sum()


class _MaskedLogSumExp(torch.autograd.Function):
    """Row-wise ``log sum exp(scale * values)`` over ``mask``; backward in one pass.

    Saves ``exp(scale * values - row max)`` (0 off the mask) and the row sums: the gradient is
    those weights times ``scale * grad / sum``, one ``(n, m)`` pass instead of the five that
    ``where`` + ``logsumexp`` take through autograd.
    """

    @staticmethod
    def forward(ctx: Any, values: Tensor, mask: Tensor, scale: float) -> Tensor:
        lowest = torch.finfo(values.dtype).min
        weights = torch.where(mask, values * scale, lowest)
        peak = weights.amax(dim=1, keepdim=True)
        empty = peak == lowest
        peak = peak.masked_fill(empty, 0.0)  # so that an empty row's weights are exp(lowest) = 0
        weights = weights.sub_(peak).exp_()
        total = weights.sum(dim=1, keepdim=True)
        ctx.save_for_backward(weights, total)
        ctx.scale = scale
        return torch.where(empty, lowest, peak + total.log()).squeeze(1)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None, None]:
        weights, total = ctx.saved_tensors
        per_row = torch.where(total > 0, grad[:, None] * ctx.scale / total, 0.0)
        return weights * per_row, None, None


def masked_logsumexp(values: Tensor, mask: Tensor, scale: float = 1.0) -> Tensor:
    """``log sum_j exp(scale * values[i, j])`` over ``j`` where ``mask[i, j]``: ``(n, m) -> (n,)``.

    An empty row gives the dtype's most negative finite number, which acts as ``-inf``
    downstream (``softplus`` of it is 0, ``logaddexp`` ignores it) while every gradient stays
    finite; masked entries and empty rows get zero gradient. Not twice differentiable.

    Args:
        values: ``(n, m)`` scores.
        mask: ``(n, m)`` booleans, True where an entry takes part.
        scale: multiplies ``values`` (saves a pass over the matrix).

    Example:
        >>> out = masked_logsumexp(torch.zeros(2, 2), torch.tensor([[True, True], [False, False]]))
        >>> round(out[0].item(), 4), bool(out[1] < -1e38)
        (0.6931, True)
    """
    if values.shape[1] == 0:  # no columns at all: every row is empty
        return values.sum(dim=1) + torch.finfo(values.dtype).min
    apply = cast(Callable[[Tensor, Tensor, float], Tensor], _MaskedLogSumExp.apply)
    return apply(values, mask, scale)
