"""The vector half of an :class:`~deepmetric.index.Index`: a faiss index keyed by int64 slots.

Every stored vector lives under a *slot*, a number that is never reused; the index maps live
slots to item ids (``slot_ids[slot] = item id``, ``-1`` for a dead slot). Updating an item gives
it a new slot, so an item id never points at two vectors. Flat, PQ and HNSW indexes are wrapped
in faiss's ``IndexIDMap2``; IVF indexes keep ids natively (faiss's ``IDMap`` assumes a removal
compacts the inner index, which IVF does not do).

Removal: flat and IVF indexes delete the vectors (``remove_ids``). HNSW graphs cannot delete, so
a removed or replaced slot stays in the graph as a *tombstone*: search over-fetches and drops it,
and :meth:`VectorStore.compact` rebuilds the graph from the live vectors once tombstones pass
:data:`TOMBSTONE_SHARE` of the graph (the :class:`Index` calls it after writes).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import numpy as np

from ..search.faiss import auto_factory, faiss_module, set_search_params, tune_search

IndexMetric = Literal["cosine", "euclidean"]
FloatMatrix = np.ndarray[Any, np.dtype[np.float32]]
IdArray = np.ndarray[Any, np.dtype[np.int64]]

TOMBSTONE_SHARE = 0.25
GROWTH = 4
TUNING_K = 10  # the k of the recall that search settings are tuned for


def prepare(vectors: np.ndarray, metric: IndexMetric) -> FloatMatrix:
    """Contiguous float32 rows, L2-normalised for ``cosine`` (zero rows stay zero)."""
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    if metric == "cosine":
        norms = np.sqrt((x * x).sum(axis=1, keepdims=True))
        x = x / np.maximum(norms, 1e-12)
    return np.ascontiguousarray(x, dtype=np.float32)


class VectorStore:
    """A faiss index over slots plus the slot -> item id map; no metadata, no files.

    Args:
        dim: vector width.
        metric: ``cosine`` (inner product of normalised rows) or ``euclidean``.
        factory: a faiss factory string (``"Flat"``, ``"IVF1024,Flat"``, ``"IVF1024,PQ32"``,
            ``"HNSW32"``), or ``"auto"``: chosen by :func:`auto_factory` at the first add.
        search_params: faiss ``ParameterSpace`` settings such as ``"nprobe=64"``; ``""`` with a
            ``recall`` target: tuned at the first add; ``""`` without one: IVF probes 32 lists
            and HNSW searches with ``efSearch=128``.
        recall: the recall@10 that the tuned settings must reach, measured at the first add
            (:func:`~deepmetric.search.faiss.tune_search`); kept with ``measured_recall``.
    """

    def __init__(
        self, dim: int, metric: IndexMetric, factory: str, search_params: str,
        recall: float | None = None,
    ) -> None:  # fmt: skip
        self.dim, self.metric = dim, metric
        self.factory, self.search_params = factory, search_params
        if recall is not None and not 0 < recall <= 1:
            raise ValueError(f"recall must lie in (0, 1] or be None; got {recall!r}")
        self.recall: float | None = recall
        self.measured_recall: float | None = None
        self.index: Any = None
        self.slot_ids: IdArray = np.full(0, -1, dtype=np.int64)
        self._live: int | None = 0

    # -- state ----------------------------------------------------------------------------------
    @property
    def stored(self) -> int:
        """Vectors held by faiss, tombstones included."""
        return 0 if self.index is None else int(self.index.ntotal)

    @property
    def live(self) -> int:
        """Slots that map to an item (counted once per change, not per search)."""
        if self._live is None:
            self._live = int((self.slot_ids >= 0).sum())
        return self._live

    @property
    def can_remove(self) -> bool:
        """Whether faiss can delete vectors (everything but graph indexes such as HNSW)."""
        kind = type(faiss_module().downcast_index(self._inner())).__name__
        return "HNSW" not in kind and "NSG" not in kind

    def _inner(self) -> Any:
        index = self.index
        return index.index if hasattr(index, "id_map") else index

    def _build(self, sample: FloatMatrix) -> None:
        faiss = faiss_module()
        if self.factory == "auto":
            self.factory = auto_factory(len(sample), self.dim)
        kind = faiss.METRIC_INNER_PRODUCT if self.metric == "cosine" else faiss.METRIC_L2
        try:
            index = faiss.index_factory(self.dim, self.factory, kind)
        except RuntimeError as err:
            raise ValueError(f"faiss cannot build the index {self.factory!r}: {err}") from None
        if faiss.try_extract_index_ivf(index) is None:
            index = faiss.IndexIDMap2(index)
        if not index.is_trained:
            self._train(index, sample)
        self.index = index
        self._apply_params()

    def _train(self, index: Any, sample: FloatMatrix) -> None:
        ivf = faiss_module().try_extract_index_ivf(index)
        needed = ivf.nlist if ivf is not None else 256
        if len(sample) < needed:
            raise ValueError(
                f"the index {self.factory!r} must be trained on at least {needed} vectors; got "
                f"{len(sample)}: add more items in the first call, or choose factory='Flat'"
            )
        picked = np.random.default_rng(0).permutation(len(sample))[: max(64 * needed, 10_000)]
        index.train(sample[np.sort(picked)])

    def _apply_params(self) -> None:
        set_search_params(self.index, self.search_params, factory=self.factory)

    # -- writes ---------------------------------------------------------------------------------
    def add(self, vectors: FloatMatrix, ids: IdArray) -> IdArray:
        """Store ``vectors: (n, dim)`` (already prepared) for ``ids: (n,)``; returns their slots."""
        first = self.index is None
        if first:
            self._build(vectors)
        slots = np.arange(len(self.slot_ids), len(self.slot_ids) + len(ids), dtype=np.int64)
        self.index.add_with_ids(vectors, slots)
        if first and self.recall is not None and not self.search_params:
            tuned = tune_search(self.index, vectors, TUNING_K, self.recall)
            self.search_params, self.measured_recall = tuned
            self._apply_params()
        self.slot_ids = np.concatenate([self.slot_ids, ids.astype(np.int64)])
        self._live = None
        return slots

    def reconstruct(self, slots: IdArray) -> FloatMatrix:
        """The stored vectors of ``slots`` (``(n, dim)``, as faiss holds them)."""
        ivf = faiss_module().try_extract_index_ivf(self.index)
        if ivf is not None and ivf.direct_map.type == 0:  # no map from ids to list entries yet
            ivf.set_direct_map_type(faiss_module().DirectMap.Hashtable)
        found = [self.index.reconstruct(int(slot)) for slot in slots]
        return np.asarray(found, dtype=np.float32).reshape(len(found), self.dim)

    def since(self, start: int) -> IdArray:
        """The live slots added from slot ``start`` on."""
        slots = np.arange(start, len(self.slot_ids), dtype=np.int64)
        return slots[self.slot_ids[slots] >= 0]

    def remove(self, slots: IdArray) -> None:
        """Forget ``slots``: deleted from faiss where it can, tombstoned otherwise."""
        if len(slots) == 0:
            return
        self.slot_ids[slots] = -1
        self._live = None
        if self.can_remove:
            self.index.remove_ids(np.ascontiguousarray(slots, dtype=np.int64))

    def compact(self, force: bool = False) -> bool:
        """Rebuild a graph index from its live vectors when tombstones pass the share (or
        ``force``); the slots stay. Returns whether it rebuilt."""
        dead = self.stored - self.live
        if self.index is None or dead == 0 or self.can_remove:
            return False
        if not force and dead < TOMBSTONE_SHARE * self.stored:
            return False
        slots = np.flatnonzero(self.slot_ids >= 0).astype(np.int64)
        vectors = self.index.reconstruct_batch(slots) if len(slots) else None
        self.index = None
        if vectors is not None:
            self._build(vectors)
            self.index.add_with_ids(vectors, slots)
        return True

    # -- search ---------------------------------------------------------------------------------
    def search(
        self, queries: FloatMatrix, k: int, keep: Callable[[IdArray], np.ndarray] | None = None
    ) -> tuple[FloatMatrix, IdArray]:
        """The ``k`` best live items of each query whose ids pass ``keep`` (see ``Index.search``).

        Over-fetches from faiss and drops dead slots and rejected ids; rows that end with fewer
        than ``k`` and could hold more are searched again with ``GROWTH`` times the fetch, until
        ``k`` are found or faiss has nothing more to give.
        """
        n = len(queries)
        worst = -np.inf if self.metric == "cosine" else np.inf
        scores = np.full((n, k), worst, dtype=np.float32)
        ids = np.full((n, k), -1, dtype=np.int64)
        stored, dead = self.stored, self.stored - self.live
        fetch = min(stored, (k if keep is None else GROWTH * k) + dead)
        todo = np.arange(n) if stored and self.live else np.arange(0)
        while len(todo):
            self._widen(fetch)
            raw_scores, raw_slots = self.index.search(queries[todo], fetch)
            found, got_scores, got_ids = self._filter(raw_scores, raw_slots, k, keep)
            scores[todo], ids[todo] = got_scores, got_ids
            exhausted = (raw_slots < 0).any(axis=1) | (fetch >= stored)
            todo = todo[(found < k) & ~exhausted]
            fetch = min(stored, fetch * GROWTH)
        if self.metric == "euclidean":
            scores = np.sqrt(np.maximum(scores, 0), dtype=np.float32)
        return scores, ids

    def _widen(self, fetch: int) -> None:
        """A tuned graph search walks a beam proportional to the fetch: the tuned ``efSearch``
        reaches its recall for ``TUNING_K`` results, so fetching 40 (filters, larger k) walks
        four times as wide."""
        name, _, value = self.search_params.partition("=")
        if self.measured_recall is not None and name == "efSearch":
            wide = max(int(value), -(-int(value) * fetch // TUNING_K))
            faiss_module().ParameterSpace().set_index_parameter(self.index, "efSearch", wide)

    def _filter(
        self,
        raw_scores: FloatMatrix,
        raw_slots: IdArray,
        k: int,
        keep: Callable[[IdArray], np.ndarray] | None,
    ) -> tuple[np.ndarray, FloatMatrix, IdArray]:
        """The first ``k`` admissible entries of each row: ``(count found, scores, ids)``."""
        item = np.where(raw_slots >= 0, self.slot_ids[np.maximum(raw_slots, 0)], -1)
        ok = item >= 0
        if keep is not None and ok.any():
            candidates = np.unique(item[ok])
            ok &= np.isin(item, candidates[keep(candidates)])
        slot = np.cumsum(ok, axis=1) - 1
        ok &= slot < k
        rows = np.broadcast_to(np.arange(len(item))[:, None], item.shape)
        worst = -np.inf if self.metric == "cosine" else np.inf
        scores = np.full((len(item), k), worst, dtype=np.float32)
        ids = np.full((len(item), k), -1, dtype=np.int64)
        scores[rows[ok], slot[ok]] = raw_scores[ok]
        ids[rows[ok], slot[ok]] = item[ok]
        return ok.sum(axis=1), scores, ids

    # -- files --------------------------------------------------------------------------------
    def write(self, path: str) -> None:
        """Write the faiss index to ``path`` with ``faiss.write_index`` (nothing when never built).

        The caller gives a temporary name and renames it: this writes in place.
        """
        if self.index is not None:
            faiss_module().write_index(self.index, path)

    def read(self, path: str | None, slot_ids: IdArray) -> None:
        """Load the faiss index from ``path`` (``None``: never built) and the slot map."""
        self.index = None if path is None else faiss_module().read_index(path)
        if self.index is not None:
            self._apply_params()
        self.slot_ids = slot_ids
        self._live = None
