"""The shared dataset base: items are ``(input, label)``, labels are contiguous class ids.

Every dataset in :mod:`deepmetric.data` is a :class:`LabeledDataset` and is registered in
``DATASETS`` under the name a config uses (``{"name": "cub200", "root": ...}``).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from torch import Tensor
from torch.utils.data import Dataset

from ..registry import Registry
from .images import CheckMode, ImageSize, check_channels, check_images, image_size_pair, load_image

DATASETS: Registry[LabeledDataset] = Registry("dataset")

Self = TypeVar("Self", bound="LabeledDataset")


class LabeledDataset(Dataset[tuple[Tensor, int]]):
    """Items ``(input, label)``: an image as float32 ``(C, H, W)`` in [0, 1], or a 1-D vector.

    Attributes:
        labels: ``(n,)`` int64 class ids, contiguous in ``0 .. len(class_names) - 1``.
        class_names: the name of each class id.
        paths: the source file of each item, or None for in-memory data.
        extra: per-item fields, each an array of length ``n`` (e.g. ``"camera"``,
            ``"is_query"``, ``"is_gallery"``, ``"split"``, ``"item_id"``).
        skipped: ``(path, reason)`` of each file left out because it cannot be read.
        image_size: ``(height, width)`` every image is resized to, or None (native size).
        channels: 1 (greyscale) or 3 (RGB).

    Example:
        >>> data = LabeledDataset(np.array([1, 0, 1]), ["a", "b"])
        >>> len(data), data.num_classes, data.subset([0, 2]).class_names
        (3, 2, ['b'])
    """

    def __init__(
        self,
        labels: np.ndarray,
        class_names: Sequence[str],
        *,
        paths: Sequence[str] | None = None,
        extra: Mapping[str, np.ndarray] | None = None,
        image_size: ImageSize = None,
        channels: int = 3,
    ) -> None:
        labels = np.asarray(labels)
        if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(
                f"labels must be a 1-D integer array; got {labels.dtype} of shape {labels.shape}"
            )
        if len(labels) and (labels.min() < 0 or labels.max() >= len(class_names)):
            raise ValueError(
                f"labels must lie in [0, {len(class_names)}) (one per class name); "
                f"got values in [{labels.min()}, {labels.max()}]"
            )
        self.labels = labels.astype(np.int64)
        self.class_names = [str(name) for name in class_names]
        self.paths = None if paths is None else [str(p) for p in paths]
        self.extra = {key: np.asarray(value) for key, value in (extra or {}).items()}
        for key, value in [("paths", self.paths), *self.extra.items()]:
            if value is not None and len(value) != len(labels):
                raise ValueError(
                    f"{key} must have one entry per label ({len(labels)}); got {len(value)}"
                )
        self.image_size = image_size_pair(image_size)
        self.channels = check_channels(channels)
        self.skipped: list[tuple[str, str]] = []

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        return self.load_input(index), int(self.labels[index])

    def load_input(self, index: int) -> Tensor:
        """The input of item ``index``: its file decoded, resized to ``image_size``."""
        if self.paths is None:
            raise NotImplementedError(f"{type(self).__name__} has no files; override load_input")
        return load_image(self.paths[index], image_size=self.image_size, channels=self.channels)

    def field(self, name: str, where: str) -> np.ndarray:
        """The per-item ``extra[name]``, or a ValueError naming ``where`` and the fields there are.

        Example:
            >>> LabeledDataset(np.array([0]), ["a"], extra={"group": np.array(["g"])}).field(
            ...     "group", "data.group").tolist()
            ['g']
        """
        if name not in self.extra:
            fields = ", ".join(self.extra) or "none"
            raise ValueError(
                f"{where}: {name!r} is not a field of the dataset (its fields: {fields})"
            )
        return self.extra[name]

    @property
    def num_classes(self) -> int:
        """The number of classes, ``len(class_names)``."""
        return len(self.class_names)

    def subset(self: Self, indices: Sequence[int] | np.ndarray) -> Self:
        """The items at ``indices`` (in that order), classes renumbered to stay contiguous.

        Classes with no item left are dropped from ``class_names``; the others keep their
        relative order, so a subset's labels still run over ``0 .. num_classes - 1``.
        """
        index = np.asarray(indices, dtype=np.int64).reshape(-1)
        if len(index) and (index.min() < -len(self) or index.max() >= len(self)):
            raise ValueError(
                f"indices must lie in [0, {len(self)}); got {index.min()}..{index.max()}"
            )
        present, labels = np.unique(self.labels[index], return_inverse=True)
        part = copy.copy(self)
        part.labels = labels.reshape(-1).astype(np.int64)
        part.class_names = [self.class_names[c] for c in present]
        part.paths = None if self.paths is None else [self.paths[i] for i in index]
        part.extra = {key: value[index] for key, value in self.extra.items()}
        part._take_inputs(index)
        return part

    def _take_inputs(self, index: np.ndarray) -> None:
        """Subclasses holding their inputs in memory keep the rows at ``index``."""

    def _set_files(
        self,
        paths: Sequence[str],
        raw_labels: np.ndarray,
        extra: Mapping[str, np.ndarray],
        options: FileOptions,
        classes: np.ndarray | None = None,
    ) -> None:
        """Check the files, drop the unreadable ones, and number the classes.

        Class ids index the sorted distinct ``raw_labels`` of the kept items, or ``classes``
        (sorted) when given, e.g. to share one numbering between a query and a gallery split.
        """
        keep, skipped = check_images(
            paths, check=options.check, strict=options.strict, owner=type(self).__name__
        )
        raw = np.asarray(raw_labels)[keep]
        if classes is None:
            classes = np.unique(raw)
        labels = np.searchsorted(classes, raw).astype(np.int64)
        names = options.names or {}
        LabeledDataset.__init__(
            self,
            labels,
            [names.get(c, str(c)) for c in classes.tolist()],
            paths=[p for p, k in zip(paths, keep.tolist(), strict=True) if k],
            extra={key: np.asarray(value)[keep] for key, value in extra.items()},
            image_size=options.image_size,
            channels=options.channels,
        )
        self.skipped = skipped


class FileOptions:
    """How a file-backed dataset decodes and checks its images, plus optional class names."""

    def __init__(
        self,
        image_size: ImageSize,
        channels: int,
        strict: bool,
        check: CheckMode,
        names: Mapping[Any, str] | None = None,
    ) -> None:
        self.image_size = image_size_pair(image_size)
        self.channels = check_channels(channels)
        self.strict = bool(strict)
        if check not in ("fast", "full", "none"):
            raise ValueError(f"check must be 'fast', 'full' or 'none'; got {check!r}")
        self.check: CheckMode = check
        self.names = names


def check_split(split: str, allowed: Sequence[str], dataset: str) -> str:
    """``split`` if it is one of ``allowed``, else a ValueError listing them."""
    if split not in allowed:
        options = ", ".join(repr(s) for s in allowed)
        raise ValueError(f"{dataset} split must be one of {options}; got {split!r}")
    return split


def require(path: Path, dataset: str, url: str) -> Path:
    """``path`` if it exists, else a FileNotFoundError naming it and the download page."""
    if not path.exists():
        raise FileNotFoundError(
            f"{dataset}: expected {path}, which does not exist; download the data set from "
            f"{url} and extract it into {path.parent} in its original layout"
        )
    return path


def read_rows(path: Path, columns: int, *, skip: int = 0) -> list[list[str]]:
    """Whitespace-separated rows of ``path`` after ``skip`` header lines; each has ``columns``."""
    rows = [line.split() for line in path.read_text().splitlines()[skip:] if line.strip()]
    for number, row in enumerate(rows, start=skip + 1):
        if len(row) != columns:
            raise ValueError(
                f"{path} line {number}: expected {columns} whitespace-separated fields; "
                f"got {len(row)} ({' '.join(row)!r}); the file is damaged, download it again"
            )
    return rows
