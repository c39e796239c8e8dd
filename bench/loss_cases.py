"""The benchmark's cases: name -> (our step factory, PML step factory or None).

A factory takes ``(num_classes, dim)`` and returns ``step(embeddings, labels) -> loss``; both
sides are configured to the same convention (the tests check they agree in value and gradient).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from deepmetric import losses, miners

Step = Callable[[Tensor, Tensor], Tensor]
Factory = Callable[[int, int], Step]


def ours(loss: dict[str, Any], miner: dict[str, Any] | None = None, classes: bool = False) -> Factory:
    def make(num_classes: int, dim: int) -> Step:
        spec = dict(loss, num_classes=num_classes, embedding_dim=dim) if classes else loss
        fn = losses.build(spec)
        mine = miners.build(miner) if miner else None
        if mine is None:
            return lambda x, y: fn(x, y)
        return lambda x, y: fn(x, y, indices=mine(x, y))

    return make


def pml(loss: Callable[[int, int], Any], miner: Callable[[], Any] | None = None) -> Factory:
    def make(num_classes: int, dim: int) -> Step:
        fn = loss(num_classes, dim)
        mine = miner() if miner else None
        if mine is None:
            return lambda x, y: fn(x, y)
        return lambda x, y: fn(x, y, indices_tuple=mine(x, y))

    return make


def _pml() -> tuple[Any, Any, Any, Any]:
    from pytorch_metric_learning import distances, losses, miners, reducers

    return distances, losses, miners, reducers


D, L, M, R = _pml()
LP = lambda: D.LpDistance(normalize_embeddings=False)  # noqa: E731
MEAN = R.MeanReducer

CASES: dict[str, tuple[Factory, Factory | None]] = {
    "contrastive": (
        ours({"name": "contrastive"}),
        pml(lambda c, d: L.ContrastiveLoss(distance=LP(), reducer=MEAN())),
    ),
    "triplet (all triplets)": (
        ours({"name": "triplet", "margin": 0.05}),
        pml(lambda c, d: L.TripletMarginLoss(margin=0.05, distance=LP(), reducer=MEAN())),
    ),
}
torch.set_num_threads(2)
