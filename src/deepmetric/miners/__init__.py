"""Miners: pick the informative pairs or triplets of a batch, as ``Pairs`` / ``Triplets`` indices.

A miner is an ``nn.Module`` without parameters, called ``miner(embeddings, labels, *,
ref_embeddings=None, ref_labels=None)``; it runs under ``torch.no_grad()`` and its output goes to
a loss as ``loss(embeddings, labels, indices=...)``. ``build({"name": "semi_hard", "margin":
0.2})`` makes one from a config; ``names()`` lists them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

from ._common import MINERS, Miner, window_triplets
from .batch_hard import BatchHardMiner, batch_hard_triplets
from .distance_weighted import DistanceWeightedMiner, distance_weighted_probabilities
from .exhaustive import AllMiner
from .group import WithinGroupMiner
from .listed import ListedMiner
from .multi_similarity import MultiSimilarityMiner, multi_similarity_pairs
from .pair_margin import PairMarginMiner
from .triplet_margin import HardNegativeMiner, SemiHardMiner


def build(spec: Mapping[str, Any] | str) -> nn.Module:
    """Build a miner from ``{"name": ..., **params}``; unknown names or parameters raise.

    Example:
        >>> build({"name": "semi_hard", "margin": 0.1}).margin
        0.1
    """
    return MINERS.build(spec)


def names() -> list[str]:
    """The registered miner names."""
    return MINERS.names()


__all__ = [
    "MINERS",
    "AllMiner",
    "BatchHardMiner",
    "DistanceWeightedMiner",
    "HardNegativeMiner",
    "ListedMiner",
    "Miner",
    "MultiSimilarityMiner",
    "PairMarginMiner",
    "SemiHardMiner",
    "WithinGroupMiner",
    "batch_hard_triplets",
    "build",
    "distance_weighted_probabilities",
    "multi_similarity_pairs",
    "names",
    "window_triplets",
]
