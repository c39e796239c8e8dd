"""class_disjoint_split: no class on both sides, the asked share of classes, seeded."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from deepmetric.data import class_disjoint_split


@settings(deadline=None, max_examples=50)
@given(
    st.lists(st.integers(-3, 12), min_size=2, max_size=60).filter(lambda v: len(set(v)) >= 2),
    st.floats(0.01, 0.99),
    st.integers(0, 2**31),
)
def test_partition_of_items_with_disjoint_classes(
    labels: list[int], fraction: float, seed: int
) -> None:
    train, val = class_disjoint_split(labels, fraction, seed)
    values = np.array(labels)
    assert sorted(np.concatenate([train, val]).tolist()) == list(range(len(labels)))
    assert set(values[train]).isdisjoint(values[val])
    classes = len(set(labels))
    expected = min(max(round(fraction * classes), 1), classes - 1)  # the documented count
    assert len(set(values[val])) == expected and len(set(values[train])) == classes - expected
    assert train.dtype == val.dtype == np.int64
    again = class_disjoint_split(np.array(labels), fraction, seed)
    assert np.array_equal(again[0], train) and np.array_equal(again[1], val)


def test_seeds_choose_different_classes_and_tensors_work() -> None:
    labels = torch.arange(100) % 20
    splits = {tuple(class_disjoint_split(labels, 0.25, seed)[1].tolist()) for seed in range(5)}
    assert len(splits) > 1
    assert len(set(labels[class_disjoint_split(labels, 0.25, 0)[1]].tolist())) == 5


@pytest.mark.parametrize(
    ("labels", "fraction", "message"),
    [
        ([3, 3, 3], 0.2, r"at least 2 classes for a class-disjoint split; got 1"),
        ([], 0.2, r"at least 2 classes for a class-disjoint split; got 0"),
        ([0, 1], 1.0, r"val_fraction must be in \(0, 1\); got 1\.0"),
        ([0, 1], 0, r"val_fraction must be in \(0, 1\); got 0"),
        ([[0, 1]], 0.5, r"labels must be 1-D; got shape \(1, 2\)"),
    ],
)
def test_errors(labels: list[object], fraction: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        class_disjoint_split(labels, fraction)  # type: ignore[arg-type]
