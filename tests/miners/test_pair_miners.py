"""Multi-similarity, pair-margin and all-pairs miners against loops and PML."""

from __future__ import annotations

import pytest
from pytorch_metric_learning import miners as pml_miners
from pytorch_metric_learning.utils import loss_and_miner_utils as lmu

from deepmetric.miners.exhaustive import AllMiner
from deepmetric.miners.multi_similarity import MultiSimilarityMiner
from deepmetric.miners.pair_margin import PairMarginMiner
from deepmetric.tuples import Pairs
from tests.helpers import batch
from tests.miners.util import METRICS, PML_DIST, assert_int64, pair_lists
from tests.reference import miners as ref

EPSILON = {"euclidean": 0.3, "squared_euclidean": 2.0, "cosine": 0.1, "dot": 1.0}
# (pos_margin, neg_margin) inside each metric's range of values at dim 8
MARGINS = {
    "euclidean": (3.5, 4.0),
    "squared_euclidean": (12.0, 16.0),
    "cosine": (0.2, 0.0),
    "dot": (1.0, -1.0),
}


def _nontrivial(lists: tuple[list[tuple[int, ...]], list[tuple[int, ...]]], total: Pairs) -> None:
    """The mined subsets are neither empty nor everything, so the comparison means something."""
    assert 0 < len(lists[0]) < len(total.a1) and 0 < len(lists[1]) < len(total.a2)


@pytest.mark.parametrize("metric", METRICS)
def test_multi_similarity_matches_reference_and_pml(metric: str) -> None:
    x, y = batch(n=24, classes=4, seed=11)
    eps = EPSILON[metric]
    ours = MultiSimilarityMiner(epsilon=eps, metric=metric)(x, y)
    assert_int64(ours)
    expected = ref.multi_similarity(x, y, eps, metric)
    _nontrivial(expected, AllMiner()(x, y))
    assert pair_lists(ours) == expected
    theirs = pml_miners.MultiSimilarityMiner(epsilon=eps, distance=PML_DIST[metric]())(x, y)
    assert pair_lists(ours) == pair_lists(theirs)


def test_multi_similarity_default_is_pml_default() -> None:
    x, y = batch(n=32, classes=4, seed=12)
    assert pair_lists(MultiSimilarityMiner()(x, y)) == pair_lists(
        pml_miners.MultiSimilarityMiner()(x, y)
    )


@pytest.mark.parametrize("metric", METRICS)
def test_pair_margin_matches_reference_and_pml(metric: str) -> None:
    x, y = batch(n=24, classes=4, seed=13)
    pm, nm = MARGINS[metric]
    ours = PairMarginMiner(pos_margin=pm, neg_margin=nm, metric=metric)(x, y)
    assert_int64(ours)
    expected = ref.pair_margin(x, y, pm, nm, metric)
    _nontrivial(expected, AllMiner()(x, y))
    assert pair_lists(ours) == expected
    pml = pml_miners.PairMarginMiner(pos_margin=pm, neg_margin=nm, distance=PML_DIST[metric]())
    assert pair_lists(ours) == pair_lists(pml(x, y))


def test_all_pairs_matches_reference_and_pml() -> None:
    x, y = batch(n=10, classes=3, seed=14)
    ours = AllMiner()(x, y)
    assert isinstance(ours, Pairs)
    assert pair_lists(ours) == ref.all_pairs(x, y)
    assert pair_lists(ours) == pair_lists(lmu.get_all_pairs_indices(y))


@pytest.mark.parametrize("name", ["multi_similarity", "pair_margin", "all"])
def test_with_reference_set_matches_reference_and_pml(name: str) -> None:
    x, y = batch(n=9, classes=3, seed=15)
    r, ry = batch(n=12, classes=3, seed=16)
    if name == "multi_similarity":
        ours = MultiSimilarityMiner()(x, y, ref_embeddings=r, ref_labels=ry)
        expected = ref.multi_similarity(x, y, 0.1, "cosine", r, ry)
        theirs = pml_miners.MultiSimilarityMiner()(x, y, r, ry)
    elif name == "pair_margin":
        ours = PairMarginMiner(3.5, 4.0)(x, y, ref_embeddings=r, ref_labels=ry)
        expected = ref.pair_margin(x, y, 3.5, 4.0, "euclidean", r, ry)
        theirs = pml_miners.PairMarginMiner(3.5, 4.0, distance=PML_DIST["euclidean"]())(x, y, r, ry)
    else:
        ours = AllMiner()(x, y, ref_embeddings=r, ref_labels=ry)
        expected = ref.all_pairs(x, y, r, ry)
        theirs = lmu.get_all_pairs_indices(y, ry)
    assert_int64(ours)
    assert pair_lists(ours) == expected == pair_lists(theirs)
    assert len(ours.a1) > 0 and len(ours.a2) > 0
