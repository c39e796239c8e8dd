"""Neighbour evidence: a query's nearest items, each with its map, and the "why not" item.

The "why not" item is the nearest one whose label differs from the top match's: the class
that came second, and where its similarity comes from.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from .._checks import check_int
from ..distances import is_similarity, pairwise
from ..models import embed
from .pair import PairExplanation, explain_pairs


@dataclasses.dataclass(frozen=True)
class Neighbour:
    """One explained neighbour: its ``position`` among the candidates (or its item id), its
    ``label``, and the explanation of its similarity to the query."""

    position: int
    label: Any
    explanation: PairExplanation


@dataclasses.dataclass(frozen=True)
class NeighbourEvidence:
    """``matches``: the nearest items, nearest first; ``why_not``: the nearest item whose label
    differs from the first match's (None without labels, or when every candidate shares it)."""

    matches: list[Neighbour]
    why_not: Neighbour | None


def neighbour_evidence(
    model: nn.Module,
    query: Tensor,
    ranked: Tensor,
    labels: Sequence[Any] | None = None,
    *,
    k: int = 5,
    ids: Sequence[int] | None = None,
    **options: Any,
) -> NeighbourEvidence:
    """Explain the first ``k`` of ``ranked`` (candidate inputs, nearest first, from any search)
    and the first candidate of another label than the top one, in one batch.

    ``ids`` name the candidates in the result (default: their positions); ``options`` go to
    :func:`deepmetric.explain.explain_pairs`.
    """
    check_int("k", k, low=1)
    if len(ranked) == 0:
        raise ValueError("there are no candidates to explain")
    if labels is not None and len(labels) != len(ranked):
        raise ValueError(f"labels has {len(labels)} entries for {len(ranked)} candidates")
    names = list(range(len(ranked))) if ids is None else [int(i) for i in ids]
    chosen = list(range(min(k, len(ranked))))
    other = None
    if labels is not None:
        other = next((i for i, lab in enumerate(labels) if lab != labels[0]), None)
    picks = chosen + ([] if other is None else [other])
    explained = explain_pairs(model, query, ranked[picks], **options)

    def neighbour(position: int, explanation: PairExplanation) -> Neighbour:
        label = None if labels is None else labels[position]
        return Neighbour(names[position], label, explanation)

    matches = [neighbour(p, e) for p, e in zip(chosen, explained, strict=False)]
    why_not = None if other is None else neighbour(other, explained[-1])
    return NeighbourEvidence(matches, why_not)


def explain_neighbours(
    model: nn.Module,
    query: Tensor,
    gallery: Tensor,
    labels: Sequence[Any] | None = None,
    *,
    k: int = 5,
    metric: str = "cosine",
    **options: Any,
) -> NeighbourEvidence:
    """Rank ``gallery`` by the model's ``metric`` to ``query`` (exactly) and explain the top
    ``k`` and the "why not" item; see :func:`neighbour_evidence`.

    Example:
        >>> from deepmetric.models import Embedder
        >>> model = Embedder({"backbone": {"name": "conv4", "channels": 8, "num_blocks": 2},
        ...                   "embedding_dim": 4}).eval()
        >>> gallery = torch.rand(6, 3, 16, 16)
        >>> found = explain_neighbours(model, gallery[0], gallery, labels=[0, 0, 1, 1, 2, 2], k=2)
        >>> found.matches[0].position, found.matches[0].explanation.method
        (0, 'exact')
    """
    query = query[None] if query.dim() == gallery.dim() - 1 else query
    vectors = embed(model, torch.cat([query, gallery]))
    scores = pairwise(vectors[:1], vectors[1:], metric)[0]  # type: ignore[arg-type]
    order = torch.argsort(scores, descending=is_similarity(metric), stable=True)  # type: ignore[arg-type]
    ranked_labels = None if labels is None else [labels[int(i)] for i in order]
    return neighbour_evidence(
        model, query, gallery[order], ranked_labels, k=k, ids=order.tolist(), metric=metric,
        **options,
    )  # fmt: skip


__all__ = ["Neighbour", "NeighbourEvidence", "explain_neighbours", "neighbour_evidence"]
