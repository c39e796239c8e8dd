"""The datasets of a run: ``build_data`` loads ``data.train`` (and ``data.test``) and makes the
class-disjoint (or group-disjoint) test and validation splits, then the training items as
training sees them (rotated classes, dropped labels, an unlabelled pool); see ``DataConfig``."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from ..config.schema import ConfigError, DataConfig, RunConfig
from ..data import (
    ArrayDataset,
    LabeledDataset,
    build_dataset,
    class_disjoint_split,
    combine,
    labelled_mask,
    with_rotated_classes,
    without_labels,
)


@dataclasses.dataclass(frozen=True)
class RunData:
    """The datasets of a run: training, validation (or None) and test items."""

    train: LabeledDataset
    val: LabeledDataset | None
    test: LabeledDataset


def _held_out(data: LabeledDataset, classes: Sequence[str]) -> np.ndarray:
    known = set(data.class_names)
    missing = [c for c in classes if c not in known]
    if missing:
        raise ConfigError(
            f"data.test_classes: {missing} are not classes of data.train "
            f"(classes: {', '.join(data.class_names[:20])})"
        )
    ids = [data.class_names.index(c) for c in classes]
    return np.isin(data.labels, ids)


def _held_out_groups(groups: np.ndarray, names: Sequence[str]) -> np.ndarray:
    known = sorted(set(groups.tolist()))
    missing = [g for g in names if g not in known]
    if missing:
        raise ConfigError(
            f"data.test_groups: {missing} are not groups of data.train (groups: "
            f"{', '.join(known[:30])})"
        )
    return np.isin(groups, list(names))


def build_data(config: RunConfig) -> RunData:
    """Load the datasets and make the class-disjoint (or group-disjoint) test and validation
    splits; see ``DataConfig``."""
    spec = config.data
    full = build_dataset(spec.train)
    groups = None if spec.group is None else full.field(spec.group, "data.group").astype(str)
    if spec.test is not None:
        train_data = full
        test = full.subset(np.zeros(0, np.int64)) if spec.search else build_dataset(spec.test)
    else:
        if spec.test_classes:
            in_test = _held_out(full, spec.test_classes)
        elif spec.test_groups and groups is not None:
            in_test = _held_out_groups(groups, spec.test_groups)
        else:
            in_test = np.zeros(len(full), dtype=bool)
            by = full.labels if groups is None else groups
            in_test[class_disjoint_split(by, spec.test_fraction, spec.split_seed)[1]] = 1
        train_data, test = (
            full.subset(np.flatnonzero(~in_test)),
            full.subset(np.flatnonzero(in_test)),
        )
    val = None
    if spec.search:  # a tuning trial: validation on training classes is all it sees and scores
        by = (
            train_data.labels if groups is None else train_data.field(str(spec.group), "data.group")
        )
        keep, held = class_disjoint_split(
            np.asarray(by).astype(str), spec.val_fraction, spec.split_seed
        )
        train_data, val = train_data.subset(keep), train_data.subset(held)
        test = val
    elif spec.val_set == "test":
        val = test
    elif spec.val_set == "split":
        by = train_data.labels
        if spec.group is not None:
            by = train_data.field(spec.group, "data.group").astype(str)
        keep, held = class_disjoint_split(by, spec.val_fraction, spec.split_seed)
        train_data, val = train_data.subset(keep), train_data.subset(held)
    for part, where in ((test, "the test set"), (val, "the validation set")):
        if part is not None and not labelled_mask(part).all():
            raise ConfigError(
                f"data: {where} holds unlabelled items, which cannot be scored; give a labelled "
                "data.test (and data.val_set: test or none)"
            )
    return RunData(_training_items(train_data, spec), val, test)


def _training_items(train_data: LabeledDataset, spec: DataConfig) -> LabeledDataset:
    """The training split as training sees it: rotated classes added, labels dropped
    (``train_labels: false``) and the unlabelled pool joined."""
    if spec.rotate_classes:
        if not isinstance(train_data, ArrayDataset):
            raise ConfigError(
                "data.rotate_classes needs an in-memory image dataset (npz, arrays, bundled); "
                f"got {type(train_data).__name__}"
            )
        train_data = with_rotated_classes(train_data)
    if not spec.train_labels:
        train_data = without_labels(train_data)
    if spec.unlabelled is not None:
        train_data = combine(train_data, build_dataset(spec.unlabelled))
    return train_data


__all__ = ["RunData", "build_data"]
