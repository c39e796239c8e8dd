"""NT-Xent and SupCon against the paper loops and pytorch-metric-learning."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from pytorch_metric_learning import distances as pml_dist
from pytorch_metric_learning import losses as pml_losses
from pytorch_metric_learning import reducers

from deepmetric.losses.ntxent import NTXentLoss
from deepmetric.losses.supcon import SupConLoss
from deepmetric.tuples import Pairs, all_pairs, all_triplets
from tests.helpers import assert_same_value_and_grad, batch, value_and_grad
from tests.reference import ssl_losses as ref

METRICS = ["cosine", "dot", "euclidean", "squared_euclidean"]
PML_DIST = {
    "cosine": pml_dist.CosineSimilarity,
    "dot": lambda: pml_dist.DotProductSimilarity(normalize_embeddings=False),
    "euclidean": lambda: pml_dist.LpDistance(normalize_embeddings=False),
    "squared_euclidean": lambda: pml_dist.LpDistance(normalize_embeddings=False, power=2),
}
LOSSES = [NTXentLoss, SupConLoss]


def _small(metric: str, **kw: int) -> tuple[torch.Tensor, torch.Tensor]:
    # keep dot / distance logits moderate so that float64 comparisons stay tight
    x, y = batch(**kw)
    return (x * 0.3, y) if metric != "cosine" else (x, y)


@pytest.mark.parametrize("metric", METRICS)
def test_ntxent_matches_reference_loop(metric: str) -> None:
    x, y = _small(metric, n=12, classes=4, seed=1)
    ours = NTXentLoss(temperature=0.5, metric=metric)
    assert_same_value_and_grad(lambda e: ours(e, y), lambda e: ref.ntxent(e, y, 0.5, metric), x)


@pytest.mark.parametrize("metric", METRICS)
def test_ntxent_matches_pml(metric: str) -> None:
    x, y = _small(metric, n=40, classes=6, seed=2)
    ours = NTXentLoss(temperature=0.2, metric=metric)
    theirs = pml_losses.NTXentLoss(temperature=0.2, distance=PML_DIST[metric]())
    assert_same_value_and_grad(lambda e: ours(e, y), lambda e: theirs(e, y), x)


def test_ntxent_with_reference_set_matches_loop_and_pml() -> None:
    x, y = batch(n=10, classes=3, seed=3)
    r, ry = batch(n=8, classes=4, seed=4)
    ours = NTXentLoss(temperature=0.3)
    theirs = pml_losses.NTXentLoss(temperature=0.3)
    assert_same_value_and_grad(
        lambda e: ours(e, y, ref_embeddings=r, ref_labels=ry),
        lambda e: ref.ntxent(e, y, 0.3, r=r, ry=ry),
        x,
    )
    assert_same_value_and_grad(
        lambda e: ours(x, y, ref_embeddings=e, ref_labels=ry),
        lambda e: theirs(x, y, ref_emb=e, ref_labels=ry),
        r,
    )


def test_ntxent_mined_pairs_with_repeats_match_pml() -> None:
    x, y = batch(n=20, classes=4, seed=5)
    pairs = all_pairs(y)
    keep_pos, keep_neg = torch.arange(0, len(pairs.a1), 3), torch.arange(0, len(pairs.a2), 2)
    keep_neg = torch.cat([keep_neg, keep_neg[:15]])  # some negative pairs twice
    mined = Pairs(pairs.a1[keep_pos], pairs.p[keep_pos], pairs.a2[keep_neg], pairs.n[keep_neg])
    ours = NTXentLoss(temperature=0.1)
    theirs = pml_losses.NTXentLoss(temperature=0.1)
    assert_same_value_and_grad(
        lambda e: ours(e, y, indices=mined), lambda e: theirs(e, y, indices_tuple=tuple(mined)), x
    )


def test_ntxent_triplets_act_as_their_unique_pairs() -> None:
    x, y = batch(n=12, classes=3, seed=6)
    trip = all_triplets(y)
    loss = NTXentLoss(temperature=0.5)
    torch.testing.assert_close(loss(x, y, indices=trip), loss(x, y))


def test_ntxent_on_two_views_is_simclr_cross_entropy() -> None:
    # SimCLR: 2N views, the positive of view i is its other view, the rest of the batch negatives
    x, _ = batch(n=16, dim=6, seed=7)
    y = torch.arange(8).repeat(2)
    logits = F.normalize(x, dim=1) @ F.normalize(x, dim=1).T / 0.5
    logits = logits.masked_fill(torch.eye(16, dtype=torch.bool), -torch.inf)
    expected = F.cross_entropy(logits, (torch.arange(16) + 8) % 16)
    torch.testing.assert_close(NTXentLoss(temperature=0.5)(x, y), expected)


def test_ntxent_none_is_per_positive_pair() -> None:
    x, y = batch(n=14, classes=4, seed=8)
    per = NTXentLoss(reduction="none")(x, y)
    assert per.shape == (len(all_pairs(y).a1),)
    torch.testing.assert_close(per.mean(), NTXentLoss()(x, y))
    torch.testing.assert_close(per.sum(), NTXentLoss(reduction="sum")(x, y))


@pytest.mark.parametrize("metric", METRICS)
def test_supcon_matches_reference_loop(metric: str) -> None:
    x, y = _small(metric, n=12, classes=4, seed=9)
    ours = SupConLoss(temperature=0.5, metric=metric)
    assert_same_value_and_grad(lambda e: ours(e, y), lambda e: ref.supcon(e, y, 0.5, metric), x)


@pytest.mark.parametrize("metric", METRICS)
def test_supcon_matches_pml_default_reducer(metric: str) -> None:
    x, y = _small(metric, n=40, classes=6, seed=10)
    ours = SupConLoss(temperature=0.2, metric=metric)
    theirs = pml_losses.SupConLoss(temperature=0.2, distance=PML_DIST[metric]())
    assert_same_value_and_grad(lambda e: ours(e, y), lambda e: theirs(e, y), x)


def test_supcon_with_reference_set_and_singletons() -> None:
    x, y = batch(n=10, classes=3, seed=11)
    y = y.clone()
    y[0] = 99  # an anchor without positives: it counts for nothing
    r, ry = batch(n=9, classes=3, seed=12)
    ours = SupConLoss(temperature=0.3)
    theirs = pml_losses.SupConLoss(temperature=0.3)
    kw = {"ref_embeddings": r, "ref_labels": ry}
    assert_same_value_and_grad(
        lambda e: ours(e, y, **kw), lambda e: ref.supcon(e, y, 0.3, r=r, ry=ry), x
    )
    assert_same_value_and_grad(
        lambda e: ours(e, y, **kw), lambda e: theirs(e, y, ref_emb=r, ref_labels=ry), x
    )
    per = SupConLoss(reduction="none")(x, y, **kw)
    assert per.shape == (10,) and per[0] == 0


def test_supcon_sum_matches_pml_mean_reducer_times_batch() -> None:
    x, y = batch(n=20, classes=5, seed=13)
    total = SupConLoss(temperature=0.1, reduction="sum")(x, y)
    theirs = pml_losses.SupConLoss(temperature=0.1, reducer=reducers.MeanReducer())(x, y)
    torch.testing.assert_close(total / 20, theirs)


def test_supcon_counts_an_anchor_with_zero_loss_unlike_pml() -> None:
    # anchor 0 has one positive and no negative: its loss is exactly 0. We average over the 4
    # anchors with positives, pytorch-metric-learning's AvgNonZeroReducer over the 3 non-zero.
    x, y = batch(n=6, classes=3, seed=14)
    y = torch.tensor([0, 0, 1, 1, 2, 2])
    mined = Pairs(
        torch.tensor([0, 2, 3, 4]),
        torch.tensor([1, 3, 2, 5]),
        torch.tensor([2, 2, 3, 4, 4]),
        torch.tensor([0, 4, 5, 1, 3]),
    )
    ours = SupConLoss(temperature=0.5)(x, y, indices=mined)
    per = SupConLoss(temperature=0.5, reduction="none")(x, y, indices=mined)
    theirs = pml_losses.SupConLoss(temperature=0.5)(x, y, indices_tuple=tuple(mined))
    assert per[0] == 0 and bool((per[[2, 3, 4]] > 0).all())
    torch.testing.assert_close(ours, per.sum() / 4)
    torch.testing.assert_close(theirs, per.sum() / 3)


@pytest.mark.parametrize("loss_cls", LOSSES)
@pytest.mark.parametrize(
    "labels",
    [[0, 0, 0, 0], [0, 1, 2, 3], [5], []],
    ids=["one-class", "distinct", "single", "empty"],
)
def test_degenerate_batches_give_zero_with_zero_gradient(loss_cls: type, labels: list[int]) -> None:
    y = torch.tensor(labels, dtype=torch.long)
    x = torch.randn(len(labels), 3, dtype=torch.float64)
    value, grad = value_and_grad(lambda e: loss_cls()(e, y), x)
    assert value == 0 and bool((grad == 0).all())


@pytest.mark.parametrize("loss_cls", LOSSES)
def test_anchor_without_negatives_in_reference_has_finite_gradient(loss_cls: type) -> None:
    x, y = torch.randn(4, 3, dtype=torch.float64), torch.tensor([0, 0, 1, 1])
    r, ry = torch.randn(3, 3, dtype=torch.float64), torch.tensor([0, 0, 0])  # none for class 0
    value, grad = value_and_grad(lambda e: loss_cls()(e, y, ref_embeddings=r, ref_labels=ry), x)
    assert torch.isfinite(value) and bool(torch.isfinite(grad).all())


@settings(deadline=None, max_examples=20)
@given(seed=st.integers(0, 10_000), scale=st.floats(0.1, 10.0))
def test_properties_permutation_and_scale(seed: int, scale: float) -> None:
    x, y = batch(n=12, classes=3, seed=seed)
    perm = torch.randperm(12, generator=torch.Generator().manual_seed(seed))
    for loss in (NTXentLoss(temperature=0.2), SupConLoss(temperature=0.2)):
        value = loss(x, y)
        assert torch.isfinite(value) and value >= 0
        torch.testing.assert_close(loss(x[perm], y[perm]), value)
        torch.testing.assert_close(loss(x * scale, y), value)  # cosine is scale-free


@pytest.mark.parametrize("loss_cls", LOSSES)
def test_bad_hyperparameters_raise(loss_cls: type) -> None:
    with pytest.raises(ValueError, match=r"temperature must be > 0; got 0"):
        loss_cls(temperature=0)
    with pytest.raises(ValueError, match=r"temperature must be > 0; got -1.0"):
        loss_cls(temperature=-1.0)
    with pytest.raises(ValueError, match=r"reduction must be one of .*; got 'avg'"):
        loss_cls(reduction="avg")
    with pytest.raises(ValueError, match=r"metric must be one of .*; got 'manhattan'"):
        loss_cls(metric="manhattan")
