"""Index against ExactIndex (and ExactIndex against a full sort): search, filters, writes."""

from __future__ import annotations

import numpy as np
import pytest

from deepmetric.index import ExactIndex, Index, auto_factory
from deepmetric.search.faiss import FLAT_BELOW

METRICS = ("cosine", "euclidean")


def data(n: int = 300, dim: int = 16, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)


def full_sort(ref: np.ndarray, ids: np.ndarray, q: np.ndarray, k: int, metric: str):
    """The oracle: every score, one stable full sort per query."""
    if metric == "cosine":
        r = ref / np.linalg.norm(ref, axis=1, keepdims=True)
        s = (q / np.linalg.norm(q, axis=1, keepdims=True)) @ r.T
        order = np.argsort(-s, axis=1, kind="stable")[:, :k]
    else:
        s = np.sqrt(((q[:, None, :].astype(np.float64) - ref[None]) ** 2).sum(-1))
        order = np.argsort(s, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(s, order, 1), ids[order]


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    hits = (found[:, :, None] == truth[:, None, :]) & (truth[:, None, :] >= 0)
    return float(hits.any(1).sum() / (truth >= 0).sum())


@pytest.mark.parametrize("metric", METRICS)
def test_exact_index_equals_a_full_sort(metric: str) -> None:
    x, q = data(), data(20, seed=1)
    exact = ExactIndex(16, metric=metric)
    ids = exact.add(x, ids=np.arange(300) * 7 + 3)
    scores, found = exact.search(q, 10)
    want_scores, want_ids = full_sort(x, ids, q, 10, metric)
    np.testing.assert_array_equal(found, want_ids)
    np.testing.assert_allclose(scores, want_scores, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("metric", METRICS)
def test_flat_index_returns_the_exact_neighbours(metric: str) -> None:
    x, q = data(), data(20, seed=1)
    index, exact = Index(16, metric=metric), ExactIndex(16, metric=metric)
    index.add(x)
    exact.add(x)
    assert index.factory == "Flat" and len(index) == 300
    scores, ids = index.search(q, 10)
    want_scores, want_ids = exact.search(q, 10)
    np.testing.assert_array_equal(ids, want_ids)
    np.testing.assert_allclose(scores, want_scores, rtol=1e-4, atol=1e-4)


def test_more_results_than_items_end_in_sentinels() -> None:
    for metric, worst in (("cosine", -np.inf), ("euclidean", np.inf)):
        index = Index(16, metric=metric)  # type: ignore[arg-type]
        index.add(data(3))
        scores, ids = index.search(data(2, seed=1), 5)
        assert (ids[:, 3:] == -1).all() and (scores[:, 3:] == worst).all()
        assert (ids[:, :3] >= 0).all()
    empty_scores, empty_ids = Index(4).search(np.zeros((1, 4)), 2)
    assert empty_ids.tolist() == [[-1, -1]] and np.isneginf(empty_scores).all()


def test_auto_factory_follows_the_size() -> None:
    assert auto_factory(FLAT_BELOW - 1, 128) == "Flat"
    assert auto_factory(FLAT_BELOW, 128).startswith("IVF") and "Flat" in auto_factory(50_000, 8)
    assert auto_factory(3_000_000, 96).endswith(",PQ48x4fs")
    assert auto_factory(3_000_000, 6).endswith(",PQ2x4fs")


@pytest.mark.parametrize("factory", ["Flat", "HNSW16", "IVF16,Flat"])
@pytest.mark.parametrize("metric", METRICS)
def test_updates_and_removals_match_an_index_built_from_the_final_items(
    factory: str, metric: str
) -> None:
    x, q = data(600), data(30, seed=2)
    index = Index(16, metric=metric, factory=factory)  # type: ignore[arg-type]
    index.add(x)
    removed = np.arange(0, 600, 9)
    index.remove(removed)
    changed = np.arange(5, 600, 13)
    changed = changed[~np.isin(changed, removed)]
    new_vectors = data(len(changed), seed=3)
    index.update(changed, new_vectors)
    final = x.copy()
    final[changed] = new_vectors
    keep = np.setdiff1d(np.arange(600), removed)
    exact = ExactIndex(16, metric=metric)  # type: ignore[arg-type]
    exact.add(final[keep], ids=keep)
    assert len(index) == len(keep)
    scores, ids = index.search(q, 10)
    want_scores, want_ids = exact.search(q, 10)
    assert not np.isin(ids, removed).any()
    if factory == "Flat":
        np.testing.assert_array_equal(ids, want_ids)
        np.testing.assert_allclose(scores, want_scores, rtol=1e-4, atol=1e-4)
    else:
        assert recall(ids, want_ids) >= 0.9
    _, top = index.search(new_vectors[:5], 1)  # an updated item is found at its new vector
    assert top[:, 0].tolist() == changed[:5].tolist()


def test_hnsw_keeps_tombstones_until_a_quarter_then_rebuilds() -> None:
    x = data(400)
    index = Index(16, factory="HNSW16")
    index.add(x)
    index.remove(np.arange(40))
    assert index.tombstones == 40 and len(index) == 360
    _, ids = index.search(x[:40], 5)
    assert not np.isin(ids, np.arange(40)).any() and (ids >= 0).all()
    index.remove(np.arange(40, 120))  # 120 of 400 dead: past a quarter
    assert index.tombstones == 0 and len(index) == 280
    _, ids = index.search(x[200:210], 1)
    assert ids[:, 0].tolist() == list(range(200, 210))


@pytest.mark.parametrize("factory", ["Flat", "HNSW16"])
def test_filters_equal_exact_search_over_the_matching_items(factory: str) -> None:
    x, q = data(500), data(10, seed=4)
    labels = np.array(["a", "b", "c", "d", "e"])[np.arange(500) % 5]
    colour = np.where(np.arange(500) % 3 == 0, "red", "blue")
    attributes = [{"colour": c, "n": int(i % 2)} for i, c in enumerate(colour)]
    index = Index(16, factory=factory)
    index.add(x, labels=labels.tolist(), attributes=attributes)
    chosen = np.flatnonzero((labels == "c") & (colour == "red") & (np.arange(500) % 2 == 1))
    exact = ExactIndex(16)
    exact.add(x[chosen], ids=chosen)
    _, ids = index.search(q, 12, label="c", attributes={"colour": "red", "n": 1})
    _, want = exact.search(q, 12)  # 16 items match, far down the unfiltered ranking
    if factory == "Flat":
        np.testing.assert_array_equal(ids, want)
    else:
        assert recall(ids, want) >= 0.9 and np.isin(ids[ids >= 0], chosen).all()
    _, few = index.search(q, 40, label="c", attributes={"colour": "red", "n": 1})
    assert np.isin(few[few >= 0], chosen).all() and (few[:, len(chosen) :] == -1).all()
    if factory == "Flat":  # exhausted: every match, then sentinels
        assert ((few >= 0).sum(1) == len(chosen)).all()
    else:  # a graph walk reaches most of them, not necessarily all
        assert (few >= 0).sum() >= 0.8 * len(chosen) * len(q)
    _, none = index.search(q, 3, label="zzz")
    assert (none == -1).all()


def test_items_carry_their_metadata() -> None:
    index = Index(2)
    index.add(
        np.eye(2),
        ids=[5, 9],
        labels=["cat", 3],
        sources=["/a.png", None],
        attributes=[{"x": [1, 2]}, None],
    )
    first, second, missing = index.items([5, 9, 7])
    assert first is not None and second is not None and missing is None
    assert first.to_dict() == {
        "id": 5,
        "label": "cat",
        "source": "/a.png",
        "attributes": {"x": [1, 2]},
    }
    assert (second.label, second.source, second.attributes) == ("3", None, {})


def test_metadata_may_come_as_numpy_arrays() -> None:
    vectors = np.random.default_rng(0).normal(size=(20, 4)).astype(np.float32)
    index = Index(4, metric="euclidean")
    index.add(vectors, labels=np.arange(20) % 2, sources=np.array([f"{i}.png" for i in range(20)]))
    _, found = index.search(vectors[:1], 3, label="1")
    assert all(int(i) % 2 == 1 for i in found[0])


def test_a_failed_add_leaves_no_phantom_vector_in_memory() -> None:
    index = Index(2, metric="euclidean")
    index.add(np.eye(2)[:1], labels=["a"])
    with pytest.raises(ValueError, match=r"labels\[0\] is not valid UTF-8 text"):
        index.add(np.array([[0.0, 1.0]]), labels=["photo-\udcff.png"])  # a non-UTF-8 file name
    assert len(index) == 1
    new = index.add(np.array([[5.0, 5.0]]), labels=["b"])
    scores, ids = index.search(np.array([[0.0, 1.0]]), k=3)
    assert ids[0].tolist() == [0, int(new[0]), -1]  # no phantom at distance 0


def test_a_write_that_fails_after_the_vectors_undoes_them_in_memory(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    index = Index(2, metric="euclidean")
    index.add(np.eye(2)[:1], labels=["a"])

    def fail(*args: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(index._store, "insert", fail)
    with pytest.raises(RuntimeError):
        index.add(np.array([[0.0, 1.0]]), labels=["b"])
    monkeypatch.undo()
    assert len(index) == 1 and index.search(np.array([[0.0, 1.0]]), k=2)[1][0].tolist() == [0, -1]


@pytest.mark.parametrize("factory", ["Flat", "HNSW32", "IVF16,Flat"])
def test_vectors_are_the_stored_vectors_of_ids(factory: str) -> None:
    x = np.random.default_rng(0).normal(size=(2000, 8)).astype(np.float32)
    index = Index(8, metric="euclidean", factory=factory)
    ids = index.add(x)
    np.testing.assert_array_equal(index.vectors(ids[[7, 3, 1999]]), x[[7, 3, 1999]])
    unit = Index(8, metric="cosine", factory=factory)
    unit_ids = unit.add(x)
    found = unit.vectors(unit_ids[:3])
    np.testing.assert_allclose(
        found, x[:3] / np.linalg.norm(x[:3], axis=1, keepdims=True), rtol=1e-6
    )
    with pytest.raises(KeyError, match="99999"):
        index.vectors([99999])
