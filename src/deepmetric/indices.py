"""The index tuples that miners return and losses accept.

``Pairs(a1, p, a2, n)``: positive pairs ``(a1[i], p[i])`` and negative pairs ``(a2[j], n[j])``.
``Triplets(a, p, n)``: ``label[a] == label[p] != label[n]``. Anchors index the batch; the other
side indexes the reference set (the batch itself unless ``ref_embeddings`` is given). Every field
is a 1-D int64 tensor.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor


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
