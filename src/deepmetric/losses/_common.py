"""What every loss shares: input checks, label masks, the distance convention, reductions and a
masked log-sum-exp."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal, cast

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from ..distances import Metric, check_metric, is_similarity, paired, pairwise
from ..indices import MinedIndices, as_pairs
from ..registry import Registry

Reduction = Literal["mean", "sum", "none"]
REDUCTIONS = ("mean", "sum", "none")

LOSSES: Registry[torch.nn.Module] = Registry("loss")


def check_reduction(reduction: str) -> None:
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}; got {reduction!r}")


def check_positive(name: str, value: float, *, allow_zero: bool = False) -> None:
    """Raise ``ValueError`` unless ``value > 0`` (or ``>= 0`` with ``allow_zero``)."""
    if not (value >= 0 if allow_zero else value > 0):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be {bound}; got {value!r}")


def _check_pair(emb: Tensor, labels: Tensor, emb_name: str, labels_name: str) -> None:
    if not isinstance(emb, Tensor) or not emb.is_floating_point():
        raise ValueError(
            f"{emb_name} must be a floating-point tensor; got "
            f"{getattr(emb, 'dtype', type(emb).__name__)}"
        )
    if emb.dim() != 2:
        raise ValueError(f"{emb_name} must be 2-D (batch, dim); got shape {tuple(emb.shape)}")
    if (
        not isinstance(labels, Tensor)
        or labels.is_floating_point()
        or labels.is_complex()
        or labels.dtype == torch.bool
    ):
        raise ValueError(
            f"{labels_name} must be an integer tensor (e.g. int64); got "
            f"{getattr(labels, 'dtype', type(labels).__name__)}"
        )
    if labels.dim() != 1 or labels.shape[0] != emb.shape[0]:
        raise ValueError(
            f"{labels_name} must be 1-D with one label per row of {emb_name} "
            f"({emb.shape[0]}); got shape {tuple(labels.shape)}"
        )
    # a finite sum implies finite entries: one reduction instead of an (n, d) mask, usually
    if not bool(torch.isfinite(emb.sum())) and not bool(torch.isfinite(emb).all()):
        raise ValueError(
            f"{emb_name} contains NaN or Inf; check the model output "
            "(learning rate, mixed precision) before the loss"
        )


def check_inputs(
    embeddings: Tensor,
    labels: Tensor,
    ref_embeddings: Tensor | None = None,
    ref_labels: Tensor | None = None,
) -> tuple[Tensor, Tensor, bool]:
    """Validate a loss call; return ``(ref_embeddings, ref_labels, is_self)``.

    Without a reference set the batch is its own reference (``is_self=True``) and an item is
    never paired with itself.
    """
    _check_pair(embeddings, labels, "embeddings", "labels")
    if (ref_embeddings is None) != (ref_labels is None):
        raise ValueError("ref_embeddings and ref_labels must be given together")
    if ref_embeddings is None or ref_labels is None:
        return embeddings, labels, True
    _check_pair(ref_embeddings, ref_labels, "ref_embeddings", "ref_labels")
    if ref_embeddings.shape[1] != embeddings.shape[1]:
        raise ValueError(
            f"ref_embeddings must have dim {embeddings.shape[1]} like embeddings; "
            f"got {ref_embeddings.shape[1]}"
        )
    return ref_embeddings, ref_labels, False


def label_masks(labels: Tensor, ref_labels: Tensor, is_self: bool) -> tuple[Tensor, Tensor]:
    """Boolean ``(n, m)`` masks of positive and negative pairs (no diagonal pairs if is_self)."""
    same = labels[:, None] == ref_labels[None, :]
    neg = ~same
    if is_self:
        same.fill_diagonal_(False)
    return same, neg


def distance_like(embeddings: Tensor, ref: Tensor, metric: Metric) -> Tensor:
    """``(n, m)`` matrix where smaller means closer: the distance, or minus the similarity."""
    check_metric(metric)
    mat = pairwise(embeddings, ref, metric)
    return -mat if is_similarity(metric) else mat


def mined_distance_like(
    embeddings: Tensor, ref: Tensor, rows: Sequence[Tensor], cols: Sequence[Tensor], metric: Metric
) -> list[Tensor]:
    """Distance-like values of the index pairs ``(rows[i][j], cols[i][j])``, one tensor per i.

    Few pairs (a miner's one triplet per anchor) are computed row by row, ``O(k d)``, which avoids
    the full ``(n, m)`` matrix and its scatter-heavy backward; many pairs are read off the matrix.
    """
    check_metric(metric)
    count = sum(len(r) for r in rows)
    if count * embeddings.shape[1] > embeddings.shape[0] * ref.shape[0]:
        mat = distance_like(embeddings, ref, metric)
        flat, m = mat.reshape(-1), mat.shape[1]  # 1-D index_select: twice as fast as mat[r, c]
        # c + m r in one fused op: half the time of r * m + c on millions of pairs
        return [
            flat.index_select(0, torch.add(c, r, alpha=m)) for r, c in zip(rows, cols, strict=True)
        ]
    sign = -1.0 if is_similarity(metric) else 1.0
    return [sign * paired(embeddings[r], ref[c], metric) for r, c in zip(rows, cols, strict=True)]


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


def pair_masks(
    labels: Tensor, ref_labels: Tensor, is_self: bool, indices: MinedIndices | None
) -> tuple[Tensor, Tensor]:
    """Boolean ``(n, m)`` masks of the positive and negative pairs: the mined ones, if given."""
    if indices is None:
        return label_masks(labels, ref_labels, is_self)
    pairs = as_pairs(indices)
    shape = (labels.shape[0], ref_labels.shape[0])
    pos = torch.zeros(shape, dtype=torch.bool, device=labels.device)
    neg = torch.zeros(shape, dtype=torch.bool, device=labels.device)
    pos[pairs.a1, pairs.p] = True
    neg[pairs.a2, pairs.n] = True
    return pos, neg


def positive_pairs(pos: Tensor, indices: MinedIndices | None) -> tuple[Tensor, Tensor]:
    """``(anchors, positives)`` index vectors: the mined pairs in their order, else ``pos``'s
    in row-major order."""
    if indices is None:
        a, p = pos.nonzero(as_tuple=True)
        return a, p
    pairs = as_pairs(indices)
    return pairs.a1, pairs.p
