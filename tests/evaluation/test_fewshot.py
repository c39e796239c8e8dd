"""Few-shot accuracy against a per-episode reference loop on the same sampled episodes."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from deepmetric.evaluation.fewshot import (
    episode_accuracies,
    fewshot_accuracy,
    load_episodes,
    sample_episodes,
    save_episodes,
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


def grouped_data(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """4 groups of 3-5 classes, 6 items per class, each item by one of 6 sources (drawers);
    class 0 lacks source 5, so no episode that holds it can use that source."""
    rng = np.random.default_rng(seed)
    sizes = [3, 5, 4, 2]  # the last group is too small for 3-way episodes
    group = np.repeat(np.arange(4), np.array(sizes) * 6)
    labels = np.repeat(np.arange(sum(sizes)), 6)
    source = np.tile(np.arange(6), sum(sizes))
    source[5] = 4  # class 0: source 4 twice, no source 5
    x = rng.normal(size=(len(labels), 3)) + rng.normal(size=(sum(sizes), 3))[labels]
    return x, labels, group, source


def test_episodes_follow_the_group_and_source_rules() -> None:
    x, y, group, source = grouped_data()
    drawn = sample_episodes(
        y, ways=3, shots=1, queries=2, episodes=300, seed=4, groups=group, sources=source
    )
    for classes, items in zip(drawn.classes, drawn.items, strict=True):
        assert len(set(group[items].ravel().tolist())) == 1  # one group per episode
        assert group[items][0, 0] != 3  # the 2-class group cannot hold 3 ways
        assert len(set(classes.tolist())) == 3 and (y[items] == classes[:, None]).all()
        support, query = source[items[:, :1]], source[items[:, 1:]]
        assert len(set(support.ravel().tolist())) == 1  # one drawer draws the support set
        for j in range(2):  # each query column comes from one other drawer
            assert len(set(query[:, j].tolist())) == 1
        assert len(set(source[items[0]].tolist())) == 3  # support and queries: distinct drawers
    assert len(set(group[drawn.items[:, 0, 0]].tolist())) == 3  # every eligible group drawn
    again = sample_episodes(
        torch.from_numpy(y), ways=3, shots=1, queries=2, episodes=300, seed=4, groups=group,
        sources=source,
    )  # fmt: skip
    np.testing.assert_array_equal(again.items, drawn.items)
    other = sample_episodes(y, ways=3, shots=1, queries=2, episodes=300, seed=5, groups=group)
    assert not np.array_equal(other.items, drawn.items)


def test_grouped_accuracy_matches_the_per_episode_reference() -> None:
    x, y, group, source = grouped_data(1)
    drawn = sample_episodes(
        y, ways=3, shots=2, queries=1, episodes=80, seed=0, groups=group, sources=source
    )
    pairs = zip(drawn.classes, drawn.items, strict=True)
    want = [reference_accuracy(x, c, i, 2, "euclidean") for c, i in pairs]
    result = fewshot_accuracy(x, y, episodes=drawn)
    assert result.accuracy == pytest.approx(np.mean(want)) and result.episodes == 80
    same = fewshot_accuracy(
        x, y, ways=3, shots=2, queries=1, episodes=80, seed=0, groups=group, sources=source
    )
    assert same == result


def test_episodes_save_and_load_and_refuse_other_labels(tmp_path: Path) -> None:
    x, y, group, source = grouped_data()
    drawn = sample_episodes(y, ways=3, shots=1, queries=1, episodes=20, seed=0, groups=group)
    path = save_episodes(tmp_path / "episodes.npz", drawn)
    back = load_episodes(path, y)
    np.testing.assert_array_equal(back.items, drawn.items)
    np.testing.assert_array_equal(back.classes, drawn.classes)
    assert back.shots == 1 and fewshot_accuracy(x, y, episodes=back) == fewshot_accuracy(
        x, y, episodes=drawn
    )
    with pytest.raises(ValueError, match="drawn from other labels"):
        load_episodes(path, y[::-1])
    with pytest.raises(ValueError, match="drawn from other labels"):
        fewshot_accuracy(x[:-6], y[:-6], episodes=drawn)
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not an episodes file"):
        load_episodes(tmp_path / "bad.npz")


def test_rules_that_cannot_be_met_say_why() -> None:
    _, y, group, source = grouped_data()
    with pytest.raises(ValueError, match="no group has 6 classes"):
        sample_episodes(y, ways=6, shots=1, queries=1, episodes=2, seed=0, groups=group)
    with pytest.raises(ValueError, match="groups must be the same for every item of a class"):
        sample_episodes(y, ways=2, shots=1, queries=1, episodes=2, seed=0, groups=source)
    with pytest.raises(ValueError, match="found no 6 sources"):
        sample_episodes(y, ways=2, shots=1, queries=5, episodes=2, seed=0, sources=np.zeros_like(y))
