"""The benchmark's cases: name -> Case(ours, pml, same_math).

A factory takes ``(num_classes, dim)`` and returns ``step(embeddings, labels) -> loss``; both
sides are configured to the same convention (the tests check that they agree in value and
gradient). ``same_math=False`` marks a pairing where PML computes a different loss (the ratio is
shown but left out of the summary).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import torch
from pytorch_metric_learning import distances as D
from pytorch_metric_learning import losses as L
from pytorch_metric_learning import miners as M
from pytorch_metric_learning import reducers as R
from torch import Tensor

from deepmetric import losses, miners
from deepmetric.tuples import Pairs

Step = Callable[[Tensor, Tensor], Tensor]
Factory = Callable[[int, int], Step]


class Case(NamedTuple):
    ours: Factory
    pml: Factory | None
    same_math: bool = True


def ours(loss: dict[str, Any], miner: dict[str, Any] | None = None) -> Factory:
    def make(num_classes: int, dim: int) -> Step:
        accepted = losses.LOSSES.get(loss["name"]).__init__.__code__.co_varnames
        spec = dict(loss)
        if "embedding_dim" in accepted:
            spec.update(num_classes=num_classes, embedding_dim=dim)
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


def npair_batch(labels: Tensor) -> Pairs:
    """The N-pair paper's batch: one (anchor, positive) per class; the other pairs' positives
    are an anchor's negatives."""
    first = torch.unique(labels, return_inverse=False)
    a = torch.stack([(labels == c).nonzero()[0, 0] for c in first])
    p = torch.stack([(labels == c).nonzero()[1, 0] for c in first])
    i, j = torch.meshgrid(torch.arange(len(a)), torch.arange(len(a)), indexing="ij")
    off = i != j
    return Pairs(a, p, a[i[off]], p[j[off]])


def with_npair_batch(make: Factory, pml_side: bool) -> Factory:
    def wrapped(num_classes: int, dim: int) -> Step:
        fn = make(num_classes, dim)
        cache: dict[int, Pairs] = {}

        def step(x: Tensor, y: Tensor) -> Tensor:
            if 0 not in cache:  # built once: the batch structure is fixed
                cache[0] = npair_batch(y)
            idx = cache[0]
            return fn(x, y, indices_tuple=tuple(idx)) if pml_side else fn(x, y, indices=idx)

        return step

    return wrapped


def _raw(name: str, **params: Any) -> Factory:
    return lambda c, d: losses.build({"name": name, **params})


L2 = lambda: D.LpDistance(normalize_embeddings=False)  # noqa: E731
MEAN = R.MeanReducer
PML_NPAIR = lambda c, d: L.NPairsLoss(  # noqa: E731
    distance=D.DotProductSimilarity(normalize_embeddings=False), reducer=MEAN()
)

CASES: dict[str, Case] = {
    "contrastive": Case(
        ours({"name": "contrastive"}),
        pml(lambda c, d: L.ContrastiveLoss(distance=L2(), reducer=MEAN())),
    ),
    "triplet (all triplets)": Case(
        ours({"name": "triplet", "margin": 0.05}),
        pml(lambda c, d: L.TripletMarginLoss(margin=0.05, distance=L2(), reducer=MEAN())),
    ),
    "triplet + batch_hard": Case(
        ours({"name": "triplet", "margin": 0.05}, {"name": "batch_hard"}),
        pml(
            lambda c, d: L.TripletMarginLoss(margin=0.05, distance=L2(), reducer=MEAN()),
            lambda: M.BatchHardMiner(distance=L2()),
        ),
    ),
    "triplet + semi_hard": Case(
        ours({"name": "triplet", "margin": 0.2}, {"name": "semi_hard", "margin": 0.2}),
        pml(
            lambda c, d: L.TripletMarginLoss(margin=0.2, distance=L2(), reducer=MEAN()),
            lambda: M.TripletMarginMiner(margin=0.2, type_of_triplets="semihard", distance=L2()),
        ),
    ),
    "triplet + hard_negative": Case(
        ours({"name": "triplet", "margin": 0.2}, {"name": "hard_negative"}),
        pml(
            lambda c, d: L.TripletMarginLoss(margin=0.2, distance=L2(), reducer=MEAN()),
            lambda: M.TripletMarginMiner(type_of_triplets="hard", distance=L2()),
        ),
    ),
    "contrastive + pair_margin": Case(
        ours({"name": "contrastive"}, {"name": "pair_margin"}),
        pml(
            lambda c, d: L.ContrastiveLoss(distance=L2(), reducer=MEAN()),
            lambda: M.PairMarginMiner(pos_margin=0.2, neg_margin=0.8, distance=L2()),
        ),
    ),
    "multi_similarity + miner": Case(
        ours({"name": "multi_similarity"}, {"name": "multi_similarity"}),
        pml(
            lambda c, d: L.MultiSimilarityLoss(reducer=MEAN()),
            lambda: M.MultiSimilarityMiner(epsilon=0.1),
        ),
    ),
    "margin + distance_weighted": Case(
        ours({"name": "margin"}, {"name": "distance_weighted"}),
        pml(lambda c, d: L.MarginLoss(distance=L2()), lambda: M.DistanceWeightedMiner()),
        same_math=False,  # PML draws positives at random and scores triplets, not pairs
    ),
    "lifted_structure": Case(
        ours({"name": "lifted_structure"}),
        pml(lambda c, d: L.LiftedStructureLoss(neg_margin=1, distance=L2(), reducer=MEAN())),
    ),
    "npair (paper batch)": Case(
        with_npair_batch(_raw("npair", negatives="other_pairs"), pml_side=False),
        with_npair_batch(PML_NPAIR, pml_side=True),
    ),
    "npair (paper batch, mined negatives)": Case(
        with_npair_batch(_raw("npair"), pml_side=False),
        with_npair_batch(PML_NPAIR, pml_side=True),
        same_math=False,  # same values here, but PML ignores mined negatives in general
    ),
    "angular": Case(ours({"name": "angular"}), pml(lambda c, d: L.AngularLoss(alpha=40))),
    "margin": Case(
        ours({"name": "margin"}),
        pml(lambda c, d: L.MarginLoss(distance=L2())),
        same_math=False,  # ours: all pairs; PML: every pair once per triplet
    ),
    "multi_similarity": Case(
        ours({"name": "multi_similarity"}),
        pml(lambda c, d: L.MultiSimilarityLoss(reducer=MEAN())),
    ),
    "circle": Case(ours({"name": "circle"}), pml(lambda c, d: L.CircleLoss(m=0.4, gamma=80))),
    "ntxent": Case(
        ours({"name": "ntxent", "temperature": 0.07}),
        pml(lambda c, d: L.NTXentLoss(temperature=0.07)),
    ),
    "supcon": Case(
        ours({"name": "supcon", "temperature": 0.1}),
        pml(lambda c, d: L.SupConLoss(temperature=0.1)),
    ),
    "proxy_nca": Case(
        ours({"name": "proxy_nca"}),
        pml(lambda c, d: L.ProxyNCALoss(c, d, softmax_scale=1, reducer=MEAN())),
    ),
    "proxy_anchor": Case(
        ours({"name": "proxy_anchor"}),
        pml(lambda c, d: L.ProxyAnchorLoss(c, d, margin=0.1, alpha=32)),
    ),
    "soft_triple": Case(
        ours({"name": "soft_triple", "tau": 0.0}),
        pml(lambda c, d: L.SoftTripleLoss(c, d, centers_per_class=10, reducer=MEAN())),
    ),
    "arcface": Case(
        ours({"name": "arcface"}),
        pml(lambda c, d: L.ArcFaceLoss(c, d, margin=28.6478897565, scale=64, reducer=MEAN())),
    ),
    "cosface": Case(
        ours({"name": "cosface"}),
        pml(lambda c, d: L.CosFaceLoss(c, d, margin=0.35, scale=64, reducer=MEAN())),
    ),
    "normalized_softmax": Case(
        ours({"name": "normalized_softmax"}),
        pml(lambda c, d: L.NormalizedSoftmaxLoss(c, d, temperature=0.05, reducer=MEAN())),
    ),
    "quadruplet": Case(ours({"name": "quadruplet"}), None),
    "quadruplet + batch_hard": Case(ours({"name": "quadruplet"}, {"name": "batch_hard"}), None),
    "center": Case(ours({"name": "center"}), None),
}
