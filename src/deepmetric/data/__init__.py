"""Datasets, class-disjoint splits and batched augmentation.

Every dataset is a :class:`LabeledDataset`: items ``(input, label)`` with an image as a float32
``(C, H, W)`` tensor in [0, 1] (or a 1-D float32 vector), ``labels`` contiguous int64 class ids,
``class_names``, ``paths``, per-item ``extra`` fields and ``subset()``. Data without labels
(a flat folder, an ``.npz`` or CSV without labels, ``without_labels``) makes every item a class
of its own, for self-supervised training. ``build_dataset(spec)``
makes one from ``{"name": ..., "root": ..., "split": ..., ...}``; ``names()`` lists the names.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .arrays import ArrayDataset, DigitsDataset, with_rotated_classes
from .augment import Augmentation, AugmentConfig, build_augmentation
from .base import DATASETS, LabeledDataset
from .captions import CaptionedImages, CaptionFiles
from .fine_grained import CUB200, Cars196
from .folders import CSVDataset, ImageFolderDataset
from .images import check_images, image_problem, load_image
from .lfw import LFWDataset, LFWPairs
from .lists import PairList, TripletList, TupleSampler
from .market import Market1501
from .npz import NpzDataset
from .omniglot import Omniglot, bundled_omniglot
from .products import InShop, StanfordOnlineProducts
from .shapes import Shapes
from .splits import class_disjoint_split
from .unlabelled import combine, labelled_mask, without_labels


def build_dataset(spec: Mapping[str, Any] | str) -> LabeledDataset:
    """Build a dataset from ``{"name": ..., **params}``; unknown names or parameters raise.

    Names: ``folder``, ``csv``, ``digits``, ``npz``, ``cub200``, ``cars196``, ``sop``,
    ``inshop``, ``market1501``, ``lfw``, ``omniglot``, ``pairs``, ``triplets``, ``shapes``,
    ``captions``; the parameters are the class's (``root``, ``split``, ``image_size``,
    ``channels``, ``strict``, ``check``, ...).

    Example:
        >>> len(build_dataset({"name": "digits", "split": "train"}))
        901
    """
    return DATASETS.build(spec)


def names() -> list[str]:
    """The registered dataset names, sorted."""
    return DATASETS.names()


__all__ = [
    "CUB200",
    "DATASETS",
    "ArrayDataset",
    "AugmentConfig",
    "Augmentation",
    "CSVDataset",
    "CaptionFiles",
    "CaptionedImages",
    "Cars196",
    "DigitsDataset",
    "ImageFolderDataset",
    "InShop",
    "LFWDataset",
    "LFWPairs",
    "LabeledDataset",
    "Market1501",
    "NpzDataset",
    "PairList",
    "Omniglot",
    "bundled_omniglot",
    "Shapes",
    "StanfordOnlineProducts",
    "TripletList",
    "TupleSampler",
    "build_augmentation",
    "build_dataset",
    "check_images",
    "class_disjoint_split",
    "combine",
    "image_problem",
    "labelled_mask",
    "load_image",
    "names",
    "with_rotated_classes",
    "without_labels",
]
