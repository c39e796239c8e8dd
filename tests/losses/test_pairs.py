"""Contrastive and triplet losses against the paper loops and pytorch-metric-learning."""

from __future__ import annotations

import pytest
import torch
from pytorch_metric_learning import distances as pml_dist
from pytorch_metric_learning import losses as pml_losses
from pytorch_metric_learning import reducers

from deepmetric import losses
from deepmetric.tuples import Triplets, all_triplets
from tests.helpers import assert_same_value_and_grad, batch
from tests.reference import pairs as ref

METRICS = ["euclidean", "squared_euclidean", "cosine", "dot"]
PML_DIST = {
    "euclidean": lambda: pml_dist.LpDistance(normalize_embeddings=False),
    "squared_euclidean": lambda: pml_dist.LpDistance(normalize_embeddings=False, power=2),
    "cosine": pml_dist.CosineSimilarity,
    "dot": lambda: pml_dist.DotProductSimilarity(normalize_embeddings=False),
}


@pytest.mark.parametrize("metric", METRICS)
def test_triplet_matches_reference_loop(metric: str) -> None:
    x, y = batch(n=14, classes=3, seed=1)
    ours = losses.TripletMarginLoss(margin=0.3, metric=metric)
    assert_same_value_and_grad(lambda e: ours(e, y), lambda e: ref.triplet(e, y, 0.3, metric), x)


@pytest.mark.parametrize("metric", METRICS)
def test_triplet_matches_pml(metric: str) -> None:
    x, y = batch(n=40, classes=5, seed=2)
    ours = losses.TripletMarginLoss(margin=0.2, metric=metric)
    theirs = pml_losses.TripletMarginLoss(
        margin=0.2, distance=PML_DIST[metric](), reducer=reducers.MeanReducer()
    )
    assert_same_value_and_grad(lambda e: ours(e, y), lambda e: theirs(e, y), x)


def test_triplet_sum_none_and_indices_agree() -> None:
    x, y = batch(n=20, classes=4, seed=3)
    trip = all_triplets(y)
    per = losses.TripletMarginLoss(margin=0.5, reduction="none")(x, y)
    assert per.shape == (len(trip.a),)
    total = losses.TripletMarginLoss(margin=0.5, reduction="sum")(x, y)
    mined = losses.TripletMarginLoss(margin=0.5, reduction="sum")(x, y, indices=trip)
    torch.testing.assert_close(per.sum(), total)
    torch.testing.assert_close(mined, total)


def test_triplet_with_mined_subset_matches_pml() -> None:
    x, y = batch(n=24, classes=4, seed=4)
    trip = all_triplets(y)
    keep = torch.arange(0, len(trip.a), 7)
    sub = Triplets(trip.a[keep], trip.p[keep], trip.n[keep])
    ours = losses.TripletMarginLoss(margin=0.2)
    theirs = pml_losses.TripletMarginLoss(
        margin=0.2, distance=PML_DIST["euclidean"](), reducer=reducers.MeanReducer()
    )
    assert_same_value_and_grad(
        lambda e: ours(e, y, indices=sub), lambda e: theirs(e, y, indices_tuple=tuple(sub)), x
    )


@pytest.mark.parametrize("metric", METRICS)
def test_contrastive_matches_reference_loop(metric: str) -> None:
    x, y = batch(n=12, classes=3, seed=5)
    pm, nm = (0.8, 0.2) if metric == "cosine" else (0.5, 3.0)
    ours = losses.ContrastiveLoss(pos_margin=pm, neg_margin=nm, metric=metric)
    assert_same_value_and_grad(
        lambda e: ours(e, y), lambda e: ref.contrastive(e, y, pm, nm, metric), x
    )


@pytest.mark.parametrize("metric", METRICS)
def test_contrastive_matches_pml(metric: str) -> None:
    x, y = batch(n=40, classes=5, seed=6)
    pm, nm = (0.8, 0.2) if metric == "cosine" else (0.5, 3.0)
    ours = losses.ContrastiveLoss(pos_margin=pm, neg_margin=nm, metric=metric)
    theirs = pml_losses.ContrastiveLoss(
        pos_margin=pm, neg_margin=nm, distance=PML_DIST[metric](), reducer=reducers.MeanReducer()
    )
    assert_same_value_and_grad(lambda e: ours(e, y), lambda e: theirs(e, y), x)


def test_reference_set_pairs_every_anchor_with_every_reference_item() -> None:
    x, y = batch(n=10, classes=3, seed=7)
    r, ry = batch(n=6, classes=3, seed=8)
    ours = losses.TripletMarginLoss(margin=0.4, reduction="sum")
    # a reference set has no "self" pairs: the result equals the loop over (batch x reference)
    total = torch.zeros((), dtype=x.dtype)
    for a in range(10):
        for p in range(6):
            for q in range(6):
                if y[a] == ry[p] and y[a] != ry[q]:
                    total += torch.relu((x[a] - r[p]).norm() - (x[a] - r[q]).norm() + 0.4)
    torch.testing.assert_close(ours(x, y, ref_embeddings=r, ref_labels=ry), total)


def test_contrastive_reductions_agree() -> None:
    x, y = batch(n=16, classes=4, seed=9)
    per = losses.ContrastiveLoss(neg_margin=2.0, reduction="none")(x, y)
    assert per.shape == (16 * 15,)
    total = losses.ContrastiveLoss(neg_margin=2.0, reduction="sum")(x, y)
    torch.testing.assert_close(per.sum(), total)
    n_pos = int((y[:, None] == y[None, :]).sum() - 16)
    mean = losses.ContrastiveLoss(neg_margin=2.0)(x, y)
    torch.testing.assert_close(mean, per[:n_pos].mean() + per[n_pos:].mean())
