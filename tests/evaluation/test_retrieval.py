"""Retrieval metrics against a full-sort oracle, pytorch-metric-learning and scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import average_precision_score, ndcg_score

from deepmetric.distances import pairwise
from deepmetric.evaluation import per_class_metrics, query_metrics, retrieval_metrics
from tests.reference.retrieval import naive_metrics, naive_ranking

KS = (1, 3, 10)


def labelled(n: int, classes: int, dim: int, seed: int, tied: bool = False):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, classes, (n,), generator=g)
    if tied:  # integer vectors: exact products, many exact ties
        return torch.randint(-1, 2, (n, dim), generator=g).double(), y
    return torch.randn(n, dim, generator=g, dtype=torch.float64) + y[:, None] * 0.3, y


def assert_matches_naive(found, valid, rankings, y, ry) -> None:
    expected, expected_valid = naive_metrics(rankings, y, ry, KS)
    assert valid.tolist() == expected_valid
    rows = [i for i, v in enumerate(expected_valid) if v]
    for name, values in expected.items():
        got = found[name][valid].tolist()
        assert got == pytest.approx([values[i] for i in rows], abs=1e-12), name


@pytest.mark.parametrize("metric", ["cosine", "euclidean", "dot", "squared_euclidean"])
@pytest.mark.parametrize("tied", [False, True])
def test_self_retrieval_equals_full_sort(metric: str, tied: bool) -> None:
    # 60 items in 12 classes: singletons (excluded), classes larger than the largest k
    x, y = labelled(60, 12, 3, seed=1, tied=tied)
    y[:2] = torch.tensor([40, 41])  # two singleton classes
    if tied and metric == "cosine":
        x = x + 0.01 * torch.randn_like(x)
    with pytest.warns(UserWarning, match="queries have no relevant item"):
        found, valid = query_metrics(x, y, ks=KS, metric=metric)  # type: ignore[arg-type]
    assert_matches_naive(found, valid, naive_ranking(x, None, metric), y, y)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_reference_set_and_groups_equal_full_sort(dtype: torch.dtype) -> None:
    x, y = labelled(40, 5, 4, seed=2)
    r, ry = labelled(70, 6, 4, seed=3)
    qg, rg = torch.arange(40) % 4, torch.arange(70) % 4
    x, r = x.to(dtype), r.to(dtype)
    found, valid = query_metrics(
        x, y, reference=r, reference_labels=ry, ks=KS, metric="euclidean",
        query_groups=qg, reference_groups=rg,
    )  # fmt: skip
    ranking = naive_ranking(x, r, "euclidean", qg, rg)
    assert_matches_naive(found, valid, ranking, y, ry)


def test_full_map_and_mrr_need_ranks_beyond_k() -> None:
    # random embeddings: relevant items rank far beyond K, so the full-rank path does the work
    g = torch.Generator().manual_seed(4)
    x, y = torch.randn(300, 8, generator=g), torch.randint(0, 30, (300,), generator=g)
    found, valid = query_metrics(x, y, ks=(1,), include=["map", "mrr"])
    score = pairwise(x, x, "cosine").numpy()
    aps, rrs = [], []
    for i in range(300):
        keep = np.arange(300) != i
        rel = (y.numpy() == int(y[i]))[keep]
        aps.append(average_precision_score(rel, score[i, keep]))
        order = np.argsort(-score[i, keep], kind="stable")
        rrs.append(1.0 / (np.flatnonzero(rel[order])[0] + 1))
    np.testing.assert_allclose(found["map"].numpy(), aps, atol=1e-6)
    np.testing.assert_allclose(found["mrr"].numpy(), rrs, atol=1e-12)


@pytest.mark.parametrize("backend", ["exact", "faiss"])
def test_the_default_call_equals_the_top_k_call_and_a_full_sort(backend: str) -> None:
    # the default metrics come from every relevant rank (exact) or from the neighbours with
    # full-rank mAP and MRR (faiss); the top-k metrics come from the k nearest: all equal
    x, y = labelled(120, 9, 6, seed=8)
    x = x.float()
    found, valid = query_metrics(x, y, ks=KS, metric="euclidean", backend=backend)
    top_k, _ = query_metrics(x, y, ks=KS, metric="euclidean", include=["r_precision", "map_at_r"])
    assert_matches_naive(found, valid, naive_ranking(x, None, "euclidean"), y, y)
    for name in ("r_precision", "map_at_r"):
        assert torch.equal(found[name], top_k[name]), name


def test_ndcg_equals_scikit_learn() -> None:
    x, y = labelled(80, 6, 5, seed=5)
    found, _ = query_metrics(x, y, ks=(3, 10), include=["ndcg_at_k"], metric="euclidean")
    dist = pairwise(x, x, "euclidean").numpy()
    for k in (3, 10):
        expected = []
        for i in range(80):
            keep = np.arange(80) != i
            rel = (y.numpy() == int(y[i]))[keep].astype(float)[None]
            expected.append(ndcg_score(rel, -dist[i, keep][None], k=k))
        np.testing.assert_allclose(found[f"ndcg_at_{k}"].numpy(), expected, atol=1e-9)


@pytest.mark.parametrize("same_source", [True, False])
def test_equals_pml_accuracy_calculator(same_source: bool) -> None:
    from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator

    x, y = labelled(400, 20, 16, seed=6)
    x, y = torch.nn.functional.normalize(x.float(), dim=1), y
    y[:3] = torch.tensor([90, 91, 92])  # singletons: PML excludes them as queries
    calc = AccuracyCalculator(
        include=("precision_at_1", "r_precision", "mean_average_precision_at_r"),
        k="max_bin_count", device=torch.device("cpu"),
    )  # fmt: skip
    if same_source:
        pml = calc.get_accuracy(x, y, x, y, ref_includes_query=True)
        with pytest.warns(UserWarning):
            ours = retrieval_metrics(x, y, metric="euclidean")
    else:
        r, ry = labelled(300, 20, 16, seed=7)
        r = torch.nn.functional.normalize(r.float(), dim=1)
        pml = calc.get_accuracy(x, y, r, ry, ref_includes_query=False)
        with pytest.warns(UserWarning):
            ours = retrieval_metrics(x, y, reference=r, reference_labels=ry, metric="euclidean")
    assert ours["precision_at_1"] == pytest.approx(pml["precision_at_1"], abs=1e-6)
    assert ours["r_precision"] == pytest.approx(pml["r_precision"], abs=1e-6)
    assert ours["map_at_r"] == pytest.approx(pml["mean_average_precision_at_r"], abs=1e-6)


@settings(deadline=None, max_examples=30)
@given(seed=st.integers(0, 10_000), n=st.integers(4, 30), classes=st.integers(1, 5))
def test_metrics_lie_in_unit_interval_and_perfect_retrieval_scores_one(
    seed: int, n: int, classes: int
) -> None:
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, classes, (n,), generator=g)
    if int(torch.bincount(y).max()) < 2:
        return
    x = torch.randn(n, 3, generator=g)
    scores = retrieval_metrics(x, y, ks=(1, 2), metric="euclidean")
    metric_values = [v for name, v in scores.items() if not name.startswith("num_")]
    assert all(0.0 <= v <= 1.0 for v in metric_values)
    perfect = torch.nn.functional.one_hot(y, 5).float() * 10 + 0.01 * torch.randn(n, 5, generator=g)
    best = retrieval_metrics(perfect, y, ks=(1, 2), metric="euclidean")
    assert all(
        best[name] == pytest.approx(1.0)
        for name in ("precision_at_1", "map", "mrr", "r_precision", "map_at_r")
    )


def test_per_class_breakdown_averages_to_the_whole() -> None:
    x, y = labelled(90, 3, 4, seed=8)
    whole = retrieval_metrics(x, y, ks=(1,))
    parts = per_class_metrics(x, y, ks=(1,))
    counts = torch.bincount(y)
    mean = sum(parts[c]["map_at_r"] * int(counts[c]) for c in parts) / 90
    assert mean == pytest.approx(whole["map_at_r"])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"ks": (0,)}, r"ks must be non-empty and lie in \[1, 9\]"),
        ({"ks": (10,)}, r"ks must be non-empty and lie in \[1, 9\]"),
        ({"include": ["recall", "map"]}, r"include must name metrics among .*got \['recall'\]"),
        ({"reference": torch.randn(4, 3)}, "reference and reference_labels must be given together"),
        (
            {"reference": torch.randn(4, 2), "reference_labels": torch.zeros(4, dtype=torch.long)},
            "reference must have dim 3 like embeddings; got 2",
        ),
        (
            {"reference": torch.randn(4, 3), "reference_labels": torch.zeros(5, dtype=torch.long)},
            r"reference_labels must have shape \(4,\)",
        ),
    ],
)
def test_bad_arguments(kwargs: dict, match: str) -> None:
    x, y = torch.randn(10, 3), torch.arange(10) % 2
    with pytest.raises(ValueError, match=match):
        retrieval_metrics(x, y, **kwargs)


def test_bad_embeddings_and_labels() -> None:
    x, y = torch.randn(10, 3), torch.arange(10) % 2
    with pytest.raises(ValueError, match="embeddings must be finite; 1 rows hold NaN or Inf"):
        retrieval_metrics(torch.cat([x[:9], torch.full((1, 3), float("nan"))]), y)
    with pytest.raises(ValueError, match=r"labels must have shape \(10,\); got \(9,\)"):
        retrieval_metrics(x, y[:9])
    with pytest.raises(ValueError, match="labels must hold integers"):
        retrieval_metrics(x, y.float())


def test_reference_without_the_query_class_excludes_and_reports() -> None:
    x, y = torch.randn(6, 3), torch.tensor([0, 0, 1, 1, 7, 7])
    r, ry = torch.randn(8, 3), torch.tensor([0, 1] * 4)
    with pytest.warns(UserWarning, match="2 of 6 queries have no relevant item"):
        scores = retrieval_metrics(x, y, reference=r, reference_labels=ry, ks=(1,))
    assert scores["num_excluded"] == 2.0 and scores["num_queries"] == 4.0


def test_grouped_metrics_equal_per_group_loops() -> None:
    from deepmetric.evaluation import grouped_retrieval_metrics

    rng = np.random.default_rng(7)
    labels = np.repeat(np.arange(9), 4)
    groups = np.array(["a", "a", "a", "b", "b", "b", "b", "c", "d"])[labels]  # c, d: one class
    x = torch.from_numpy(rng.normal(size=(len(labels), 5)))
    found = grouped_retrieval_metrics(x, labels, groups, ks=(1, 2), metric="euclidean")
    # oracle: within each group, every query ranks the other items of its group by brute force
    ap, hits = [], []
    for i in range(len(labels)):
        if groups[i] in ("c", "d"):
            continue
        others = [j for j in range(len(labels)) if groups[j] == groups[i] and j != i]
        order = sorted(others, key=lambda j: (float((x[i] - x[j]).norm()), j))
        rel = [labels[j] == labels[i] for j in order]
        r = sum(rel)
        ap.append(sum(sum(rel[: k + 1]) / (k + 1) for k in range(r) if rel[k]) / r)
        hits.append(rel[0])
    assert found["map_at_r"] == pytest.approx(np.mean(ap))
    assert found["recall_at_1"] == pytest.approx(np.mean(hits))
    assert (found["num_queries"], found["num_groups_skipped"]) == (28.0, 2.0)


@pytest.mark.parametrize("setting", ["self", "reference", "groups"])
@pytest.mark.parametrize("metric", ["dot", "euclidean"])
def test_relevant_ranks_count_float32_ties_like_a_full_sort(setting: str, metric: str) -> None:
    # integer vectors: exact float32 products, so many exact ties, broken by the lower index;
    # blocks of a few rows, and queries whose relevant items rank far beyond any k
    from deepmetric.evaluation.ranks import relevant_ranks

    g = torch.Generator().manual_seed(7)
    x = torch.randint(-1, 2, (50, 3), generator=g).float()
    y = torch.randint(0, 6, (50,), generator=g)
    r, ry = (x, y) if setting != "reference" else (x[:35] * -1, y[:35])
    qg = rg = None
    if setting == "groups":
        qg = rg = torch.arange(50) % 3
    is_self = setting != "reference"
    groups = None if qg is None else (qg, rg)
    ranking = naive_ranking(x, None if is_self else r, metric, qg, rg)
    found = relevant_ranks(x, r, y, ry, metric, groups, is_self, block_size=7)  # type: ignore[arg-type]
    checked = 0
    for row in range(50):
        expected = [p + 1 for p, j in enumerate(ranking[row]) if int(ry[j]) == int(y[row])]
        assert [v for v in found[row].tolist() if v > 0] == expected, row
        checked += bool(expected)
    assert checked >= 40


def test_relevant_ranks_re_rank_euclidean_near_ties_from_differences() -> None:
    # far from the origin the block products lose the digits that tell these items apart:
    # (both score -1 here): the relevant item is 5e-4 nearer than the irrelevant one before it
    from deepmetric.evaluation.ranks import relevant_ranks

    base = torch.tensor([1000.0, 0.0])
    x = torch.stack([base, base + torch.tensor([0.0, 1.0]), base + torch.tensor([0.0, -0.9995])])
    x = torch.cat([x, base + torch.tensor([[0.0, 5.0], [0.0, -7.0]])])
    y = torch.tensor([0, 1, 0, 0, 1])
    naive = naive_ranking(x, None, "euclidean")[0]
    expected = [p + 1 for p, j in enumerate(naive) if int(y[j]) == 0]
    ranks = relevant_ranks(x, x, y, y, "euclidean", None, True)
    assert [v for v in ranks[0].tolist() if v > 0] == expected == [1, 3]


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_a_collapsed_embedding_ranks_by_index_in_time(metric: str) -> None:
    # every score ties (a model that collapsed): ranks follow the index, and the ties are
    # sorted once, not compared pair by pair (this took minutes that way)
    from deepmetric.evaluation.ranks import relevant_ranks

    x, y = torch.ones(300, 8), torch.arange(300) % 7
    ranks = relevant_ranks(x, x, y, y, metric, None, True, block_size=128)  # type: ignore[arg-type]
    for i in (0, 150, 299):
        others = [j for j in range(300) if j != i]
        expected = [p + 1 for p, j in enumerate(others) if y[j] == y[i]]
        assert [v for v in ranks[i].tolist() if v > 0] == expected


def test_half_precision_embeddings_rank_like_a_full_sort_of_their_values() -> None:
    x, y = labelled(80, 6, 5, seed=9)
    x = x.to(torch.bfloat16)
    found, valid = query_metrics(x, y, ks=KS, metric="euclidean")
    assert_matches_naive(found, valid, naive_ranking(x.double(), None, "euclidean"), y, y)
