"""Search settings tuned at build time to a stated recall, checked on fresh queries."""

from __future__ import annotations

import numpy as np
import pytest

from deepmetric.index import Index


def clustered(n: int, seed: int, dim: int = 16) -> np.ndarray:
    centres = np.random.default_rng(99).standard_normal((40, dim))
    rng = np.random.default_rng(seed)
    x = centres[rng.integers(0, 40, n)] + 0.8 * rng.standard_normal((n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def recall_at_10(index: Index, x: np.ndarray, queries: np.ndarray) -> float:
    exact = np.argsort(-(queries @ x.T), axis=1, kind="stable")[:, :10]
    found = index.search(queries, 10)[1]
    return float((found[:, :, None] == exact[:, None, :]).any(1).mean())


@pytest.mark.parametrize(("factory", "param"), [("IVF64,Flat", "nprobe"), ("HNSW8", "efSearch")])
def test_the_tuned_index_reaches_its_recall_on_fresh_queries(factory: str, param: str) -> None:
    x = clustered(6000, seed=0)
    index = Index(16, factory=factory, recall=0.9)
    index.add(x)
    assert index.search_params.startswith(param)
    assert index.measured_recall is not None and index.measured_recall >= 0.9
    assert recall_at_10(index, x, clustered(300, seed=1)) >= 0.85  # fresh queries, near target


def test_a_stricter_target_probes_more_and_finds_more() -> None:
    x, queries = clustered(6000, seed=0), clustered(300, seed=2)
    loose, strict = (
        Index(16, factory="IVF64,Flat", recall=0.6),
        Index(16, factory="IVF64,Flat", recall=0.99),
    )
    loose.add(x)
    strict.add(x)
    nprobe = [int(i.search_params.split("=")[1]) for i in (loose, strict)]
    assert nprobe[0] < nprobe[1]
    assert recall_at_10(loose, x, queries) < recall_at_10(strict, x, queries)
    assert recall_at_10(strict, x, queries) >= 0.97


def test_settings_and_recall_survive_save_and_load(tmp_path) -> None:  # type: ignore[no-untyped-def]
    index = Index(16, factory="IVF64,Flat", recall=0.9)
    index.add(clustered(3000, seed=0))
    loaded = Index.load(index.save(tmp_path / "idx"))
    assert (loaded.search_params, loaded.recall, loaded.measured_recall) == (
        index.search_params, 0.9, index.measured_recall)  # fmt: skip


def test_explicit_settings_exact_indexes_and_no_target_are_not_tuned() -> None:
    x = clustered(3000, seed=0)
    given = Index(16, factory="IVF64,Flat", search_params="nprobe=5")
    untuned = Index(16, factory="IVF64,Flat", recall=None)
    flat = Index(16)  # auto below 20,000 items: exact
    for index in (given, untuned, flat):
        index.add(x)
    assert (given.search_params, given.measured_recall) == ("nprobe=5", None)
    assert (untuned.search_params, untuned.measured_recall) == ("", None)
    assert (flat.factory, flat.search_params, flat.measured_recall) == ("Flat", "", 1.0)
    with pytest.raises(ValueError, match=r"recall must lie in \(0, 1\]"):
        Index(16, recall=1.5)
