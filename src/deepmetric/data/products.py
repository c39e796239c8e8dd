"""Product retrieval benchmarks in their native layouts: Stanford Online Products, In-shop."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np

from .base import DATASETS, FileOptions, LabeledDataset, check_split, read_rows, require
from .images import CheckMode, ImageSize

SOP_URL = "https://cvgl.stanford.edu/projects/lifted_struct/"
INSHOP_URL = "https://mmlab.ie.cuhk.edu.hk/projects/DeepFashion/InShopRetrieval.html"


@DATASETS.register("sop")
class StanfordOnlineProducts(LabeledDataset):
    """Stanford Online Products: 120,053 images of 22,634 products in 12 super-classes.

    Layout: ``root/Ebay_train.txt`` and ``root/Ebay_test.txt``, each a header line then rows
    ``image_id class_id super_class_id path`` with ``path`` relative to ``root``
    (``bicycle_final/111085122871_0.JPG``). The split is the files' own, class-disjoint:
    ``"train"`` has 11,318 products (59,551 images), ``"test"`` 11,316 (60,502). Labels number
    the ``class_id`` values in order; ``extra`` holds ``"item_id"`` (image id) and
    ``"super_class"`` (1..12). From Oh Song et al., "Deep Metric Learning via Lifted Structured
    Feature Embedding", CVPR 2016 (https://arxiv.org/abs/1511.06452). Download:
    https://cvgl.stanford.edu/projects/lifted_struct/.
    """

    def __init__(
        self,
        root: str | Path,
        split: Literal["train", "test"] = "train",
        *,
        image_size: ImageSize = None,
        channels: int = 3,
        strict: bool = False,
        check: CheckMode = "fast",
    ) -> None:
        check_split(split, ("train", "test"), "Stanford Online Products")
        base = Path(root)
        listing = require(base / f"Ebay_{split}.txt", "Stanford Online Products", SOP_URL)
        rows = read_rows(listing, 4, skip=1)
        table = np.array([row[:3] for row in rows], dtype=np.int64).reshape(len(rows), 3)
        extra = {"item_id": table[:, 0], "super_class": table[:, 2]}
        paths = [str(base / row[3]) for row in rows]
        self._set_files(paths, table[:, 1], extra, FileOptions(image_size, channels, strict, check))


def _inshop_listing(base: Path) -> tuple[Path, Path]:
    """``(list_eval_partition.txt, folder its image paths are relative to)``."""
    official = base / "Eval" / "list_eval_partition.txt"
    if official.exists():
        return official, base / "Img"
    return require(base / "list_eval_partition.txt", "DeepFashion In-shop", INSHOP_URL), base


@DATASETS.register("inshop")
class InShop(LabeledDataset):
    """DeepFashion In-shop Clothes Retrieval: 52,712 images of 7,982 clothing items.

    Layout: ``root/Eval/list_eval_partition.txt`` with images under ``root/Img/`` (the
    official archive), or ``root/list_eval_partition.txt`` with images under ``root/``. The
    list file has a count line, a header line, then rows ``image_name item_id
    evaluation_status`` (``img/WOMEN/Dresses/id_00000002/02_1_front.jpg id_00000002 train``).

    Splits: ``"train"`` (3,997 items, 25,882 images), ``"query"`` (14,218 images),
    ``"gallery"`` (12,612 images), and ``"test"`` = query + gallery. Query, gallery and test
    share one numbering of the test items (sorted ids), so a query and its gallery matches
    have the same label. ``extra``: ``"item_id"`` (the id string), ``"is_query"``,
    ``"is_gallery"``. From Liu et al., "DeepFashion: Powering Robust Clothes Recognition and
    Retrieval with Rich Annotations", CVPR 2016. Download:
    https://mmlab.ie.cuhk.edu.hk/projects/DeepFashion/InShopRetrieval.html.
    """

    def __init__(
        self,
        root: str | Path,
        split: Literal["train", "query", "gallery", "test"] = "train",
        *,
        image_size: ImageSize = None,
        channels: int = 3,
        strict: bool = False,
        check: CheckMode = "fast",
    ) -> None:
        check_split(split, ("train", "query", "gallery", "test"), "DeepFashion In-shop")
        listing, images = _inshop_listing(Path(root))
        table = np.array(read_rows(listing, 3, skip=2), dtype=str).reshape(-1, 3)
        status = table[:, 2]
        unknown = sorted(set(status.tolist()) - {"train", "query", "gallery"})
        if unknown:
            raise ValueError(
                f"{listing}: evaluation_status must be train, query or gallery; got {unknown}"
            )
        wanted = {"train": ["train"], "query": ["query"], "gallery": ["gallery"]}
        rows = np.isin(status, wanted.get(split, ["query", "gallery"]))
        classes = None if split == "train" else np.unique(table[status != "train", 1])
        extra = {
            "item_id": table[rows, 1],
            "is_query": status[rows] == "query",
            "is_gallery": status[rows] == "gallery",
        }
        paths = [str(images / name) for name in table[rows, 0]]
        options = FileOptions(image_size, channels, strict, check)
        self._set_files(paths, table[rows, 1], extra, options, classes=classes)
