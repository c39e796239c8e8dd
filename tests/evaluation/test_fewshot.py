"""Few-shot accuracy against a per-episode reference loop on the same sampled episodes."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from deepmetric.evaluation.fewshot import (
    episode_accuracies,
    fewshot_accuracy,
    sample_episodes,
)


def data(seed: int = 0, classes: int = 8, per_class: int = 6) -> tuple[np.ndarray, np.ndarray]:
    """Overlapping Gaussian classes (accuracy well inside (0, 1)); class 7 is too small."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(classes), per_class)[: classes * per_class - (per_class - 2)]
    centres = rng.normal(size=(classes, 3))
    return centres[labels] + rng.normal(size=(len(labels), 3)), labels


def reference_accuracy(
    x: np.ndarray, classes: np.ndarray, items: np.ndarray, shots: int, metric: str
) -> float:
    """One episode, query by query: nearest prototype, ties to the lower way."""
    prototypes = [x[way_items[:shots]].mean(0) for way_items in items]
    correct = total = 0
    for way, way_items in enumerate(items):
        for q in way_items[shots:]:
            if metric == "euclidean":
                d = [math.dist(x[q], p) for p in prototypes]
            else:
                d = [
                    -np.dot(x[q], p) / (np.linalg.norm(x[q]) * np.linalg.norm(p))
                    for p in prototypes
                ]
            correct += int(np.argmin(d) == way)
            total += 1
    return correct / total


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
@pytest.mark.parametrize(("ways", "shots", "queries"), [(5, 1, 3), (3, 2, 2)])
def test_matches_the_per_episode_reference(
    metric: str, ways: int, shots: int, queries: int
) -> None:
    x, y = data()
    episodes = 150  # more than one internal chunk of episodes
    drawn = sample_episodes(y, ways=ways, shots=shots, queries=queries, episodes=episodes, seed=3)
    want = [
        reference_accuracy(x, c, items, shots, metric)
        for c, items in zip(drawn.classes, drawn.items, strict=True)
    ]
    got = episode_accuracies(torch.from_numpy(x), drawn, shots=shots, metric=metric)
    np.testing.assert_allclose(got, want)
    result = fewshot_accuracy(
        x,
        y,
        ways=ways,
        shots=shots,
        queries=queries,
        episodes=episodes,
        metric=metric,
        seed=3,
    )
    assert result.accuracy == pytest.approx(np.mean(want))
    assert result.ci95 == pytest.approx(1.96 * np.std(want) / math.sqrt(episodes))
    assert 0.2 < result.accuracy < 0.95 and result.num_skipped_classes == 1


@settings(deadline=None, max_examples=40)
@given(st.integers(2, 5), st.integers(1, 3), st.integers(1, 3), st.integers(0, 10_000))
def test_episodes_are_valid_and_seeded(ways: int, shots: int, queries: int, seed: int) -> None:
    _, y = data(seed=1)
    kwargs = dict(ways=ways, shots=shots, queries=queries, episodes=20, seed=seed)
    drawn = sample_episodes(y, **kwargs)
    assert drawn.items.shape == (20, ways, shots + queries)
    for classes, items in zip(drawn.classes, drawn.items, strict=True):
        assert len(set(classes.tolist())) == ways  # distinct classes
        assert len(set(items.ravel().tolist())) == items.size  # distinct items
        assert (y[items] == classes[:, None]).all()  # each way holds its class's items
        # a class with fewer than shots + queries items is never drawn
        assert all((y == c).sum() >= shots + queries for c in classes)
    again = sample_episodes(torch.from_numpy(y), **kwargs)
    np.testing.assert_array_equal(again.items, drawn.items)


def test_same_seed_same_result_other_seed_other_episodes() -> None:
    x, y = data()
    a = fewshot_accuracy(x, y, ways=3, queries=2, episodes=50, seed=1)
    assert a == fewshot_accuracy(torch.from_numpy(x), torch.from_numpy(y), ways=3, queries=2,
                                 episodes=50, seed=1)  # fmt: skip
    first = sample_episodes(y, ways=3, shots=1, queries=2, episodes=50, seed=1)
    other = sample_episodes(y, ways=3, shots=1, queries=2, episodes=50, seed=2)
    assert not np.array_equal(first.items, other.items)
    # every eligible class shows up, so the draw covers them all
    assert set(np.unique(first.classes).tolist()) == set(range(7))


def test_separable_classes_score_one() -> None:
    y = np.repeat(np.arange(6), 5)
    x = np.eye(6)[y] * 10 + np.random.default_rng(0).normal(scale=0.01, size=(30, 6))
    for metric in ("euclidean", "cosine"):
        r = fewshot_accuracy(x, y, ways=5, shots=2, queries=3, episodes=40, metric=metric)
        assert (r.accuracy, r.ci95, r.episodes, r.num_skipped_classes) == (1.0, 0.0, 40, 0)


def test_bad_input_is_rejected() -> None:
    x, y = data()
    with pytest.raises(ValueError, match=r"need 5 classes with >= shots \+ queries = 16 items"):
        fewshot_accuracy(x, y)
    with pytest.raises(ValueError, match="labels must be integers"):
        fewshot_accuracy(x, y.astype(float), queries=2)
    with pytest.raises(ValueError, match="labels must be 1-D"):
        fewshot_accuracy(x, y[None], queries=2)
    with pytest.raises(ValueError, match=r"embeddings must be \(44, dim\) for 44 labels"):
        fewshot_accuracy(x[:-1], y, queries=2)
    with pytest.raises(ValueError, match="embeddings must be finite"):
        fewshot_accuracy(np.full_like(x, np.nan), y, queries=2)
    with pytest.raises(ValueError, match="embeddings must be floating point"):
        fewshot_accuracy(y[:, None], y, queries=2)
    with pytest.raises(ValueError, match="metric must be 'euclidean' or 'cosine'"):
        fewshot_accuracy(x, y, queries=2, metric="dot")
    with pytest.raises(ValueError, match="ways must be >= 2"):
        fewshot_accuracy(x, y, ways=1)
    with pytest.raises(ValueError, match="shots must be >= 1"):
        fewshot_accuracy(x, y, shots=0)
    with pytest.raises(ValueError, match="episodes must be >= 1"):
        fewshot_accuracy(x, y, queries=2, episodes=0)
    drawn = sample_episodes(y, ways=2, shots=1, queries=1, episodes=3, seed=0)
    with pytest.raises(ValueError, match="embeddings has 3 rows"):
        episode_accuracies(x[:3], drawn, shots=1, metric="euclidean")
