"""Batches for the loop: input checks and the epoch's training batches on the device.

In-memory ``ArrayDataset`` data (no resizing) is gathered a whole batch at a time with one
tensor index, which keeps data loading out of the way of small models; any other dataset goes
through a ``DataLoader`` whose batch sampler is the epoch's list of index batches.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from ..data.lists import TupleSampler
from ..data.unlabelled import labelled_mask
from ..models.embed import map_images, stacked_batches
from ..samplers import HierarchicalSampler, MPerClassSampler
from .options import TrainOptions


def dataset_labels(data: Any, name: str) -> np.ndarray:
    """``data.labels`` as an int64 array, or a ValueError naming ``name`` and the problem."""
    labels = getattr(data, "labels", None)
    if labels is None or not hasattr(data, "__getitem__") or not hasattr(data, "__len__"):
        raise ValueError(
            f"{name} must be a deepmetric LabeledDataset (items (input, label) and a labels "
            f"array); got {type(data).__name__}"
        )
    array = np.asarray(labels)
    if array.ndim != 1 or len(array) != len(data):
        raise ValueError(f"{name}.labels must be 1-D with one label per item; got {array.shape}")
    return array.astype(np.int64)


def check_data(train_data: Any, val_data: Any, options: TrainOptions) -> None:
    """Fail early on data that cannot be trained or validated on, naming the argument."""
    labels = dataset_labels(train_data, "train_data")
    if len(labels) == 0:
        raise ValueError("train_data must hold at least one item; got an empty dataset")
    classes = len(np.unique(labels))
    per_batch = options.sampler.batch_size // options.sampler.m_per_class
    if classes < per_batch and getattr(train_data, "tuples", None) is None:
        raise ValueError(
            f"train_data has {classes} classes, fewer than batch_size // m_per_class = "
            f"{per_batch}; use a smaller batch_size or a larger m_per_class"
        )
    if has_unlabelled(train_data):  # self-supervised items
        if options.augmentation is None or options.sampler.m_per_class < 2:
            raise ValueError(
                "train_data has unlabelled items, each trained as m_per_class augmented views "
                "of itself: set an augmentation and sampler.m_per_class >= 2"
            )
    if val_data is not None:
        val_labels = dataset_labels(val_data, "val_data")
        if len(np.unique(val_labels)) < 2:
            raise ValueError(
                "val_data must have at least 2 classes for retrieval metrics; got "
                f"{len(np.unique(val_labels))} class(es) in {len(val_labels)} item(s)"
            )


def build_sampler(
    train_data: Any, labels: np.ndarray, options: TrainOptions, num_replicas: int, rank: int
) -> MPerClassSampler | TupleSampler:
    """The run's batch sampler: m per class, by groups with ``sampler.classes_per_group``, or
    whole rows of a pair or triplet list (``data.lists``).

    Classes smaller than m repeat their items (``replacement``). An unlabelled item is such a
    class by design, drawn m times to make its m views, so that case is not warned about.
    """
    shared: dict[str, Any] = dict(
        seed=options.runtime.seed, replacement=True, num_replicas=num_replicas, rank=rank
    )
    batches = options.sampler
    if getattr(train_data, "tuples", None) is not None:  # a pair or triplet list: whole rows
        del shared["replacement"]
        return TupleSampler(train_data.tuples, batches.batch_size, **shared)
    with warnings.catch_warnings():
        if has_unlabelled(train_data):
            warnings.filterwarnings("ignore", message=".*items repeat within a batch")
        if options.group is None or batches.classes_per_group is None:
            return MPerClassSampler(labels, batches.m_per_class, batches.batch_size, **shared)
        return HierarchicalSampler(
            labels, train_data.field(options.group, "group"), batches.m_per_class,
            batches.batch_size, batches.classes_per_group, **shared,
        )  # fmt: skip


def has_unlabelled(data: Any) -> bool:
    """Whether ``data`` holds items without a class label (``deepmetric.data.unlabelled``)."""
    return hasattr(data, "extra") and not labelled_mask(data).all()


def listed_miner(train_data: Any, miner: Any) -> Any:
    """``miner``, or for a pair or triplet list without one the ``listed`` miner, which gives
    the loss the listed rows (a loss on labels alone would pair whole components)."""
    tuples = getattr(train_data, "tuples", None)
    if miner is None and tuples is not None:
        from ..miners import ListedMiner

        return ListedMiner(width=tuples.shape[1])
    return miner


class BatchGroups:
    """Each batch item's group code from its label: what a miner that mines within groups
    (``uses_groups``) is given. Groups are a coarse label of the classes (``data.group``)."""

    def __init__(
        self, labels: np.ndarray, data: Any, group: str | None, device: torch.device
    ) -> None:
        if group is None:
            raise ValueError("a miner that mines within groups needs options.group (data.group)")
        codes = np.unique(data.field(group, "data.group"), return_inverse=True)[1].reshape(-1)
        classes, first = np.unique(labels, return_index=True)
        if len(np.unique(np.stack([labels, codes]), axis=1)[0]) != len(classes):
            raise ValueError(f"data.group: a class has items in two {group!r} groups")
        self.classes = torch.as_tensor(classes, device=device)
        self.codes = torch.as_tensor(codes[first], device=device)

    def __call__(self, labels: Tensor) -> Tensor:
        return self.codes[torch.searchsorted(self.classes, labels)]


def iterate_batches(
    data: Dataset[Any], batches: Sequence[Sequence[int]], device: torch.device, num_workers: int
) -> Iterator[tuple[Any, Tensor]]:
    """``(inputs, labels)`` on ``device`` for each list of dataset indices in ``batches``."""
    labels = torch.from_numpy(dataset_labels(data, "data"))
    stacked = stacked_batches(data, batches)
    if stacked is not None:
        for batch, inputs in zip(batches, stacked, strict=True):
            yield inputs.to(device), labels[torch.as_tensor(batch, dtype=torch.long)].to(device)
        return
    loader = DataLoader(
        data, batch_sampler=[list(b) for b in batches], num_workers=num_workers,
        pin_memory=device.type == "cuda",
    )  # fmt: skip
    for batch_inputs, batch_labels in loader:
        moved = map_images(lambda x: x.to(device, non_blocking=True), batch_inputs)
        yield moved, batch_labels.to(device)


@contextlib.contextmanager
def deterministic_algorithms(enabled: bool) -> Iterator[None]:
    """``torch.use_deterministic_algorithms(True)`` inside, the previous setting restored after."""
    previous = torch.are_deterministic_algorithms_enabled()
    if enabled:
        torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous)


__all__ = [
    "BatchGroups",
    "check_data",
    "dataset_labels",
    "deterministic_algorithms",
    "iterate_batches",
]
