"""The trivial miner: every valid pair or triplet."""

from __future__ import annotations

from typing import Literal

from torch import Tensor

from ..tuples import MinedIndices, all_pairs, all_triplets
from ._common import MINERS, Miner

KINDS = ("pairs", "triplets")


@MINERS.register("all")
class AllMiner(Miner):
    """Every positive and negative pair (``kind="pairs"``) or every valid triplet.

    Useful as a baseline and to feed a loss that takes indices with "no mining". Distances play
    no part, so there is no ``metric``. ``kind="triplets"`` enumerates the ``(n, m, m)`` table of
    candidates (``indices.all_triplets``): fine for ordinary batches, heavy for large reference
    sets.

    Args:
        kind: ``"pairs"`` gives ``Pairs``, ``"triplets"`` gives ``Triplets``.

    Shapes: ``embeddings (batch, dim)``, ``labels (batch,)``; int64 index tensors in row-major
    order. Without a reference set an item is never paired with itself.

    Example:
        >>> import torch
        >>> AllMiner(kind="triplets")(torch.zeros(3, 2), torch.tensor([0, 0, 1]))
        Triplets(a=tensor([0, 1]), p=tensor([1, 0]), n=tensor([2, 2]))
    """

    def __init__(self, kind: Literal["pairs", "triplets"] = "pairs") -> None:
        super().__init__()
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}; got {kind!r}")
        self.kind = kind

    def mine(
        self, embeddings: Tensor, labels: Tensor, ref: Tensor, ref_labels: Tensor, is_self: bool
    ) -> MinedIndices:
        other = None if is_self else ref_labels
        if self.kind == "pairs":
            return all_pairs(labels, other)
        return all_triplets(labels, other)
