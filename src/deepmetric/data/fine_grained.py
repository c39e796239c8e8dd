"""Fine-grained benchmarks in their native layouts: CUB-200-2011 and Cars196.

Both use the class-disjoint split of metric learning (Oh Song et al., "Deep Metric Learning via
Lifted Structured Feature Embedding", CVPR 2016, https://arxiv.org/abs/1511.06452): the first
half of the classes trains, the second half tests, and the official classification split is
ignored.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np

from .base import DATASETS, FileOptions, LabeledDataset, check_split, read_rows, require
from .images import CheckMode, ImageSize

CUB_URL = "https://www.vision.caltech.edu/datasets/cub_200_2011/"
CARS_URL = "https://ai.stanford.edu/~jkrause/cars/car_dataset.html"
Split = Literal["train", "test", "all"]


def _class_rows(class_ids: np.ndarray, split: str, last_train_class: int) -> np.ndarray:
    """Rows of ``split``: class ids up to ``last_train_class`` train, the rest test."""
    return {
        "train": class_ids <= last_train_class,
        "test": class_ids > last_train_class,
        "all": np.ones(len(class_ids), dtype=bool),
    }[split]


@DATASETS.register("cub200")
class CUB200(LabeledDataset):
    """Caltech-UCSD Birds-200-2011: 11,788 images of 200 bird species.

    Layout (``root`` may also be the folder that holds ``CUB_200_2011/``)::

        root/images.txt               <image_id> <class folder>/<file>.jpg
        root/image_class_labels.txt   <image_id> <class_id 1..200>
        root/classes.txt              <class_id> <class name, e.g. 001.Black_footed_Albatross>
        root/images/<class folder>/<file>.jpg

    ``split="train"`` holds classes 1-100 (5,864 images), ``"test"`` classes 101-200 (5,924),
    ``"all"`` both; labels number the split's classes in class-id order, ``class_names`` are the
    names from ``classes.txt`` and ``extra["item_id"]`` the image ids. Download: https://www.vision.caltech.edu/datasets/cub_200_2011/.
    """

    def __init__(
        self,
        root: str | Path,
        split: Split = "train",
        *,
        image_size: ImageSize = None,
        channels: int = 3,
        strict: bool = False,
        check: CheckMode = "fast",
    ) -> None:
        check_split(split, ("train", "test", "all"), "CUB-200-2011")
        base = Path(root)
        if not (base / "images.txt").exists() and (base / "CUB_200_2011" / "images.txt").exists():
            base = base / "CUB_200_2011"
        images = read_rows(require(base / "images.txt", "CUB-200-2011", CUB_URL), 2)
        labels_file = require(base / "image_class_labels.txt", "CUB-200-2011", CUB_URL)
        class_of = dict(read_rows(labels_file, 2))
        names = dict(read_rows(require(base / "classes.txt", "CUB-200-2011", CUB_URL), 2))
        unlabeled = [image_id for image_id, _ in images if image_id not in class_of]
        if unlabeled:
            raise ValueError(
                f"{labels_file} has no class for image id(s) {unlabeled[:5]}; the annotation "
                "files do not match, download the data set again"
            )
        image_ids = np.array([int(image_id) for image_id, _ in images], dtype=np.int64)
        class_ids = np.array([int(class_of[image_id]) for image_id, _ in images], dtype=np.int64)
        rows = _class_rows(class_ids, split, 100)
        paths = [
            str(base / "images" / rel) for (_, rel), keep in zip(images, rows, strict=True) if keep
        ]
        options = FileOptions(
            image_size, channels, strict, check, {int(k): v for k, v in names.items()}
        )
        self._set_files(paths, class_ids[rows], {"item_id": image_ids[rows]}, options)


def _load_cars_annotations(path: Path) -> tuple[np.ndarray, list[str]]:
    """The ``annotations`` struct array and the class names of ``cars_annos.mat``."""
    from scipy.io import loadmat

    try:
        mat = loadmat(str(path), squeeze_me=True)
    except (ValueError, OSError, TypeError) as err:
        raise ValueError(
            f"{path} is not a readable MATLAB file ({err}); download it again"
        ) from None
    fields = ("relative_im_path", "bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2", "class", "test")
    annotations = np.atleast_1d(mat.get("annotations", np.array([])))
    present = annotations.dtype.names or ()
    missing = [f for f in fields if f not in present]
    if "class_names" not in mat or missing:
        raise ValueError(
            f"{path} must hold a struct array 'annotations' with fields {', '.join(fields)} and "
            f"a cell array 'class_names'; missing: {missing or ['class_names']}"
        )
    return annotations, [str(name) for name in np.atleast_1d(mat["class_names"])]


@DATASETS.register("cars196")
class Cars196(LabeledDataset):
    """Stanford Cars: 16,185 images of 196 car models, from ``cars_annos.mat``.

    Layout: ``root/cars_annos.mat`` (struct array ``annotations`` with fields
    ``relative_im_path`` (``car_ims/000001.jpg``), ``bbox_x1``, ``bbox_y1``, ``bbox_x2``,
    ``bbox_y2``, ``class`` (1..196), ``test``; cell array ``class_names``) and
    ``root/car_ims/*.jpg``. Read with ``scipy.io.loadmat``.

    ``split="train"`` holds classes 1-98 (8,054 images), ``"test"`` classes 99-196 (8,131),
    ``"all"`` both. ``extra``: ``"bbox"`` ``(n, 4)`` as ``x1, y1, x2, y2`` (images are not
    cropped), ``"item_id"`` the 1-based annotation index, and ``"classification_test"`` the
    file's ``test`` flag (the classification split, unused by the metric learning split).
    Download:
    https://ai.stanford.edu/~jkrause/cars/car_dataset.html.
    """

    def __init__(
        self,
        root: str | Path,
        split: Split = "train",
        *,
        image_size: ImageSize = None,
        channels: int = 3,
        strict: bool = False,
        check: CheckMode = "fast",
    ) -> None:
        check_split(split, ("train", "test", "all"), "Cars196")
        base = Path(root)
        annotations, names = _load_cars_annotations(
            require(base / "cars_annos.mat", "Cars196", CARS_URL)
        )
        class_ids = annotations["class"].astype(np.int64)
        rows = _class_rows(class_ids, split, 98)
        corners = ("bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2")
        extra = {
            "bbox": np.stack([annotations[c].astype(np.int64) for c in corners], axis=1)[rows],
            "item_id": np.arange(1, len(annotations) + 1, dtype=np.int64)[rows],
            "classification_test": annotations["test"].astype(bool)[rows],
        }
        paths = [str(base / str(rel)) for rel in annotations["relative_im_path"][rows]]
        options = FileOptions(
            image_size, channels, strict, check, {i + 1: n for i, n in enumerate(names)}
        )
        self._set_files(paths, class_ids[rows], extra, options)
