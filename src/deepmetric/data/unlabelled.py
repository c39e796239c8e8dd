"""Data without class labels, for self-supervised and semi-supervised training.

An unlabelled item is a class of its own ("instance discrimination"): the m-per-class sampler
draws it ``m`` times with replacement, the augmentation makes those draws ``m`` different views,
and a contrastive loss over the labels (NT-Xent, SupCon) pulls the views of one item together
and pushes every other item of the batch away, which is SimCLR's objective. Labelled items
keep their classes, so in a mixed set the same loss is SupCon on the labelled part. The
``extra["labelled"]`` field marks which items carry a real label.

Unlabelled data comes from a flat folder of images, an ``.npz`` without a ``labels`` array, a
CSV without a ``label`` column, or any dataset passed through
:func:`without_labels`.
"""

from __future__ import annotations

import copy
from typing import TypeVar

import numpy as np
import torch

from .arrays import ArrayDataset
from .base import LabeledDataset

LABELLED = "labelled"
D = TypeVar("D", bound=LabeledDataset)


def labelled_mask(data: LabeledDataset) -> np.ndarray:
    """``(n,)`` bool: which items carry a real class label (all of them unless marked)."""
    return np.asarray(data.extra.get(LABELLED, np.ones(len(data), dtype=bool)), dtype=bool)


def without_labels(data: D, keep: np.ndarray | None = None) -> D:
    """``data`` with the labels of the items outside ``keep`` (all, by default) dropped: each such
    item becomes a class of its own and is marked ``extra["labelled"] = False``.

    Example:
        >>> data = ArrayDataset(np.eye(3, dtype=np.float32), ["a", "a", "b"])
        >>> part = without_labels(data, keep=np.array([True, True, False]))
        >>> part.labels.tolist(), part.class_names, labelled_mask(part).tolist()
        ([0, 0, 1], ['a', 'item 2'], [True, True, False])
    """
    part = copy.copy(data)
    drop_labels(part, keep)
    return part


def drop_labels(data: LabeledDataset, keep: np.ndarray | None = None) -> None:
    """:func:`without_labels` in place (for a dataset that reads files without labels)."""
    n = len(data)
    keep = np.zeros(n, dtype=bool) if keep is None else labelled_mask(data) & np.asarray(keep)
    classes, ids = np.unique(data.labels[keep], return_inverse=True)
    names = [data.class_names[c] for c in classes.tolist()]
    labels = np.empty(n, dtype=np.int64)
    labels[keep] = ids.reshape(-1)
    loose = np.flatnonzero(~keep)
    labels[loose] = len(names) + np.arange(len(loose))
    data.labels = labels
    data.class_names = names + [f"item {i}" for i in loose.tolist()]
    data.extra = {**data.extra, LABELLED: keep}


def combine(labelled: D, unlabelled: LabeledDataset, where: str = "data.unlabelled") -> D:
    """The items of ``labelled`` followed by those of ``unlabelled`` with its labels dropped:
    one training set for semi-supervised learning. Both must hold their inputs the same way
    (in-memory arrays of one shape, or image files); ``extra`` keeps the fields both have."""
    pool = without_labels(unlabelled)
    both = copy.copy(labelled)
    if isinstance(labelled, ArrayDataset) != isinstance(pool, ArrayDataset):
        raise ValueError(
            f"{where}: must be the same kind of data set as data.train (both in-memory arrays, "
            "e.g. npz, or both image files)"
        )
    if isinstance(labelled, ArrayDataset) and isinstance(pool, ArrayDataset):
        if labelled.inputs.shape[1:] != pool.inputs.shape[1:]:
            raise ValueError(
                f"{where}: items of shape {tuple(pool.inputs.shape[1:])} differ from data.train's "
                f"{tuple(labelled.inputs.shape[1:])}"
            )
        parts = [labelled.inputs, pool.inputs]
        if parts[0].dtype != parts[1].dtype:  # uint8 next to float: both as float in [0, 1]
            parts = [x.to(torch.float32) / 255.0 if x.dtype == torch.uint8 else x for x in parts]
        both.inputs = torch.cat(parts)  # type: ignore[attr-defined]
    else:
        both.paths = [*(labelled.paths or []), *(pool.paths or [])]
    marked = {**labelled.extra, LABELLED: labelled_mask(labelled)}
    shared = [key for key in marked if key in pool.extra]
    both.extra = {k: np.concatenate([marked[k], pool.extra[k]]) for k in shared}
    both.labels = np.concatenate([labelled.labels, pool.labels + labelled.num_classes])
    both.class_names = [*labelled.class_names, *pool.class_names]
    return both


__all__ = ["LABELLED", "combine", "drop_labels", "labelled_mask", "without_labels"]
