"""Who pairs with whom in a batch: the index tuples that miners return and losses accept, the
label masks and distance convention both use, and the input checks both run.

``Pairs(a1, p, a2, n)``: positive pairs ``(a1[i], p[i])`` and negative pairs ``(a2[j], n[j])``.
``Triplets(a, p, n)``: ``label[a] == label[p] != label[n]``. Anchors index the batch; the other
side indexes the reference set (the batch itself unless ``ref_embeddings`` is given). Every field
is a 1-D int64 tensor.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import Tensor

from .distances import Metric, check_metric, is_similarity, paired, pairwise


class Pairs(NamedTuple):
    """Positive pairs ``(a1, p)`` and negative pairs ``(a2, n)``."""

    a1: Tensor
    p: Tensor
    a2: Tensor
    n: Tensor


class Triplets(NamedTuple):
    """Anchor, positive and negative indices: ``label[a] == label[p] != label[n]``."""

    a: Tensor
    p: Tensor
    n: Tensor


MinedIndices = Pairs | Triplets


def as_pairs(indices: MinedIndices) -> Pairs:
    """Pairs from either kind: triplets give their (a, p) and (a, n) pairs, duplicates removed."""
    if isinstance(indices, Pairs):
        return indices
    if isinstance(indices, Triplets):
        pos = torch.unique(torch.stack([indices.a, indices.p]), dim=1)
        neg = torch.unique(torch.stack([indices.a, indices.n]), dim=1)
        return Pairs(pos[0], pos[1], neg[0], neg[1])
    raise TypeError(f"indices must be Pairs or Triplets; got {type(indices).__name__}")


def as_triplets(indices: MinedIndices) -> Triplets:
    """Triplets from either kind: pairs combine every positive and negative with a shared anchor."""
    if isinstance(indices, Triplets):
        return indices
    if isinstance(indices, Pairs):
        # (P, N) table of "same anchor"; its nonzero entries are the triplets.
        same = indices.a1[:, None] == indices.a2[None, :]
        pi, ni = same.nonzero(as_tuple=True)
        return Triplets(indices.a1[pi], indices.p[pi], indices.n[ni])
    raise TypeError(f"indices must be Pairs or Triplets; got {type(indices).__name__}")


def all_pairs(labels: Tensor, ref_labels: Tensor | None = None) -> Pairs:
    """Every positive and negative pair; with no reference set, an item is never paired with itself.

    Example:
        >>> all_pairs(torch.tensor([0, 0, 1]))
        Pairs(a1=tensor([0, 1]), p=tensor([1, 0]), a2=tensor([0, 1, 2, 2]), n=tensor([2, 2, 0, 1]))
    """
    same = labels[:, None] == (labels if ref_labels is None else ref_labels)[None, :]
    pos = same.clone()
    if ref_labels is None:
        pos.fill_diagonal_(False)
    a1, p = pos.nonzero(as_tuple=True)
    a2, n = (~same).nonzero(as_tuple=True)
    return Pairs(a1, p, a2, n)


def all_triplets(labels: Tensor, ref_labels: Tensor | None = None) -> Triplets:
    """Every valid triplet ``(a, p, n)``; with no reference set, ``p != a``."""
    ref = labels if ref_labels is None else ref_labels
    same = labels[:, None] == ref[None, :]
    pos = same.clone()
    if ref_labels is None:
        pos.fill_diagonal_(False)
    # (n, m, m): anchor a, positive p, negative q
    valid = pos[:, :, None] & ~same[:, None, :]
    a, p, n = valid.nonzero(as_tuple=True)
    return Triplets(a, p, n)


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
