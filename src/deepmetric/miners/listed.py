"""The rows of a pair or triplet list as the loss's pairs or triplets."""

from __future__ import annotations

import torch
from torch import Tensor

from ..tuples import MinedIndices, Pairs, Triplets
from ._common import MINERS, Miner


@MINERS.register("listed")
class ListedMiner(Miner):
    """Hand the loss exactly the listed rows of the batch (``data.lists.TupleSampler`` lays them
    out row after row), plus in-batch negatives where they are known to be negatives.

    Pairs (``width=2``): rows ``(2i, 2i+1)``; a row whose two items share a label (the listed
    positives, joined into components by the data set) is a positive pair, any other a negative
    pair. Triplets (``width=3``): each row ``(3i, 3i+1, 3i+2)`` is ``(anchor, positive,
    negative)``. With ``in_batch_negatives`` the items of the other rows whose label (component)
    differs are negatives too: for pairs every such ordered pair, for triplets ``(anchor,
    positive, x)`` for every such ``x``. Two items of one component are never made a negative.

    Args:
        width: 2 (pair lists) or 3 (triplet lists).
        in_batch_negatives: add the other rows' items of other components as negatives.

    Example:
        >>> y = torch.tensor([0, 0, 1, 2])  # rows: (0, 1) same, (2, 3) different
        >>> pairs = ListedMiner(2, in_batch_negatives=False)(torch.zeros(4, 2), y)
        >>> pairs.a1.tolist(), pairs.p.tolist(), pairs.a2.tolist(), pairs.n.tolist()
        ([0], [1], [2], [3])
    """

    def __init__(self, width: int = 2, in_batch_negatives: bool = True) -> None:
        super().__init__()
        if width not in (2, 3) or isinstance(width, bool):
            raise ValueError(f"width must be 2 (pairs) or 3 (triplets); got {width!r}")
        self.width, self.in_batch_negatives = width, bool(in_batch_negatives)

    def mine(
        self, embeddings: Tensor, labels: Tensor, ref: Tensor, ref_labels: Tensor, is_self: bool
    ) -> MinedIndices:
        if not is_self:
            raise ValueError("the listed miner reads the batch's own rows; it takes no ref set")
        if len(labels) % self.width:
            raise ValueError(
                f"a batch of listed rows holds a multiple of {self.width} items; got {len(labels)}"
            )
        rows = torch.arange(len(labels), device=labels.device).view(-1, self.width)
        row_of = torch.arange(len(labels), device=labels.device) // self.width
        first = rows[:, 0]
        apart = (labels[first][:, None] != labels[None, :]) & (
            torch.arange(len(rows), device=labels.device)[:, None] != row_of[None, :]
        )  # (rows, batch): items of other rows and other components than the row's first
        if self.width == 3:
            anchors, positives, negatives = rows.T
            if self.in_batch_negatives:
                row, other = apart.nonzero(as_tuple=True)
                anchors, positives = (
                    torch.cat([anchors, first[row]]),
                    torch.cat([positives, rows[row, 1]]),
                )
                negatives = torch.cat([negatives, other])
            return Triplets(anchors, positives, negatives)
        same = labels[rows[:, 0]] == labels[rows[:, 1]]
        a2, n = rows[~same, 0], rows[~same, 1]
        if self.in_batch_negatives:
            pairs = (labels[:, None] != labels[None, :]) & (row_of[:, None] != row_of[None, :])
            x, y = pairs.nonzero(as_tuple=True)
            a2, n = torch.cat([a2, x]), torch.cat([n, y])
        return Pairs(rows[same, 0], rows[same, 1], a2, n)


__all__ = ["ListedMiner"]
