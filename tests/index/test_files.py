"""The index directory: round trip, atomic save, durable in-place writes, several handles."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from deepmetric.index import ExactIndex, Index
from deepmetric.index.metadata import ItemStore
from deepmetric.index.vectors import VectorStore


def built(factory: str = "Flat", n: int = 200) -> tuple[Index, np.ndarray]:
    x = np.random.default_rng(0).standard_normal((n, 8)).astype(np.float32)
    index = Index(8, factory=factory, fingerprint="f" * 64, model_path="/models/m")
    index.add(x, labels=[f"c{i % 4}" for i in range(n)], attributes=[{"i": i} for i in range(n)])
    return index, x


@pytest.mark.parametrize("factory", ["Flat", "HNSW16", "IVF8,Flat"])
def test_save_and_load_give_the_same_index(tmp_path: Path, factory: str) -> None:
    index, x = built(factory)
    index.remove([3, 4])
    index.calibrate(np.array([0.9, 0.1, 0.8, 0.2]), np.array([1, 0, 1, 0], dtype=bool), far=0.5)
    index.save(tmp_path / "idx")
    loaded = Index.load(tmp_path / "idx")
    assert (len(loaded), loaded.dim, loaded.metric, loaded.factory) == (198, 8, "cosine", factory)
    assert (loaded.fingerprint, loaded.model_path) == ("f" * 64, "/models/m")
    assert (loaded.threshold, loaded.far) == (index.threshold, 0.5)
    for a, b in zip(index.search(x[:20], 5), loaded.search(x[:20], 5), strict=True):
        np.testing.assert_array_equal(a, b)
    assert loaded.items([7]) == index.items([7])
    names = sorted(p.name for p in (tmp_path / "idx").iterdir())
    assert names[0] == "index.json" and "items.sqlite" in names
    assert not any(p.suffix == ".pkl" for p in (tmp_path / "idx").iterdir())


def test_a_failed_save_leaves_the_previous_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    index, _ = built()
    index.save(tmp_path / "idx")
    index.add(np.ones((1, 8)))

    def crash(self: VectorStore, path: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(VectorStore, "write", crash)
    with pytest.raises(OSError, match="disk full"):
        index.save(tmp_path / "idx")
    assert len(Index.load(tmp_path / "idx")) == 200
    assert [p.name for p in tmp_path.iterdir()] == ["idx"]  # no temporary folder left


def test_writes_through_one_handle_reach_another(tmp_path: Path) -> None:
    index, x = built()
    index.save(tmp_path / "idx")
    writer = Index.load(tmp_path / "idx", writable=True)
    reader = Index.load(tmp_path / "idx")
    new = writer.add(x[:2] * -1, labels=["new", "new"])
    _, ids = reader.search(x[:2] * -1, 1)
    assert ids[:, 0].tolist() == new.tolist() and len(reader) == 202
    writer.remove(new)
    assert len(reader.items(new)) == 2 and reader.items(new) == [None, None]
    assert len(Index.load(tmp_path / "idx")) == 200
    vectors = [p.name for p in (tmp_path / "idx").iterdir() if p.name.startswith("vectors")]
    assert len(vectors) == 1  # superseded generations are deleted
    with pytest.raises(PermissionError, match="read-only; load it with writable=True"):
        reader.add(x[:1])


def test_a_crash_before_the_commit_keeps_the_last_committed_state(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    index, x = built()
    index.save(tmp_path / "idx")
    writer = Index.load(tmp_path / "idx", writable=True)
    original = ItemStore.set_meta

    def crash(self: ItemStore, values: dict) -> None:
        raise OSError("killed")

    monkeypatch.setattr(ItemStore, "set_meta", crash)
    with pytest.raises(OSError, match="killed"):
        writer.add(x[:3])  # the new vectors file is written, the commit never happens
    monkeypatch.setattr(ItemStore, "set_meta", original)
    assert len(writer) == 200 and len(Index.load(tmp_path / "idx")) == 200
    exact = ExactIndex(8)
    exact.add(x)
    np.testing.assert_array_equal(writer.search(x[:5], 3)[1], exact.search(x[:5], 3)[1])
    writer.add(x[:1] * 2)  # the next write clears the orphaned file
    assert len([p for p in (tmp_path / "idx").iterdir() if p.name.startswith("vectors")]) == 1


def test_loading_refuses_what_is_not_an_index(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist; build one"):
        Index.load(tmp_path / "nothing")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="is not a deepmetric index"):
        Index.load(tmp_path / "other")
    index, _ = built()
    with pytest.raises(ValueError, match="not a deepmetric index"):
        index.save(tmp_path / "other")  # never overwrites unrelated files
    assert (tmp_path / "other" / "notes.txt").read_text() == "mine"
    index.save(tmp_path / "idx")
    (tmp_path / "idx" / "index.json").write_text('{"format_version": 99}')
    with pytest.raises(ValueError, match="format_version 99"):
        Index.load(tmp_path / "idx")


def test_saving_onto_its_own_directory_is_refused(tmp_path: Path) -> None:
    index, _ = built()
    index.save(tmp_path / "idx")
    with pytest.raises(ValueError, match="own directory; its writes are already saved"):
        Index.load(tmp_path / "idx").save(tmp_path / "idx")


def test_exact_index_round_trips_through_npz(tmp_path: Path) -> None:
    exact = ExactIndex(3, metric="euclidean")
    exact.add(np.eye(3), ids=[4, 5, 6])
    loaded = ExactIndex.load(exact.save(tmp_path / "e.npz"))
    assert loaded.metric == "euclidean" and loaded.ids.tolist() == [4, 5, 6]
    loaded.remove([5])
    assert loaded.search(np.eye(3)[1:2], 3)[1].tolist() == [[4, 6, -1]]


@pytest.mark.parametrize(
    "damage",
    [
        lambda p: (p / "vectors-1.faiss").write_bytes((p / "vectors-1.faiss").read_bytes()[:50]),
        lambda p: (p / "vectors-1.faiss").unlink(),
        lambda p: (p / "items.sqlite").write_bytes(b"garbage" * 100),
    ],
    ids=["vectors-truncated", "vectors-missing", "sqlite-garbage"],
)
def test_a_damaged_index_directory_is_one_readable_error(tmp_path: Path, damage) -> None:  # type: ignore[no-untyped-def]
    index = Index(4)
    index.add(np.random.default_rng(0).random((30, 4)))
    index.save(tmp_path / "idx")
    damage(tmp_path / "idx")
    with pytest.raises(ValueError, match=r"is damaged \(.*\); rebuild it with `deepmetric index"):
        Index.load(tmp_path / "idx")
