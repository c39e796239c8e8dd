"""Market-1501 person re-identification in its native layout."""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Literal

import numpy as np

from .base import DATASETS, FileOptions, LabeledDataset, check_split, require
from .images import CheckMode, ImageSize

MARKET_URL = "https://zheng-lab.cecs.anu.edu.au/Project/project_reid.html"
_NAME = re.compile(r"^(-1|\d+)_c(\d+)s(\d+)_(\d+)_(\d+)\.jpg$", re.IGNORECASE)
_FOLDERS = {"train": "bounding_box_train", "query": "query", "gallery": "bounding_box_test"}


def _scan(folder: Path) -> tuple[list[str], list[tuple[int, int]], list[tuple[str, str]]]:
    """The ``.jpg`` files of ``folder``: paths, ``(pid, camera)`` each, and misnamed files."""
    paths, ids, misnamed = [], [], []
    for path in sorted(folder.glob("*")):
        if path.suffix.lower() != ".jpg":
            continue  # Thumbs.db and the like ship with the archive
        match = _NAME.match(path.name)
        if match is None:
            reason = "file name is not <pid>_c<camera>s<sequence>_<frame>_<box>.jpg"
            misnamed.append((str(path), reason))
            continue
        paths.append(str(path))
        ids.append((int(match.group(1)), int(match.group(2))))
    return paths, ids, misnamed


@DATASETS.register("market1501")
class Market1501(LabeledDataset):
    """Market-1501: 32,668 boxes of 1,501 identities from 6 cameras.

    Layout: ``root/bounding_box_train/``, ``root/bounding_box_test/`` and ``root/query/``, with
    file names ``<pid>_c<camera>s<sequence>_<frame>_<box>.jpg`` (``0002_c1s1_000451_03.jpg``:
    identity 2, camera 1). Splits: ``"train"`` (751 identities), ``"query"`` (3,368 boxes),
    ``"gallery"`` (bounding_box_test), and ``"test"`` = query + gallery.

    Identities: ``extra["pid"]`` keeps each file's identity as written, including ``-1``
    (junk boxes, to be ignored) and ``0`` (distractors, never a match) in the gallery.
    Labels number the distinct pids in sorted order, so junk and distractors are one class
    each; query, gallery and test share one numbering of the pids found in ``query/`` and
    ``bounding_box_test/``, so a query and its true matches have the same label. Evaluate with
    the Market-1501 protocol (``pid``, ``camera``: same-camera matches and junk excluded), not
    plain retrieval on labels. ``extra`` also holds ``"camera"``, ``"is_query"`` and
    ``"is_gallery"``. Other files (``Thumbs.db``) are ignored; ``.jpg`` files whose name does
    not parse are skipped like unreadable ones. From Zheng et al., "Scalable Person
    Re-identification: A Benchmark", ICCV 2015. Download:
    https://zheng-lab.cecs.anu.edu.au/Project/project_reid.html.
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
        check_split(split, ("train", "query", "gallery", "test"), "Market-1501")
        base = Path(root)
        folders = ["train"] if split == "train" else ["query", "gallery"]
        scans = {f: _scan(require(base / _FOLDERS[f], "Market-1501", MARKET_URL)) for f in folders}
        classes = None
        if split != "train":
            classes = np.unique([pid for f in folders for pid, _ in scans[f][1]])
        chosen = folders if split in ("train", "test") else [split]
        paths = [p for f in chosen for p in scans[f][0]]
        ids = np.array([i for f in chosen for i in scans[f][1]], dtype=np.int64).reshape(-1, 2)
        role = np.array([f for f in chosen for _ in scans[f][0]], dtype=str)
        extra = {
            "pid": ids[:, 0],
            "camera": ids[:, 1],
            "is_query": role == "query",
            "is_gallery": role == "gallery",
        }
        every = {pid for f in folders for pid, _ in scans[f][1]}
        names = {pid: f"{pid:04d}" if pid >= 0 else str(pid) for pid in every}
        options = FileOptions(image_size, channels, strict, check, names)
        misnamed = [m for f in chosen for m in scans[f][2]]
        if misnamed and strict:
            raise ValueError(f"Market-1501: misnamed file(s) {misnamed[:5]}; rename or delete them")
        if misnamed:
            warnings.warn(
                f"Market-1501: skipped {len(misnamed)} misnamed file(s) such as "
                f"{misnamed[0][0]}; the full list is in dataset.skipped",
                stacklevel=2,
            )
        self._set_files(paths, ids[:, 0], extra, options, classes=classes)
        self.skipped = misnamed + self.skipped
