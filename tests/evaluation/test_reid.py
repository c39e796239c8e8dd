"""Market-1501 re-id metrics: a hand-worked case and a per-query reference loop."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from deepmetric.distances import Metric, pairwise
from deepmetric.evaluation.reid import ReidResult, reid_metrics, reid_metrics_from_distances

Ids = np.ndarray


def reference(
    dist: np.ndarray, q_ids: Ids, g_ids: Ids, q_cams: Ids, g_cams: Ids, max_rank: int
) -> tuple[np.ndarray, float, float, int]:
    """The protocol query by query: rank, drop junk, score the true matches."""
    cmcs, aps, inps, skipped = [], [], [], 0
    for i in range(len(q_ids)):
        order = sorted(range(len(g_ids)), key=lambda j: (float(dist[i][j]), j))
        kept = [
            j
            for j in order
            if g_ids[j] != -1 and not (g_ids[j] == q_ids[i] and g_cams[j] == q_cams[i])
        ]
        ranks = [r + 1 for r, j in enumerate(kept) if g_ids[j] == q_ids[i]]  # 1-based
        if not ranks:
            skipped += 1
            continue
        cmcs.append([1.0 if ranks[0] <= k else 0.0 for k in range(1, max_rank + 1)])
        aps.append(np.mean([(m + 1) / r for m, r in enumerate(ranks)]))
        inps.append(len(ranks) / ranks[-1])
    return np.mean(cmcs, axis=0), float(np.mean(aps)), float(np.mean(inps)), skipped


def check(result: ReidResult, want: tuple[np.ndarray, float, float, int]) -> None:
    cmc, ap, inp, skipped = want
    np.testing.assert_allclose(result.cmc, cmc, atol=1e-12)
    assert result.map == pytest.approx(ap, abs=1e-12)
    assert result.minp == pytest.approx(inp, abs=1e-12)
    assert result.num_skipped_queries == skipped


def test_hand_worked_example() -> None:
    # gallery items g0..g5: (id, camera) = (1, 0) (2, 1) (1, 1) (-1, 1) (0, 2) (1, 2)
    g_ids = [1, 2, 1, -1, 0, 1]
    g_cams = [0, 1, 1, 1, 2, 2]
    dist = torch.tensor(
        [
            [0.1, 0.2, 0.3, 0.05, 0.4, 0.5],  # q0: id 1, cam 0
            [0.3, 0.1, 0.2, 0.4, 0.5, 0.6],  # q1: id 2, cam 0
            [0.1, 0.2, 0.3, 0.4, 0.5, 0.6],  # q2: id 3, cam 0
        ]
    )
    # q0 ranks g3 g0 g1 g2 g4 g5; g3 is junk (id -1), g0 is junk (id 1 in cam 0, the query's
    # camera). Left: g1 (rank 1), g2 (rank 2, match), g4 (rank 3, distractor id 0, a negative),
    # g5 (rank 4, match). First match at rank 2: CMC = [0, 1, 1].
    # AP = (1/2 + 2/4) / 2 = 0.5; INP = 2 matches / rank 4 = 0.5.
    # q1 ranks g1 first, its only match (id 2, camera 1): CMC = [1, 1, 1], AP = 1, INP = 1.
    # q2 (id 3) has no match: skipped. Means over q0 and q1:
    # CMC = [0.5, 1, 1], mAP = 0.75, mINP = 0.75.
    r = reid_metrics_from_distances(dist, [1, 2, 3], g_ids, [0, 0, 0], g_cams, max_rank=3)
    np.testing.assert_allclose(r.cmc, [0.5, 1.0, 1.0])
    assert (r.map, r.minp, r.num_valid_queries, r.num_skipped_queries) == (0.75, 0.75, 2, 1)
    assert r.as_dict() == {"rank_1": 0.5, "map": 0.75, "minp": 0.75}


def test_ties_rank_the_lower_gallery_index_first() -> None:
    dist = torch.tensor([[1.0, 1.0]])
    # match second: ranks 2, AP 1/2; match first: rank 1, AP 1
    assert reid_metrics_from_distances(dist, [1], [2, 1], [0], [1, 1], max_rank=1).map == 0.5
    assert reid_metrics_from_distances(dist, [1], [1, 2], [0], [1, 1], max_rank=1).map == 1.0


def random_case(
    seed: int, nq: int = 25, ng: int = 70
) -> tuple[Ids, Ids, Ids, Ids, np.random.Generator]:
    rng = np.random.default_rng(seed)
    g_ids = rng.integers(-1, 8, ng)  # -1 junk, 0 distractors, 1..7 people
    q_ids = rng.integers(1, 9, nq)  # id 8 never appears in the gallery: skipped
    return q_ids, g_ids, rng.integers(0, 3, nq), rng.integers(0, 3, ng), rng


@pytest.mark.parametrize("seed", range(3))
def test_tied_distances_match_the_reference(seed: int) -> None:
    q_ids, g_ids, q_cams, g_cams, rng = random_case(seed)
    dist = rng.integers(0, 6, (len(q_ids), len(g_ids))).astype(np.float64)  # many ties
    want = reference(dist, q_ids, g_ids, q_cams, g_cams, 10)
    for block_size in (1, 7, 1000):
        got = reid_metrics_from_distances(
            dist, q_ids, g_ids, q_cams, g_cams, max_rank=10, block_size=block_size
        )
        check(got, want)
        assert got.num_valid_queries + got.num_skipped_queries == len(q_ids)


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_embeddings_match_the_reference(metric: Metric) -> None:
    q_ids, g_ids, q_cams, g_cams, rng = random_case(5)
    q = torch.from_numpy(rng.normal(size=(len(q_ids), 4)))
    g = torch.from_numpy(rng.normal(size=(len(g_ids), 4)))
    dist = pairwise(q, g, metric)
    dist = -dist if metric == "cosine" else dist
    want = reference(dist.numpy(), q_ids, g_ids, q_cams, g_cams, 5)
    got = reid_metrics(q, g, q_ids, g_ids, q_cams, g_cams, metric=metric, max_rank=5, block_size=4)
    check(got, want)
    assert set(got.as_dict()) == {"rank_1", "rank_5", "map", "minp"}


@settings(deadline=None, max_examples=40)
@given(st.integers(0, 10_000), st.integers(1, 6), st.integers(2, 12))
def test_properties(seed: int, nq: int, ng: int) -> None:
    q_ids, g_ids, q_cams, g_cams, rng = random_case(seed, nq, ng)
    g_ids[0], g_cams[0], q_ids[0], q_cams[0] = 1, 1, 1, 0  # at least one valid query
    dist = rng.random((nq, ng))
    r = reid_metrics_from_distances(dist, q_ids, g_ids, q_cams, g_cams, max_rank=ng)
    assert np.all((r.cmc >= 0) & (r.cmc <= 1)) and np.all(np.diff(r.cmc) >= 0)
    assert 0 < r.map <= 1 and 0 < r.minp <= 1 and r.cmc[-1] == 1.0
    # the gallery's order does not matter when no distances tie
    perm = rng.permutation(ng)
    p = reid_metrics_from_distances(
        dist[:, perm], q_ids, g_ids[perm], q_cams, g_cams[perm], max_rank=ng
    )
    np.testing.assert_allclose(p.cmc, r.cmc)
    assert (p.map, p.minp) == pytest.approx((r.map, r.minp))
    # every true match ahead of every other item: all scores are 1
    match = (g_ids[None, :] == q_ids[:, None]) & (g_cams[None, :] != q_cams[:, None])
    perfect = reid_metrics_from_distances(
        dist + 2 * ~match, q_ids, g_ids, q_cams, g_cams, max_rank=ng
    )
    assert (perfect.cmc[0], perfect.map, perfect.minp) == (1.0, 1.0, 1.0)


def test_bad_input_is_rejected() -> None:
    q, g = torch.zeros(2, 3), torch.zeros(4, 3)
    ids = dict(query_ids=[1, 2], gallery_ids=[1, 2, 1, 2], query_cams=[0, 0])
    cams = [1, 1, 1, 1]
    with pytest.raises(ValueError, match="query must be finite"):
        reid_metrics(torch.full((2, 3), float("nan")), g, **ids, gallery_cams=cams, max_rank=4)
    with pytest.raises(ValueError, match="gallery must be 2-D"):
        reid_metrics(q, torch.zeros(4), **ids, gallery_cams=cams, max_rank=4)
    with pytest.raises(ValueError, match="query and gallery dims differ: 3 and 2"):
        reid_metrics(q, torch.zeros(4, 2), **ids, gallery_cams=cams, max_rank=4)
    with pytest.raises(ValueError, match="gallery_cams must have 4 entries; got 3"):
        reid_metrics(q, g, **ids, gallery_cams=[1, 1, 1], max_rank=4)
    with pytest.raises(ValueError, match="gallery_cams must be integers"):
        reid_metrics(q, g, **ids, gallery_cams=[1.0, 1.0, 1.0, 1.0], max_rank=4)
    with pytest.raises(ValueError, match=r"max_rank must be in \[1, 4\]"):
        reid_metrics(q, g, **ids, gallery_cams=cams, max_rank=5)
    with pytest.raises(ValueError, match="metric must be one of"):
        reid_metrics(q, g, **ids, gallery_cams=cams, max_rank=4, metric="manhattan")
    with pytest.raises(ValueError, match="block_size must be >= 1"):
        reid_metrics(q, g, **ids, gallery_cams=cams, max_rank=4, block_size=0)
    with pytest.raises(ValueError, match="no query has a true match"):
        reid_metrics(q, g, **ids, gallery_cams=[0, 0, 0, 0], max_rank=4)
    with pytest.raises(ValueError, match="distances must be floating point"):
        reid_metrics_from_distances(torch.zeros(2, 4, dtype=torch.int64), **ids,
                                    gallery_cams=cams)  # fmt: skip
