"""The one faiss wrapper: the module, the automatic factory, search defaults, and kNN through a
faiss index (flat, IVF, HNSW, ... by factory string).

The same search defaults (:data:`SEARCH_DEFAULTS`) serve ``knn(..., backend="faiss:...")`` and
:class:`deepmetric.index.Index`, so one data set gets one recall from both.

Masks that faiss cannot apply (the query itself, same-group items) are applied by asking for
more neighbours and dropping the excluded ones. Approximate indexes report their neighbour recall
against the exact torch search on a seeded sample of queries.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..distances import Metric, is_similarity, normalize_rows
from .neighbors import Neighbors, exact_knn

RECALL_SAMPLE = 1000
FLAT_BELOW = 20_000
PQ_FROM = 2_000_000
SEARCH_DEFAULTS = {"nprobe": 32, "efSearch": 128}


def faiss_module() -> Any:
    """The faiss module, or an ImportError that says how to install it."""
    try:
        import faiss
    except ImportError as err:  # pragma: no cover - faiss-cpu is a dependency
        raise ImportError("faiss is needed here; pip install faiss-cpu") from err
    return faiss


def auto_factory(n: int, dim: int) -> str:
    """The faiss factory string chosen for ``n`` vectors of width ``dim``.

    Below 20,000 vectors an exact ``Flat`` index; up to 2 million ``IVF{4 sqrt n},Flat``; past
    that (for an even ``dim``) ``IVF{4 sqrt n},PQ{m}x4fs``, 4-bit fast-scan product
    quantisation with ``m`` the largest even divisor of ``dim`` up to ``dim / 2``: ``m / 2``
    bytes per vector instead of ``4 * dim``. (8-bit PQ trains far slower for the same size.)

    Example:
        >>> auto_factory(1000, 64), auto_factory(100_000, 128), auto_factory(4_000_000, 128)
        ('Flat', 'IVF1264,Flat', 'IVF8000,PQ64x4fs')
    """
    if n < FLAT_BELOW:
        return "Flat"
    nlist = int(4 * math.sqrt(n))
    if n < PQ_FROM or dim % 2 or dim < 4:
        return f"IVF{nlist},Flat"
    m = max(d for d in range(2, dim // 2 + 1, 2) if dim % d == 0)
    return f"IVF{nlist},PQ{m}x4fs"


def set_search_params(index: Any, params: str, k: int = 0, factory: str = "") -> None:
    """Apply :data:`SEARCH_DEFAULTS` (``efSearch`` at least ``2 k``), then ``params`` such as
    ``"nprobe=64"``; ValueError when ``params`` do not apply to the index."""
    space = faiss_module().ParameterSpace()
    defaults = dict(SEARCH_DEFAULTS, efSearch=max(SEARCH_DEFAULTS["efSearch"], 2 * k))
    for name, value in defaults.items():
        try:
            space.set_index_parameter(index, name, value)
        except RuntimeError:
            pass  # the index has no such parameter
    if params:
        try:
            space.set_index_parameters(index, params)
        except RuntimeError as err:
            raise ValueError(
                f"search_params {params!r} do not apply to the index {factory!r}: {err}"
            ) from None


def parse_backend(backend: str) -> tuple[str, str]:
    """Factory string and search parameters: ``"faiss:HNSW32|efSearch=128"`` -> both parts."""
    if backend == "faiss":
        return "Flat", ""
    if not backend.startswith("faiss:") or len(backend) == len("faiss:"):
        raise ValueError(
            "backend must be 'exact', 'faiss' or 'faiss:<factory string>[|<search parameters>]' "
            f"such as 'faiss:HNSW32|efSearch=128'; got {backend!r}"
        )
    factory, _, params = backend[len("faiss:") :].partition("|")
    return factory, params


def build_index(vectors: np.ndarray, metric: Metric, factory: str, params: str, k: int) -> Any:
    """A trained faiss index holding ``vectors`` (already normalised for cosine)."""
    faiss = faiss_module()
    kind = faiss.METRIC_INNER_PRODUCT if is_similarity(metric) else faiss.METRIC_L2
    try:
        index = faiss.index_factory(vectors.shape[1], factory, kind)
    except RuntimeError as err:
        raise ValueError(f"faiss could not build the index {factory!r}: {err}") from err
    if faiss.get_num_gpus() > 0:  # pragma: no cover - no GPU in CI
        index = faiss.index_cpu_to_all_gpus(index)
    if not index.is_trained:
        sample = np.random.default_rng(0).permutation(len(vectors))[:100_000]
        index.train(vectors[np.sort(sample)])
    index.add(vectors)
    set_search_params(index, params, k, factory)
    return index


def faiss_knn(
    q: Tensor,
    r: Tensor | None,
    k: int,
    metric: Metric,
    query_groups: Tensor | None,
    reference_groups: Tensor | None,
    backend: str,
) -> Neighbors:
    """faiss search on validated tensors (``r=None``: self-retrieval). See :func:`knn`."""
    factory, params = parse_backend(backend)
    is_self = r is None
    ref = q if r is None else r

    def vectors(x: Tensor) -> np.ndarray:
        x = normalize_rows(x) if metric == "cosine" else x
        return np.ascontiguousarray(x.detach().cpu().numpy(), dtype=np.float32)

    qv = vectors(q)
    rv = qv if is_self else vectors(ref)
    extra = int(is_self)
    if reference_groups is not None:
        extra += int(torch.unique(reference_groups, return_counts=True)[1].max())
    wanted = min(k + extra, len(rv))
    index = build_index(rv, metric, factory, params, wanted)
    scores, indices = index.search(qv, wanted)
    scores, indices = _drop_excluded(
        torch.from_numpy(scores),
        torch.from_numpy(indices),
        k,
        is_self,
        query_groups,
        reference_groups,
        -torch.inf if is_similarity(metric) else torch.inf,
    )
    if metric == "euclidean":
        scores = scores.clamp_min(0).sqrt()
    recall = None
    if factory.replace(" ", "") != "Flat":
        recall = _recall(q, r, k, metric, (query_groups, reference_groups), indices)
    return Neighbors(indices=indices, scores=scores.to(q.dtype), metric=metric, recall=recall)


def _drop_excluded(
    scores: Tensor,
    indices: Tensor,
    k: int,
    is_self: bool,
    query_groups: Tensor | None,
    reference_groups: Tensor | None,
    missing: float,
) -> tuple[Tensor, Tensor]:
    """Keep the first ``k`` admissible neighbours of each row, in faiss's order."""
    keep = indices >= 0
    if is_self:
        keep &= indices != torch.arange(len(indices))[:, None]
    if query_groups is not None and reference_groups is not None:
        keep &= query_groups[:, None] != reference_groups[indices.clamp_min(0)]
    slot = keep.long().cumsum(1) - 1
    keep &= slot < k
    rows = torch.arange(len(indices))[:, None].expand_as(indices)
    out_scores = torch.full((len(indices), k), missing, dtype=scores.dtype)
    out_indices = torch.full((len(indices), k), -1, dtype=torch.long)
    out_scores[rows[keep], slot[keep]] = scores[keep]
    out_indices[rows[keep], slot[keep]] = indices[keep]
    return out_scores, out_indices


def _recall(
    q: Tensor, r: Tensor | None, k: int, metric: Metric,
    groups: tuple[Tensor | None, Tensor | None], found: Tensor,
) -> float:  # fmt: skip
    """Share of the exact k nearest neighbours of a seeded query sample that were found."""
    n = q.shape[0]
    sample = torch.randperm(n, generator=torch.Generator().manual_seed(0))[:RECALL_SAMPLE]
    sample = sample.sort().values
    query_groups, reference_groups = groups
    sampled = None if query_groups is None else query_groups[sample]
    own = sample if r is None else None  # a sampled query must not find itself either
    ref = q if r is None else r
    truth = exact_knn(q[sample], ref, k, metric, sampled, reference_groups, exclude=own).indices
    hits = (truth[:, :, None] == found[sample][:, None, :]) & (truth[:, :, None] >= 0)
    return float(hits.any(2).sum()) / max(int((truth >= 0).sum()), 1)


def search_ladder(index: Any) -> list[str]:
    """Search settings of ``index`` from cheapest to most thorough: ``nprobe`` (IVF, with the
    refine step's ``k_factor`` where there is one) or ``efSearch`` (HNSW); [] when exact."""
    faiss = faiss_module()
    ivf = faiss.try_extract_index_ivf(index)
    if ivf is not None:
        probes = [p for p in (1, 2, 4, 8, 12, 16, 24, 32, 48, 64, 128, 256) if p < ivf.nlist]
        probes.append(ivf.nlist)
        if "Refine" not in type(index).__name__:
            return [f"nprobe={p}" for p in probes]
        return [f"nprobe={p},k_factor_rf={f}" for p in probes for f in (2, 4, 8)]
    inner = index.index if hasattr(index, "id_map") else index  # under an IndexIDMap
    if "HNSW" in type(faiss.downcast_index(inner)).__name__:
        return [f"efSearch={e}" for e in (16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 1024)]
    return []


def tune_search(index: Any, vectors: np.ndarray, k: int, target: float) -> tuple[str, float]:
    """The cheapest setting of :func:`search_ladder` whose recall@k reaches ``target`` on a
    seeded sample of ``RECALL_SAMPLE`` of the indexed ``vectors`` (rows = positions in the
    index) used as queries, each finding neither itself in the exact answer nor in the index's;
    the most thorough setting when none does. Returns ``(setting, measured recall)``; an exact
    index gives ``("", 1.0)``."""
    ladder = search_ladder(index)
    if not ladder:
        return "", 1.0
    faiss = faiss_module()
    n = len(vectors)
    pick = np.sort(np.random.default_rng(0).permutation(n)[:RECALL_SAMPLE])
    queries = np.ascontiguousarray(vectors[pick])
    wanted = min(k + 1, n)
    flat = faiss.IndexFlat(vectors.shape[1], index.metric_type)
    flat.add(vectors)
    truth = _without_self(flat.search(queries, wanted)[1], pick, k)
    space = faiss.ParameterSpace()
    recall = 0.0
    for setting in ladder:
        space.set_index_parameters(index, setting)
        found = _without_self(index.search(queries, wanted)[1], pick, k)
        hits = (truth[:, :, None] == found[:, None, :]) & (truth[:, :, None] >= 0)
        recall = float(hits.any(2).sum()) / max(int((truth >= 0).sum()), 1)
        if recall >= target:
            break
    return setting, recall


def _without_self(ids: np.ndarray, own: np.ndarray, k: int) -> np.ndarray:
    """The first ``k`` ids of each row other than the row's own (-1 pads)."""
    keep = ids != own[:, None]
    out = np.full((len(ids), k), -1, dtype=np.int64)
    for row in range(len(ids)):
        kept = ids[row][keep[row]][:k]
        out[row, : len(kept)] = kept
    return out
