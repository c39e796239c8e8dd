"""``Index``: vectors in faiss, item metadata in SQLite, saved as one directory.

Verbs follow faiss: :meth:`Index.add`, :meth:`Index.search`, :meth:`Index.remove`,
``len(index)``, :meth:`Index.save` / :meth:`Index.load`; plus :meth:`Index.update`,
:meth:`Index.items` and :meth:`Index.calibrate` (a match threshold at a target false accept
rate, so that a search can answer "no match").
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np

from .._atomic import replace_file_atomically
from ..roc import threshold_at_far
from .metadata import Item, ItemStore, Scalar, check_filter
from .storage import (
    FORMAT_VERSION,
    ITEMS_FILE,
    check_index_dir,
    readable_damage,
    remove_stale_vectors,
    save_directory,
    vectors_name,
    write_lock,
)
from .validation import ModelMismatchError, as_matrix, item_ids, metadata_rows
from .vectors import FloatMatrix, IdArray, IndexMetric, VectorStore, prepare

_SETTINGS = ("dim", "metric", "factory", "search_params", "recall", "measured_recall",
             "fingerprint", "model_path", "roots")  # fmt: skip
_TUNED = ("factory", "search_params", "recall", "measured_recall")  # kept by the VectorStore


def _stored(name: str, doc: str) -> Any:
    """A read-only property that reads the Index's VectorStore attribute ``name``."""
    return property(lambda self: getattr(self._vectors, name), doc=doc)


class Index:
    """A searchable, persistent set of item vectors with metadata (id, label, source, JSON).

    Vectors live in faiss (``factory="auto"`` picks by size, :func:`auto_factory`), metadata in
    SQLite; ``cosine`` ranks by cosine similarity, ``euclidean`` by L2 distance. Items can be
    added, updated and removed at any time (HNSW keeps tombstones, :mod:`.vectors`). With a
    model's ``fingerprint``, add, update and search refuse vectors from another model.

    Args:
        dim: vector width.
        metric: ``"cosine"`` or ``"euclidean"``.
        factory: faiss factory string, or ``"auto"``.
        search_params: faiss search settings, e.g. ``"nprobe=64"`` or ``"efSearch=256"``;
            ``""`` tunes them at the first add to reach ``recall``.
        recall: the recall@10 the tuned settings must reach, measured at the first add on a
            sample of the items as queries (``measured_recall``); None for faiss's defaults.
        fingerprint: the fingerprint of the model that makes the vectors, or None.
        model_path: where that model directory lives (used by the CLI and the server).
        roots: the folders whose files the server may open (thumbnails, searching from an
            item); ``deepmetric index build`` records the folder it indexed. An item's
            ``source`` elsewhere is only a label to the server.

    Example:
        >>> index = Index(2, metric="euclidean")
        >>> index.add(np.array([[0.0, 0.0], [3.0, 4.0]]), labels=["a", "b"]).tolist()
        [0, 1]
        >>> scores, ids = index.search(np.array([[3.0, 3.0]]), k=3)
        >>> ids.tolist(), scores.astype(float).round(3).tolist()
        ([[1, 0, -1]], [[1.0, 4.243, inf]])
    """

    def __init__(
        self,
        dim: int,
        *,
        metric: IndexMetric = "cosine",
        factory: str = "auto",
        search_params: str = "",
        recall: float | None = 0.95,
        fingerprint: str | None = None,
        model_path: str | None = None,
        roots: Sequence[str] = (),
    ) -> None:
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
            raise ValueError(f"dim must be an integer >= 1; got {dim!r}")
        if metric not in ("cosine", "euclidean"):
            raise ValueError(f"metric must be 'cosine' or 'euclidean'; got {metric!r}")
        if not isinstance(factory, str) or not factory.strip():
            raise ValueError(f"factory must be a faiss factory string or 'auto'; got {factory!r}")
        self._vectors = VectorStore(dim, metric, factory, search_params, recall)
        self._store = ItemStore(":memory:")
        self.fingerprint, self.model_path = fingerprint, model_path
        self.roots = [str(Path(root).resolve()) for root in roots]
        self.threshold: float | None = None
        self.far: float | None = None
        self.path: Path | None = None
        self.writable, self._generation, self._lock = True, 0, threading.RLock()
        with self._store.transaction():
            self._store.set_meta(self._settings())

    # settings kept by the VectorStore, read through
    dim = _stored("dim", "Vector width.")
    metric = _stored("metric", '``"cosine"`` (scores are similarities) or ``"euclidean"``.')
    factory = _stored("factory", 'The faiss factory string (``"auto"`` until the first add).')
    search_params = _stored("search_params", 'faiss search settings (``""``: exact or untuned).')
    recall = _stored("recall", "The recall@10 target of the tuned search settings, or None.")
    measured_recall = _stored("measured_recall", "The recall@10 tuning reached (None: untuned).")

    @property
    def tombstones(self) -> int:
        """Removed vectors still held by a graph index (0 for flat and IVF)."""
        return self._vectors.stored - self._vectors.live

    def __len__(self) -> int:
        return self._vectors.live

    def __repr__(self) -> str:
        where = "in memory" if self.path is None else str(self.path)
        return f"Index({len(self)} items, dim={self.dim}, {self.metric}, {self.factory}, {where})"

    def add(
        self,
        vectors: Any,
        *,
        ids: Any = None,
        labels: Sequence[str | int | None] | None = None,
        sources: Sequence[str | None] | None = None,
        attributes: Sequence[Mapping[str, Any] | None] | None = None,
        fingerprint: str | None = None,
    ) -> IdArray:
        """Add new items; returns their ids ``(n,)`` int64.

        Args:
            vectors: ``(n, dim)`` array or tensor, finite.
            ids: ``(n,)`` distinct non-negative new ids; default: after the largest id so far.
            labels, sources, attributes: per-item metadata (``n`` each) or None.
            fingerprint: the fingerprint of the model that made ``vectors``.

        Raises:
            ValueError: a shape, dim or value problem, or an id already in the index (use
                :meth:`update`).
            ModelMismatchError: ``fingerprint`` differs from the index's.
        """
        x = as_matrix(vectors, self.dim, "vectors")
        rows = metadata_rows(len(x), labels, sources, attributes)
        with self._writing():
            self._check_model(fingerprint, adopt=True)
            start = self._store.max_id() + 1
            new = np.arange(start, start + len(x)) if ids is None else item_ids(ids, len(x))
            taken = sorted(self._store.slots_of(new.tolist()))
            if taken:
                raise ValueError(f"ids already in the index: {taken[:10]}; use Index.update")
            slots = self._vectors.add(prepare(x, self.metric), new)
            self._store.insert(new.tolist(), slots.tolist(), *rows)
        return new

    def update(
        self,
        ids: Any,
        vectors: Any,
        *,
        labels: Sequence[str | int | None] | None = None,
        sources: Sequence[str | None] | None = None,
        attributes: Sequence[Mapping[str, Any] | None] | None = None,
        fingerprint: str | None = None,
    ) -> None:
        """Replace existing items' vectors and metadata; KeyError for unknown ids."""
        x = as_matrix(vectors, self.dim, "vectors")
        targets = item_ids(ids, len(x))
        rows = metadata_rows(len(x), labels, sources, attributes)
        with self._writing():
            self._check_model(fingerprint, adopt=False)
            old = self._store.existing_slots(targets)
            self._vectors.remove(old)
            slots = self._vectors.add(prepare(x, self.metric), targets)
            self._store.insert(targets.tolist(), slots.tolist(), *rows)

    def remove(self, ids: Any) -> None:
        """Remove items by id (``(n,)`` ints); KeyError (nothing removed) for an unknown id."""
        targets = item_ids(ids, None)
        with self._writing():
            slots = self._store.existing_slots(targets)
            self._vectors.remove(slots)
            self._store.delete(targets.tolist())

    def _check_model(self, fingerprint: str | None, adopt: bool = False) -> None:
        if fingerprint is None or fingerprint == self.fingerprint:
            return
        if self.fingerprint is None and adopt and len(self) == 0:
            self.fingerprint = fingerprint
            return
        raise ModelMismatchError(
            f"the vectors come from model {fingerprint[:12]}, but this index holds vectors of "
            f"model {str(self.fingerprint)[:12]} (model_path {self.model_path!r}); embed with "
            "that model, or build a new index for this one"
        )

    @contextmanager
    def _writing(self) -> Iterator[None]:
        """Serialise a write; for a directory-backed index, lock, refresh, and persist it."""
        with self._lock:
            if not self.writable:
                raise PermissionError(
                    f"the index at {self.path} was loaded read-only; load it with writable=True"
                )
            locked = nullcontext() if self.path is None else write_lock(self.path)
            with locked:
                self.refresh()
                start, vectors = len(self._vectors.slot_ids), self._vectors
                try:
                    with self._store.transaction():
                        yield
                        self._vectors.compact()
                        self._persist()
                except BaseException:  # on disk: reload the last commit; in memory: undo adds
                    self._reload() if self.path else vectors.remove(vectors.since(start))
                    raise
            if self.path is not None:
                remove_stale_vectors(self.path, vectors_name(self._generation))

    def _persist(self) -> None:
        """Inside the write transaction: store the vectors under the next generation, then
        the settings that name them (committed together with the items)."""
        self._generation += 1
        if self.path is not None and self._vectors.index is not None:
            name = vectors_name(self._generation)
            replace_file_atomically(self.path / name, lambda tmp: self._vectors.write(str(tmp)))
        self._store.set_meta(self._settings())

    def _settings(self) -> dict[str, Any]:
        built = self._vectors.index is not None
        return {
            **{key: getattr(self, key) for key in _SETTINGS},
            "threshold": self.threshold,
            "far": self.far,
            "format_version": FORMAT_VERSION,
            "generation": self._generation,
            "next_slot": len(self._vectors.slot_ids),
            "vectors_file": vectors_name(self._generation) if built else None,
        }

    def search(
        self,
        queries: Any,
        k: int,
        *,
        label: str | None = None,
        attributes: Mapping[str, Scalar] | None = None,
        fingerprint: str | None = None,
    ) -> tuple[FloatMatrix, IdArray]:
        """The ``k`` nearest items of every query, best first, optionally filtered by metadata.

        A filter keeps items whose ``label`` equals ``label`` and whose attributes equal every
        value in ``attributes``; search over-fetches, filters, and widens the fetch (x4) until
        ``k`` items pass or the index has none left to give. A flat index reaches every item;
        IVF only those in its probed lists and HNSW those its graph walk visits, so there a
        very selective filter can return fewer than ``k`` although more items match.

        Args:
            queries: ``(n, dim)`` array or tensor.
            k: results per query, >= 1 (may exceed the number of items).

        Returns:
            ``(scores, ids)``, both ``(n, k)``: ``float32`` cosine similarities (descending) or
            euclidean distances (ascending), and ``int64`` item ids. Sentinels where fewer than
            ``k`` items qualify: id ``-1`` with score ``-inf`` (cosine) or ``inf`` (euclidean).
        """
        if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
            raise ValueError(f"k must be an integer >= 1; got {k!r}")
        check_filter(label, attributes)
        q = as_matrix(queries, self.dim, "queries", index_dim=True)
        with self._lock:
            self.refresh()
            self._check_model(fingerprint)
            keep = None
            if label is not None or attributes:

                def keep(candidates: IdArray) -> np.ndarray:
                    return self._store.matching(candidates, label, attributes)

            return self._vectors.search(prepare(q, self.metric), int(k), keep)

    def vectors(self, ids: Any) -> FloatMatrix:
        """The stored ``(n, dim)`` vectors of ``ids`` (unit rows for cosine; KeyError if absent)."""
        with self._lock:
            self.refresh()
            slots = self._store.existing_slots(np.asarray(ids, dtype=np.int64).reshape(-1))
            return self._vectors.reconstruct(slots)

    def items(self, ids: Any) -> list[Item | None]:
        """The metadata of ``ids`` (``(n,)`` ints), in order; None for an id not present."""
        wanted = np.asarray(ids, dtype=np.int64).reshape(-1)
        with self._lock:
            self.refresh()
            return self._store.items(wanted.tolist())

    def calibrate(self, scores: Any, is_same: Any, *, far: float = 1e-3) -> float:
        """Set and return the match threshold with false accept rate ``far`` on labelled pairs.

        ``scores: (pairs,)`` in this index's units (cosine similarity or euclidean distance)
        and ``is_same: (pairs,)`` booleans; uses :func:`deepmetric.evaluation.threshold_at_far`
        (needs at least ``1 / far`` different pairs). Saved with the index.
        """
        cosine = self.metric == "cosine"
        threshold = threshold_at_far(scores, is_same, far, higher_is_similar=cosine)
        with self._writing():
            self.threshold, self.far = threshold, float(far)
        return threshold

    def is_match(self, scores: Any) -> np.ndarray:
        """Boolean array like ``scores``: at or past the calibrated threshold (sentinels never).

        Raises:
            ValueError: the index has no threshold (call :meth:`calibrate`).
        """
        if self.threshold is None:
            raise ValueError("the index has no match threshold; call Index.calibrate first")
        s = np.asarray(scores, dtype=np.float64)
        return np.isfinite(s) & (
            s >= self.threshold if self.metric == "cosine" else s <= self.threshold
        )

    def save(self, path: str | PathLike[str]) -> Path:
        """Write the index as a directory at ``path``, atomically (temporary folder + rename).

        An index loaded from a directory already persists every write there; saving it onto
        its own directory is refused.
        """
        if self.path is not None and Path(path).resolve() == self.path.resolve():
            raise ValueError(f"{path} is this index's own directory; its writes are already saved")
        with self._lock:
            built = self._vectors.index is not None
            return save_directory(
                path,
                self._store.db,
                self._vectors.write,
                vectors_name(self._generation) if built else None,
            )

    @classmethod
    def load(cls, path: str | PathLike[str], *, writable: bool = False) -> Index:
        """Open the index directory at ``path``; writes persist there when ``writable``.

        Several processes may open one directory: readers pick up committed writes at their
        next search (:meth:`refresh`), and writers are serialised by a file lock.
        """
        folder = check_index_dir(path)
        with readable_damage(folder):
            store = ItemStore(folder / ITEMS_FILE, read_only=not writable)
            meta = store.get_meta()
            index = cls(meta["dim"], metric=meta["metric"], factory=meta["factory"])
            index._store.close()
            index._store, index.path, index.writable = store, folder, writable
            index._generation = -1
            index.refresh()
        return index

    def refresh(self) -> bool:
        """Reload from the directory if another writer committed since; returns whether it did."""
        if self.path is None:
            return False
        generation = self._store.db.execute(
            "SELECT value FROM meta WHERE key = 'generation'"
        ).fetchone()
        if generation is not None and int(generation[0]) == self._generation:
            return False
        self._reload()
        return True

    def _reload(self) -> None:
        """Read settings, slot map and vectors from one consistent snapshot (retrying when a
        writer deletes the vectors file between the snapshot and the read)."""
        if self.path is None:
            return
        for attempt in range(5):
            meta, slot_ids = self._store.snapshot()
            self.fingerprint, self.model_path = meta["fingerprint"], meta["model_path"]
            self.roots = list(meta.get("roots") or [])  # none recorded: no file is served
            self.threshold, self.far = meta["threshold"], meta["far"]
            for key in _TUNED:  # files from before recall tuning have no recall keys
                setattr(self._vectors, key, meta.get(key))
            name = meta["vectors_file"]
            try:
                self._vectors.read(None if name is None else str(self.path / name), slot_ids)
                break
            except RuntimeError:
                if attempt == 4:
                    raise
        self._generation = int(meta["generation"])

    def close(self) -> None:
        """Close the SQLite connection."""
        self._store.close()
