"""Lifted structure, N-pair, angular, margin, multi-similarity and circle losses against the paper
loops and pytorch-metric-learning."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from pytorch_metric_learning import distances as pml_dist
from pytorch_metric_learning import losses as pml_losses
from pytorch_metric_learning import reducers
from torch import Tensor, nn

from deepmetric.losses.angular import AngularLoss
from deepmetric.losses.circle import CircleLoss
from deepmetric.losses.lifted import LiftedStructureLoss
from deepmetric.losses.margin import MarginLoss
from deepmetric.losses.multi_similarity import MultiSimilarityLoss
from deepmetric.losses.npair import NPairLoss
from deepmetric.tuples import Pairs, Triplets, all_pairs, all_triplets
from tests.helpers import assert_same_value_and_grad, batch
from tests.reference import pair_losses as ref

PML_DIST = {
    "euclidean": lambda: pml_dist.LpDistance(normalize_embeddings=False),
    "squared_euclidean": lambda: pml_dist.LpDistance(normalize_embeddings=False, power=2),
    "cosine": pml_dist.CosineSimilarity,
    "dot": lambda: pml_dist.DotProductSimilarity(normalize_embeddings=False),
}
MEAN = reducers.MeanReducer

# every loss, built with a non-default setting, and its reference loop (same signature tail)
LOSSES: dict[str, tuple[Callable[[], nn.Module], Callable[..., Tensor]]] = {
    "lifted": (
        lambda: LiftedStructureLoss(margin=0.7),
        lambda x, y, **k: ref.lifted(x, y, 0.7, **k),
    ),
    "npair": (lambda: NPairLoss(), lambda x, y, **k: ref.npair(x, y, **k)),
    "angular": (lambda: AngularLoss(alpha=35.0), lambda x, y, **k: ref.angular(x, y, 35.0, **k)),
    "margin": (
        lambda: MarginLoss(margin=0.3, beta=1.0, nu=0.1),
        lambda x, y, **k: ref.margin(x, y, 0.3, torch.tensor([1.0], dtype=x.dtype), 0.1, **k),
    ),
    "multi_similarity": (
        lambda: MultiSimilarityLoss(alpha=2.0, beta=10.0, base=0.3),
        lambda x, y, **k: ref.multi_similarity(x, y, 2.0, 10.0, 0.3, **k),
    ),
    "circle": (
        lambda: CircleLoss(m=0.25, gamma=32.0),
        lambda x, y, **k: ref.circle(x, y, 0.25, 32.0, **k),
    ),
}
NAMES = list(LOSSES)


def _lists(pairs: Pairs) -> ref.PairLists:
    return (
        list(zip(pairs.a1.tolist(), pairs.p.tolist(), strict=True)),
        list(zip(pairs.a2.tolist(), pairs.n.tolist(), strict=True)),
    )


def _subset(pairs: Pairs, pos_step: int, neg_step: int) -> Pairs:
    return Pairs(
        pairs.a1[::pos_step], pairs.p[::pos_step], pairs.a2[::neg_step], pairs.n[::neg_step]
    )


# --- each loss against its reference loop: all pairs, mined pairs, mined triplets, reference set


@pytest.mark.parametrize("name", NAMES)
def test_matches_reference_loop(name: str) -> None:
    make, loop = LOSSES[name]
    x, y = batch(n=12, dim=5, classes=3, seed=11)
    loss = make()
    assert_same_value_and_grad(lambda e: loss(e, y), lambda e: loop(e, y), x)


@pytest.mark.parametrize("name", NAMES)
def test_mined_pairs_match_reference_loop(name: str) -> None:
    make, loop = LOSSES[name]
    x, y = batch(n=12, dim=5, classes=3, seed=12)
    mined = _subset(all_pairs(y), 3, 4)
    loss = make()
    assert_same_value_and_grad(
        lambda e: loss(e, y, indices=mined), lambda e: loop(e, y, pairs=_lists(mined)), x
    )


@pytest.mark.parametrize("name", NAMES)
def test_mined_triplets_use_their_distinct_pairs(name: str) -> None:
    make, loop = LOSSES[name]
    x, y = batch(n=10, dim=4, classes=3, seed=13)
    trip = all_triplets(y)
    trip = Triplets(trip.a[::5], trip.p[::5], trip.n[::5])
    pos = sorted(set(zip(trip.a.tolist(), trip.p.tolist(), strict=True)))
    neg = sorted(set(zip(trip.a.tolist(), trip.n.tolist(), strict=True)))
    loss = make()
    assert_same_value_and_grad(
        lambda e: loss(e, y, indices=trip), lambda e: loop(e, y, pairs=(pos, neg)), x
    )


@pytest.mark.parametrize("name", NAMES)
def test_reference_set_matches_reference_loop(name: str) -> None:
    make, loop = LOSSES[name]
    x, y = batch(n=8, dim=4, classes=3, seed=14)
    r, ry = batch(n=7, dim=4, classes=3, seed=15)
    loss = make()
    assert_same_value_and_grad(
        lambda e: loss(e, y, ref_embeddings=r, ref_labels=ry),
        lambda e: loop(e, y, r=r, ry=ry),
        x,
    )
    # and the gradient reaching the reference embeddings
    assert_same_value_and_grad(
        lambda e: loss(x, y, ref_embeddings=e, ref_labels=ry),
        lambda e: loop(x, y, r=e, ry=ry),
        r,
    )


@pytest.mark.parametrize("name", NAMES)
def test_float32_agrees_with_float64(name: str) -> None:
    make, _ = LOSSES[name]
    x, y = batch(n=64, dim=16, classes=8, seed=16)
    loss = make()
    v64 = loss(x, y)
    v32 = loss(x.float(), y)
    torch.testing.assert_close(v32.double(), v64, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("reduction", ["sum", "none"])
def test_reductions_agree(name: str, reduction: str) -> None:
    make, _ = LOSSES[name]
    x, y = batch(n=12, dim=5, classes=3, seed=17)
    loss = make()
    mean = loss(x, y)
    loss.reduction = reduction
    other = loss(x, y)
    if reduction == "none":
        assert other.dim() == 1
        other = other.sum()
    count = {  # what "mean" divides by
        "lifted": 12 * 3,
        "npair": 12 * 3,
        "angular": 12 * 3,
        "margin": 12 * 11,
        "multi_similarity": 12,
        "circle": 12,
    }[name]
    torch.testing.assert_close(other / count, mean)
    mined = all_pairs(y)  # the gather path for mined pairs gives the same numbers
    torch.testing.assert_close(loss(x, y, indices=mined), loss(x, y))


# --- degenerate batches


DEGENERATE = {
    "one class": torch.zeros(5, dtype=torch.long),
    "distinct labels": torch.arange(5),
    "single sample": torch.zeros(1, dtype=torch.long),
}


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("case", list(DEGENERATE))
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_degenerate_batches_give_zero_and_zero_gradient(
    name: str, case: str, reduction: str
) -> None:
    labels = DEGENERATE[case]
    x = torch.randn(len(labels), 4, requires_grad=True)
    loss = LOSSES[name][0]()
    loss.reduction = reduction
    value = loss(x, labels)
    value.backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    if name == "margin" and case != "single sample":
        return  # its pairs are independent terms: one kind alone still has a loss (see below)
    assert value.item() == 0.0
    assert torch.count_nonzero(x.grad) == 0


def test_margin_charges_pairs_of_one_kind_alone() -> None:
    x = torch.tensor([[0.0], [2.0]], requires_grad=True)
    loss = MarginLoss(margin=0.2, beta=1.0)
    assert loss(x, torch.tensor([0, 0])).item() == pytest.approx(1.2)  # 0.2 + 2 - 1
    assert loss(x, torch.tensor([0, 1])).item() == 0.0  # 0.2 - (2 - 1) < 0


@pytest.mark.parametrize("name", NAMES)
def test_extreme_embeddings_keep_finite_gradients(name: str) -> None:
    x, y = batch(n=16, dim=4, classes=4, seed=18, dtype=torch.float32)
    x = x * 1e3  # exp of the raw distances / dot products would overflow
    x.requires_grad_(True)
    value = LOSSES[name][0]()(x, y)
    value.backward()
    assert torch.isfinite(value) and x.grad is not None and torch.isfinite(x.grad).all()


@settings(deadline=None, max_examples=25)
@given(
    name=st.sampled_from(NAMES),
    seed=st.integers(0, 2**16),
    n=st.integers(1, 10),
    classes=st.integers(1, 4),
)
def test_properties(name: str, seed: int, n: int, classes: int) -> None:
    x, y = batch(n=n, dim=3, classes=classes, seed=seed)
    loss = LOSSES[name][0]()
    x.requires_grad_(True)
    value = loss(x, y)
    value.backward()
    assert torch.isfinite(value) and x.grad is not None and torch.isfinite(x.grad).all()
    assert value.item() >= 0
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    torch.testing.assert_close(loss(x[perm], y[perm]), value)


# --- the papers' own forms


def test_lifted_equals_the_papers_unordered_form() -> None:
    x, y = batch(n=12, dim=5, classes=3, seed=21)
    loss = LiftedStructureLoss(margin=1.5)
    assert_same_value_and_grad(lambda e: loss(e, y), lambda e: ref.lifted_paper(e, y, 1.5), x)


def _npair_batch(n_pairs: int, seed: int) -> tuple[Tensor, Tensor, Pairs]:
    """The paper's batch: rows 2i and 2i+1 are a pair of class i; mined pairs as in the paper."""
    x, _ = batch(n=2 * n_pairs, dim=6, seed=seed)
    y = torch.arange(2 * n_pairs) // 2
    anchors, positives = torch.arange(0, 2 * n_pairs, 2), torch.arange(1, 2 * n_pairs, 2)
    i, j = torch.meshgrid(torch.arange(n_pairs), torch.arange(n_pairs), indexing="ij")
    off = i != j
    return x, y, Pairs(anchors, positives, anchors[i[off]], positives[j[off]])


def test_npair_equals_the_papers_batch_form() -> None:
    x, y, mined = _npair_batch(6, seed=22)
    loss = NPairLoss()
    assert_same_value_and_grad(
        lambda e: loss(e, y, indices=mined), lambda e: ref.npair_paper(e[0::2], e[1::2]), x
    )


# --- pytorch-metric-learning configured to the same convention


@pytest.mark.parametrize("metric", ["euclidean", "squared_euclidean", "cosine", "dot"])
def test_lifted_matches_pml(metric: str) -> None:
    x, y = batch(n=32, dim=6, classes=4, seed=23)
    ours = LiftedStructureLoss(margin=1.0, metric=metric)  # type: ignore[arg-type]
    theirs = pml_losses.LiftedStructureLoss(
        neg_margin=1.0, pos_margin=0, distance=PML_DIST[metric](), reducer=MEAN()
    )
    assert_same_value_and_grad(lambda e: ours(e, y), lambda e: theirs(e, y), x)
    mined = _subset(all_pairs(y), 2, 3)
    assert_same_value_and_grad(
        lambda e: ours(e, y, indices=mined), lambda e: theirs(e, y, indices_tuple=tuple(mined)), x
    )


def test_npair_matches_pml_on_the_papers_batch() -> None:
    x, y, mined = _npair_batch(8, seed=24)
    ours = NPairLoss()
    theirs = pml_losses.NPairsLoss(distance=PML_DIST["dot"](), reducer=MEAN())
    assert_same_value_and_grad(
        lambda e: ours(e, y, indices=mined), lambda e: theirs(e, y, indices_tuple=tuple(mined)), x
    )


def test_npair_other_pairs_is_the_papers_batch_form_without_mined_negatives() -> None:
    x, y, mined = _npair_batch(6, seed=27)
    pairs_only = Pairs(mined.a1, mined.p, mined.a2[:0], mined.n[:0])
    loss = NPairLoss(negatives="other_pairs")
    assert_same_value_and_grad(
        lambda e: loss(e, y, indices=pairs_only), lambda e: ref.npair_paper(e[0::2], e[1::2]), x
    )
    theirs = pml_losses.NPairsLoss(distance=PML_DIST["dot"](), reducer=MEAN())
    assert_same_value_and_grad(
        lambda e: loss(e, y, indices=mined), lambda e: theirs(e, y, indices_tuple=tuple(mined)), x
    )


@pytest.mark.parametrize("metric", ["dot", "cosine", "euclidean"])
def test_npair_other_pairs_with_several_pairs_per_label(metric: str) -> None:
    # pairs of one label are neither positive nor negative for each other; mined negatives unused
    x, y = batch(n=12, dim=5, classes=3, seed=28)
    a, p = [0, 5, 1, 2, 3], [5, 8, 4, 3, 6]  # two pairs of label 2, two of label 1
    assert all(y[i] == y[j] for i, j in zip(a, p, strict=True))
    mined = Pairs(torch.tensor(a), torch.tensor(p), torch.tensor([0]), torch.tensor([1]))
    loss = NPairLoss(metric=metric, negatives="other_pairs")  # type: ignore[arg-type]
    assert_same_value_and_grad(
        lambda e: loss(e, y, indices=mined),
        lambda e: ref.npair_other_pairs(e, y, a, p, metric=metric),
        x,
    )
    r, ry = batch(n=9, dim=5, classes=3, seed=29)
    rp = [0, 2, 5, 1, 4]  # the same labels as the anchors', in the reference set
    assert all(y[i] == ry[j] for i, j in zip(a, rp, strict=True))
    mined_ref = Pairs(torch.tensor(a), torch.tensor(rp), mined.a2, mined.n)
    assert_same_value_and_grad(
        lambda e: loss(e, y, indices=mined_ref, ref_embeddings=r, ref_labels=ry),
        lambda e: ref.npair_other_pairs(e, y, a, rp, r=r, ry=ry, metric=metric),
        x,
    )
    per_pair = NPairLoss(negatives="other_pairs", reduction="none")(x, y, indices=mined)
    assert per_pair.shape == (5,)


def test_npair_differs_from_pml_on_a_general_batch() -> None:
    # PML keeps one pair per label; here every positive pair counts, against every negative
    x, y = batch(n=16, dim=6, classes=4, seed=25)
    ours = NPairLoss()(x, y)
    theirs = pml_losses.NPairsLoss(distance=PML_DIST["dot"](), reducer=MEAN())(x, y)
    assert not torch.allclose(ours, theirs)
    torch.testing.assert_close(ours, ref.npair(x, y))


def test_npair_l2_penalty() -> None:
    x, y = batch(n=12, dim=5, classes=3, seed=26)
    loss = NPairLoss(l2_reg=0.25, metric="cosine")
    assert_same_value_and_grad(
        lambda e: loss(e, y), lambda e: ref.npair(e, y, metric="cosine", l2_reg=0.25), x
    )
    single = torch.ones(1, 2)  # no pair at all: the penalty alone
    torch.testing.assert_close(loss(single, torch.zeros(1, dtype=torch.long)), torch.tensor(0.5))


def test_angular_matches_pml_on_unit_embeddings() -> None:
    x, y = batch(n=32, dim=6, classes=4, seed=27)
    ours = AngularLoss(alpha=40.0)
    theirs = pml_losses.AngularLoss(alpha=40)
    # PML normalises anchors and positives but not the negatives: feed it unit rows
    assert_same_value_and_grad(lambda e: ours(e, y), lambda e: theirs(F.normalize(e), y), x)
    mined = all_pairs(y)  # with every label negative PML agrees
    assert_same_value_and_grad(
        lambda e: ours(e, y, indices=_subset(mined, 3, 1)),
        lambda e: theirs(F.normalize(e), y, indices_tuple=tuple(_subset(mined, 3, 1))),
        x,
    )


def test_angular_large_alpha_stays_accurate() -> None:
    x, y = batch(n=12, dim=5, classes=3, seed=28)
    loss = AngularLoss(alpha=75.0)
    assert_same_value_and_grad(lambda e: loss(e, y), lambda e: ref.angular(e, y, 75.0), x)
    value32 = loss(x.float(), y)
    assert torch.isfinite(value32)


def _margin_triplets(y: Tensor) -> Triplets:
    """One triplet per anchor: its pairs are all distinct."""
    same = y[:, None] == y[None, :]
    same.fill_diagonal_(False)
    return Triplets(
        torch.arange(len(y)), same.float().argmax(1), (~(y[:, None] == y)).float().argmax(1)
    )


@pytest.mark.parametrize("num_classes", [None, 4])
def test_margin_matches_pml_when_every_pair_violates(num_classes: int | None) -> None:
    x, y = batch(n=16, dim=6, classes=4, seed=29)
    trip = _margin_triplets(y)
    nu = 0.0 if num_classes else 0.3  # PML halves the per-class regulariser
    ours = MarginLoss(margin=20.0, beta=1.5, nu=nu, num_classes=num_classes)
    theirs = pml_losses.MarginLoss(
        margin=20.0,
        beta=1.5,
        nu=nu,
        learn_beta=True,
        num_classes=num_classes,
        distance=PML_DIST["euclidean"](),
    )
    assert_same_value_and_grad(
        lambda e: ours(e, y, indices=trip), lambda e: theirs(e, y, indices_tuple=tuple(trip)), x
    )
    ours(x, y, indices=trip).backward()
    theirs(x, y, indices_tuple=tuple(trip)).backward()
    torch.testing.assert_close(ours.beta.grad, theirs.beta.grad.to(ours.beta.dtype))


@pytest.mark.parametrize("metric", ["euclidean", "cosine", "squared_euclidean"])
def test_margin_per_class_beta_matches_reference_loop(metric: str) -> None:
    x, y = batch(n=12, dim=5, classes=3, seed=30)
    loss = MarginLoss(margin=0.2, beta=0.5, nu=0.05, num_classes=3, metric=metric).double()  # type: ignore[arg-type]
    with torch.no_grad():
        loss.beta.copy_(torch.tensor([0.4, 0.9, 1.3]))
    beta = loss.beta.detach()
    assert_same_value_and_grad(
        lambda e: loss(e, y), lambda e: ref.margin(e, y, 0.2, beta, 0.05, metric=metric), x
    )
    loss(x, y).backward()
    assert loss.beta.grad is not None and torch.count_nonzero(loss.beta.grad) == 3


def test_margin_fixed_beta_is_a_buffer() -> None:
    loss = MarginLoss(learn_beta=False, num_classes=3)
    assert list(loss.parameters()) == [] and loss.beta.shape == (3,)
    with pytest.raises(ValueError, match=r"labels must be in \[0, num_classes=3\)"):
        loss(torch.randn(4, 2), torch.tensor([0, 1, 2, 3]))


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_multi_similarity_matches_pml(metric: str) -> None:
    x, y = batch(n=32, dim=6, classes=4, seed=31)
    ours = MultiSimilarityLoss(alpha=2.0, beta=50.0, base=0.5, metric=metric)  # type: ignore[arg-type]
    theirs = pml_losses.MultiSimilarityLoss(
        alpha=2, beta=50, base=0.5, distance=PML_DIST[metric](), reducer=MEAN()
    )
    assert_same_value_and_grad(lambda e: ours(e, y), lambda e: theirs(e, y), x)


def test_circle_matches_pml() -> None:
    x, y = batch(n=32, dim=6, classes=4, seed=32)
    ours = CircleLoss(m=0.4, gamma=80.0)
    theirs = pml_losses.CircleLoss(m=0.4, gamma=80)
    assert_same_value_and_grad(lambda e: ours(e, y), lambda e: theirs(e, y), x)
    mined = _subset(all_pairs(y), 2, 5)
    assert_same_value_and_grad(
        lambda e: ours(e, y, indices=mined), lambda e: theirs(e, y, indices_tuple=tuple(mined)), x
    )


# --- bad hyperparameters


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: LiftedStructureLoss(metric="manhattan"), "metric must be one of"),  # type: ignore[arg-type]
        (lambda: LiftedStructureLoss(reduction="avg"), "reduction must be one of"),  # type: ignore[arg-type]
        (lambda: NPairLoss(l2_reg=-1.0), "l2_reg must be >= 0; got -1.0"),
        (lambda: NPairLoss(l2_reg=0.1, reduction="none"), "l2_reg must be 0 with reduction='none'"),
        (
            lambda: NPairLoss(negatives="all"),
            "negatives must be 'mined' or 'other_pairs'; got 'all'",
        ),  # type: ignore[arg-type]
        (lambda: AngularLoss(alpha=90.0), r"alpha must be in \(0, 90\) degrees; got 90.0"),
        (lambda: AngularLoss(alpha=0.0), r"alpha must be in \(0, 90\) degrees; got 0.0"),
        (lambda: MarginLoss(margin=-0.1), "margin must be >= 0; got -0.1"),
        (lambda: MarginLoss(nu=-1.0), "nu must be >= 0; got -1.0"),
        (lambda: MarginLoss(num_classes=0), "num_classes must be a positive int or None; got 0"),
        (lambda: MultiSimilarityLoss(alpha=0.0), "alpha must be > 0; got 0.0"),
        (lambda: MultiSimilarityLoss(beta=-2.0), "beta must be > 0; got -2.0"),
        (lambda: CircleLoss(m=-0.1), "m must be >= 0; got -0.1"),
        (lambda: CircleLoss(gamma=0.0), "gamma must be > 0; got 0.0"),
    ],
)
def test_bad_hyperparameters_raise(make: Callable[[], nn.Module], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        make()
