"""Batch-hard, semi-hard, hard-negative and all-triplets miners against loops and PML."""

from __future__ import annotations

import pytest
import torch
from pytorch_metric_learning import miners as pml_miners

from deepmetric.miners import _common as miner_common
from deepmetric.miners.batch_hard import BatchHardMiner
from deepmetric.miners.exhaustive import AllMiner
from deepmetric.miners.triplet_margin import HardNegativeMiner, SemiHardMiner
from deepmetric.tuples import Triplets
from tests.helpers import batch
from tests.miners.util import METRICS, PML_DIST, assert_int64, triples
from tests.reference import miners as ref

# margins that make the windows neither empty nor everything for each metric's scale (dim 8)
MARGIN = {"euclidean": 0.8, "squared_euclidean": 6.0, "cosine": 0.2, "dot": 2.0}


@pytest.mark.parametrize("metric", METRICS)
def test_batch_hard_matches_reference_and_pml(metric: str) -> None:
    x, y = batch(n=24, classes=4, seed=1)
    ours = BatchHardMiner(metric=metric)(x, y)
    assert_int64(ours)
    assert triples(ours) == ref.batch_hard(x, y, metric)
    theirs = pml_miners.BatchHardMiner(distance=PML_DIST[metric]())(x, y)
    assert triples(ours) == triples(theirs)


@pytest.mark.parametrize("metric", METRICS)
def test_semi_hard_matches_reference_and_pml(metric: str) -> None:
    x, y = batch(n=20, classes=4, seed=2)
    margin = MARGIN[metric]
    ours = SemiHardMiner(margin=margin, metric=metric)(x, y)
    assert_int64(ours)
    expected = ref.semi_hard(x, y, margin, metric)
    assert 0 < len(expected) < len(ref.all_triplets(x, y))
    assert triples(ours) == expected
    pml = pml_miners.TripletMarginMiner(
        margin=margin, type_of_triplets="semihard", distance=PML_DIST[metric]()
    )
    assert triples(ours) == triples(pml(x, y))


@pytest.mark.parametrize("metric", METRICS)
def test_hard_negative_matches_reference_and_pml(metric: str) -> None:
    x, y = batch(n=20, classes=4, seed=3)
    ours = HardNegativeMiner(metric=metric)(x, y)
    assert triples(ours) == ref.hard_negative(x, y, 0.0, metric)
    pml = pml_miners.TripletMarginMiner(type_of_triplets="hard", distance=PML_DIST[metric]())
    assert triples(ours) == triples(pml(x, y))
    # with a margin: every margin-violating triplet, PML's type_of_triplets="all"
    margin = MARGIN[metric]
    ours = HardNegativeMiner(margin=margin, metric=metric)(x, y)
    assert triples(ours) == ref.hard_negative(x, y, margin, metric)
    pml = pml_miners.TripletMarginMiner(
        margin=margin, type_of_triplets="all", distance=PML_DIST[metric]()
    )
    assert triples(ours) == triples(pml(x, y))


def test_semi_hard_output_is_grouped_by_pair_in_row_major_order() -> None:
    x, y = batch(n=16, classes=3, seed=4)
    t = SemiHardMiner(margin=1.0)(x, y)
    key = (t.a * 16 + t.p) * 16 + t.n  # (a, p) row-major, then negatives by index
    assert len(t.a) > 0 and bool((key[1:] > key[:-1]).all())


def test_window_is_chunked_without_changing_the_result(monkeypatch: pytest.MonkeyPatch) -> None:
    x, y = batch(n=24, classes=4, seed=6)
    whole = SemiHardMiner(margin=1.0)(x, y)
    monkeypatch.setattr(miner_common, "WINDOW_CHUNK", 30)  # one or two pairs per chunk
    chunked = SemiHardMiner(margin=1.0)(x, y)
    for got, want in zip(chunked, whole, strict=True):
        assert torch.equal(got, want)


def test_all_triplets_matches_reference() -> None:
    x, y = batch(n=10, classes=3, seed=5)
    t = AllMiner(kind="triplets")(x, y)
    assert isinstance(t, Triplets)
    assert triples(t) == ref.all_triplets(x, y)


@pytest.mark.parametrize(
    "make, loop",
    [
        (lambda: BatchHardMiner(), lambda x, y, r, ry: ref.batch_hard(x, y, "euclidean", r, ry)),
        (
            lambda: SemiHardMiner(margin=0.8),
            lambda x, y, r, ry: ref.semi_hard(x, y, 0.8, "euclidean", r, ry),
        ),
        (
            lambda: HardNegativeMiner(margin=0.3),
            lambda x, y, r, ry: ref.hard_negative(x, y, 0.3, "euclidean", r, ry),
        ),
        (lambda: AllMiner(kind="triplets"), ref.all_triplets),
    ],
)
def test_with_reference_set_matches_reference(make, loop) -> None:  # type: ignore[no-untyped-def]
    x, y = batch(n=9, classes=3, seed=6)
    r, ry = batch(n=12, classes=3, seed=7)
    ours = make()(x, y, ref_embeddings=r, ref_labels=ry)
    assert_int64(ours)
    assert triples(ours) == loop(x, y, r, ry)
    assert len(ours.a) > 0


def test_batch_hard_with_reference_set_matches_pml() -> None:
    x, y = batch(n=9, classes=3, seed=8)
    r, ry = batch(n=12, classes=3, seed=9)
    ours = BatchHardMiner()(x, y, ref_embeddings=r, ref_labels=ry)
    theirs = pml_miners.BatchHardMiner(distance=PML_DIST["euclidean"]())(x, y, r, ry)
    assert triples(ours) == triples(theirs)


def test_semi_hard_float32_large_batch_matches_pml() -> None:
    x, y = batch(n=96, dim=16, classes=12, seed=10, dtype=torch.float32, normalize=True)
    ours = SemiHardMiner(margin=0.1)(x, y)
    pml = pml_miners.TripletMarginMiner(
        margin=0.1, type_of_triplets="semihard", distance=PML_DIST["euclidean"]()
    )
    # float32 rounding can move a triplet sitting exactly on the boundary; allow none here
    assert triples(ours) == triples(pml(x, y))


def test_semi_hard_upper_bound_is_inclusive_like_pml() -> None:
    # d(0,1) = 1 and d(0,2) = 1.5 = 1 + margin exactly: kept (FaceNet's strict window would drop it)
    x = torch.tensor([[0.0], [1.0], [1.5]], dtype=torch.float64)
    y = torch.tensor([0, 0, 1])
    expected = [(0, 1, 2)]
    assert triples(SemiHardMiner(margin=0.5)(x, y)) == expected
    pml = pml_miners.TripletMarginMiner(
        margin=0.5, type_of_triplets="semihard", distance=PML_DIST["euclidean"]()
    )
    assert triples(pml(x, y)) == expected
