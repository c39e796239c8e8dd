"""kNN search against a full stable sort, across block sizes, masks and backends."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from deepmetric.evaluation import knn
from deepmetric.search.blocks import sparse_positions
from deepmetric.search.neighbors import exact_knn
from tests.reference.retrieval import naive_ranking

METRICS = ["cosine", "dot", "euclidean", "squared_euclidean"]


def tied(n: int, dim: int, seed: int, dtype: torch.dtype) -> torch.Tensor:
    """Small integer vectors: every product is exact, so many scores tie exactly."""
    return torch.randint(-2, 3, (n, dim), generator=torch.Generator().manual_seed(seed)).to(dtype)


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("block_size", [5, 32, 4096])
def test_self_search_equals_full_sort_with_ties(
    metric: str, dtype: torch.dtype, block_size: int
) -> None:
    x = tied(70, 4, seed=1, dtype=dtype)
    if metric == "cosine":  # normalised integer vectors do not tie exactly: use random ones
        x = torch.randn(70, 4, dtype=dtype, generator=torch.Generator().manual_seed(1))
    found = knn(x, k=12, metric=metric, block_size=block_size)  # type: ignore[arg-type]
    expected = torch.tensor([r[:12] for r in naive_ranking(x, None, metric)])
    assert torch.equal(found.indices, expected)


@pytest.mark.parametrize("shape", [(0,), (8,), (5, 32), (7, 3), (3, 64)])
@pytest.mark.parametrize("density", [0.0, 0.02, 0.3, 1.0])
def test_sparse_positions_equal_nonzero(shape: tuple[int, ...], density: float) -> None:
    mask = torch.rand(shape, generator=torch.Generator().manual_seed(len(shape))) < density
    assert torch.equal(sparse_positions(mask), mask.reshape(-1).nonzero().squeeze(1))
    assert torch.equal(sparse_positions(mask[1:]), mask[1:].reshape(-1).nonzero().squeeze(1))


@pytest.mark.parametrize("metric", METRICS)
def test_reference_search_equals_full_sort_and_scores(metric: str) -> None:
    x, r = tied(40, 3, seed=2, dtype=torch.float64), tied(55, 3, seed=3, dtype=torch.float64)
    if metric == "cosine":
        x, r = x + 0.01 * torch.randn_like(x), r + 0.01 * torch.randn_like(r)
    found = knn(x, r, k=9, metric=metric, block_size=16)  # type: ignore[arg-type]
    ranking = naive_ranking(x, r, metric)
    assert torch.equal(found.indices, torch.tensor([row[:9] for row in ranking]))
    from deepmetric.distances import pairwise

    full = pairwise(x, r, metric)  # type: ignore[arg-type]
    torch.testing.assert_close(found.scores, full.gather(1, found.indices))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_groups_are_never_returned_and_short_rows_are_padded(dtype: torch.dtype) -> None:
    x = torch.randn(30, 4, generator=torch.Generator().manual_seed(4), dtype=dtype)
    groups = torch.arange(30) % 3
    found = knn(x, k=15, metric="euclidean", query_groups=groups, block_size=7)
    expected = naive_ranking(x, None, "euclidean", groups, groups)
    assert torch.equal(found.indices[:, :], torch.tensor([row[:15] for row in expected]))
    # 20 admissible items per query: asking for 25 pads with -1 and +inf
    padded = knn(x, k=25, metric="euclidean", query_groups=groups)
    assert bool((padded.indices[:, 20:] == -1).all())
    assert bool(torch.isinf(padded.scores[:, 20:]).all())
    none = knn(x[:0], x, k=3)
    assert none.indices.shape == none.scores.shape == (0, 3)


def test_explicit_exclusion_matches_self_search() -> None:
    x = torch.randn(40, 5, generator=torch.Generator().manual_seed(5))
    own = exact_knn(x, x, 6, "cosine", exclude=torch.arange(40), block_size=8)
    assert torch.equal(own.indices, knn(x, k=6, block_size=8).indices)


def test_numpy_input_and_block_independence() -> None:
    x = np.random.default_rng(6).normal(size=(90, 8)).astype(np.float32)
    small = knn(x, k=5, block_size=7)
    large = knn(x, k=5, block_size=1000)
    assert torch.equal(small.indices, large.indices)
    torch.testing.assert_close(small.scores, large.scores)


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("self_search", [True, False])
def test_faiss_flat_returns_the_exact_neighbours(metric: str, self_search: bool) -> None:
    g = torch.Generator().manual_seed(7)
    x, r = torch.randn(120, 16, generator=g), torch.randn(150, 16, generator=g)
    ref = None if self_search else r
    exact = knn(x, ref, k=10, metric=metric)  # type: ignore[arg-type]
    flat = knn(x, ref, k=10, metric=metric, backend="faiss")  # type: ignore[arg-type]
    assert torch.equal(flat.indices, exact.indices)
    torch.testing.assert_close(flat.scores, exact.scores, rtol=1e-4, atol=1e-4)
    assert flat.recall is None


def test_faiss_groups_and_approximate_recall() -> None:
    g = torch.Generator().manual_seed(8)
    x = torch.randn(400, 8, generator=g)
    groups = torch.arange(400) % 5
    exact = knn(x, k=10, metric="euclidean", query_groups=groups)
    flat = knn(x, k=10, metric="euclidean", query_groups=groups, backend="faiss")
    assert torch.equal(flat.indices, exact.indices)
    hnsw = knn(x, k=10, metric="euclidean", backend="faiss:HNSW16|efSearch=16")
    truth = knn(x, k=10, metric="euclidean").indices
    measured = (hnsw.indices[:, :, None] == truth[:, None, :]).any(2).float().mean()
    assert hnsw.recall == pytest.approx(float(measured))  # sample covers all 400 queries
    ivf = knn(x, k=10, backend="faiss:IVF8,Flat|nprobe=8")  # nprobe = nlist: exhaustive
    assert ivf.recall == 1.0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"k": 0}, r"k must be in \[1, 9\]"),
        ({"k": 10}, r"k must be in \[1, 9\]"),
        ({"k": 2, "metric": "manhattan"}, "metric"),
        ({"k": 2, "block_size": 0}, "block_size must be >= 1"),
        ({"k": 2, "backend": "annoy"}, "backend must be 'exact', 'faiss' or"),
        ({"k": 2, "backend": "faiss:Nonsense"}, "faiss could not build the index 'Nonsense'"),
        (
            {"k": 2, "query_groups": torch.zeros(3, dtype=torch.long)},
            r"query_groups must have shape \(10,\)",
        ),
        ({"k": 2, "query_groups": torch.zeros(10)}, "query_groups must hold integers"),
        ({"k": 2, "reference_groups": torch.zeros(10, dtype=torch.long)}, "needs query_groups"),
    ],
)
def test_bad_arguments(kwargs: dict, match: str) -> None:
    x = torch.randn(10, 3)
    with pytest.raises(ValueError, match=match):
        knn(x, **kwargs)


def test_bad_embeddings() -> None:
    x = torch.randn(10, 3)
    with pytest.raises(ValueError, match="queries must be finite; 1 rows hold NaN or Inf"):
        knn(torch.cat([x, torch.tensor([[float("nan"), 0, 0]])]), k=2)
    with pytest.raises(ValueError, match="reference must be finite"):
        knn(x, torch.full((4, 3), float("inf")), k=2)
    with pytest.raises(ValueError, match=r"queries must be a 2-D \(n, dim\) array"):
        knn(torch.randn(10), k=2)
    with pytest.raises(ValueError, match="reference must have dim 3 like queries; got 4"):
        knn(x, torch.randn(5, 4), k=2)
    with pytest.raises(ValueError, match=r"k must be in \[1, 5\] for a reference set of 5"):
        knn(x, torch.randn(5, 3), k=6)
