"""Shared helpers of the miner tests: index tuples as sorted Python lists, PML distances."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from pytorch_metric_learning import distances as pml_dist
from torch import Tensor

from deepmetric.tuples import Pairs, Triplets

METRICS = ["euclidean", "squared_euclidean", "cosine", "dot"]
PML_DIST = {
    "euclidean": lambda: pml_dist.LpDistance(normalize_embeddings=False),
    "squared_euclidean": lambda: pml_dist.LpDistance(normalize_embeddings=False, power=2),
    "cosine": pml_dist.CosineSimilarity,
    "dot": lambda: pml_dist.DotProductSimilarity(normalize_embeddings=False),
}


def rows(*columns: Tensor) -> list[tuple[int, ...]]:
    """The index columns as a sorted list of tuples (duplicates kept)."""
    return sorted(zip(*(c.tolist() for c in columns), strict=True))


def triples(t: Triplets | Sequence[Tensor]) -> list[tuple[int, ...]]:
    assert len(t) == 3
    return rows(*t)


def pair_lists(p: Pairs | Sequence[Tensor]) -> tuple[list[tuple[int, ...]], list[tuple[int, ...]]]:
    assert len(p) == 4
    return rows(p[0], p[1]), rows(p[2], p[3])


def assert_int64(indices: Pairs | Triplets) -> None:
    """Every field a 1-D int64 tensor; paired fields of equal length."""
    for field in indices:
        assert field.dtype == torch.int64 and field.dim() == 1
    if isinstance(indices, Triplets):
        assert len(indices.a) == len(indices.p) == len(indices.n)
    else:
        assert len(indices.a1) == len(indices.p) and len(indices.a2) == len(indices.n)
