"""Labeled Faces in the Wild: the people folders, and the 10-fold verification pairs."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Literal

import numpy as np
from torch import Tensor
from torch.utils.data import Dataset

from .base import DATASETS, FileOptions, LabeledDataset, check_split, require
from .folders import folder_items
from .images import CheckMode, ImageSize

LFW_URL = "http://vis-www.cs.umass.edu/lfw/"


@DATASETS.register("lfw")
class LFWDataset(LabeledDataset):
    """The LFW images, one class per person: ``root/lfw/<Name>/<Name>_<NNNN>.jpg``.

    13,233 images of 5,749 people; labels number the people in sorted name order and
    ``class_names`` are the names. The only split is ``"all"``; the verification protocol is
    :class:`LFWPairs`. From Huang et al., "Labeled Faces in the Wild: A Database for Studying
    Face Recognition in Unconstrained Environments", UMass TR 07-49, 2007. Download:
    http://vis-www.cs.umass.edu/lfw/.
    """

    def __init__(
        self,
        root: str | Path,
        split: Literal["all"] = "all",
        *,
        image_size: ImageSize = None,
        channels: int = 3,
        strict: bool = False,
        check: CheckMode = "fast",
    ) -> None:
        check_split(split, ("all",), "LFW")
        folder = require(Path(root) / "lfw", "LFW", LFW_URL)
        paths, raw, people = folder_items(folder, empty_ok=True)
        options = FileOptions(image_size, channels, strict, check, dict(enumerate(people)))
        self._set_files(paths, raw, {}, options)


def _parse_pairs(path: Path) -> tuple[list[list[str]], np.ndarray, np.ndarray]:
    """Rows of ``pairs.txt``, their fold ids and same-person flags, checked against its header.

    The header is ``<folds> <pairs per kind>`` (``10 300``) or a single count (one fold, as in
    ``pairsDevTrain.txt``); each fold lists its same-person lines ``name i j`` then its
    different-person lines ``name1 i name2 j``.
    """
    lines = [line.split() for line in path.read_text().splitlines() if line.strip()]
    header = lines[0] if lines else []
    if len(header) not in (1, 2) or not all(h.isdigit() for h in header):
        raise ValueError(
            f"{path} line 1 must be '<folds> <pairs per fold>' such as '10 300'; "
            f"got {' '.join(header)!r}"
        )
    folds, per_kind = (1, int(header[0])) if len(header) == 1 else (int(header[0]), int(header[1]))
    rows = lines[1:]
    if len(rows) != 2 * folds * per_kind:
        raise ValueError(
            f"{path} declares {folds} fold(s) of {per_kind} + {per_kind} pairs = "
            f"{2 * folds * per_kind} lines after the header; got {len(rows)}"
        )
    position = np.arange(len(rows))
    is_same = (position % (2 * per_kind)) < per_kind
    for number, (row, same) in enumerate(zip(rows, is_same.tolist(), strict=True), start=2):
        if len(row) != (3 if same else 4):
            kind = "'name i j'" if same else "'name1 i name2 j'"
            raise ValueError(f"{path} line {number}: expected {kind}; got {' '.join(row)!r}")
    return rows, position // (2 * per_kind), is_same


class LFWPairs(Dataset[tuple[Tensor, Tensor, int]]):
    """The LFW verification pairs of ``root/pairs.txt``, over the images of :class:`LFWDataset`.

    Items are ``(image1, image2, is_same)``. Attributes: ``images`` (the :class:`LFWDataset`),
    ``pair_indices`` ``(n, 2)`` int64 rows of ``images`` (embed the images once, then compare
    the pairs), ``pair_paths``, ``is_same`` ``(n,)`` bool and ``fold`` ``(n,)`` int64 (0..9 in
    the standard file: 300 same-person and 300 different-person pairs per fold). Pairs whose
    image is missing or unreadable are dropped with a warning and listed in ``skipped_pairs``
    as ``(line, reason)``, or raise a ValueError with ``strict=True``; the per-fold counts then
    differ from the protocol's, which the warning says. Download: http://vis-www.cs.umass.edu/lfw/.
    """

    def __init__(
        self,
        root: str | Path,
        *,
        image_size: ImageSize = None,
        channels: int = 3,
        strict: bool = False,
        check: CheckMode = "fast",
    ) -> None:
        pairs_file = require(Path(root) / "pairs.txt", "LFW", LFW_URL)
        rows, fold, is_same = _parse_pairs(pairs_file)
        self.images = LFWDataset(
            root, image_size=image_size, channels=channels, strict=strict, check=check
        )
        index = {path: i for i, path in enumerate(self.images.paths or [])}
        unreadable = dict(self.images.skipped)
        folder = Path(root) / "lfw"

        def image_path(name: str, number: str) -> str:
            return str(folder / name / f"{name}_{int(number):04d}.jpg")

        pairs, keep, self.skipped_pairs = [], [], []
        for row in rows:
            first = image_path(row[0], row[1])
            second = image_path(row[0], row[2]) if len(row) == 3 else image_path(row[2], row[3])
            bad = [p for p in (first, second) if p not in index]
            keep.append(not bad)
            if bad:
                why = unreadable.get(bad[0], "missing file")
                self.skipped_pairs.append((" ".join(row), f"{bad[0]}: {why}"))
            else:
                pairs.append((index[first], index[second]))
        self._report(pairs_file, len(rows), strict)
        kept = np.array(keep, dtype=bool)
        self.pair_indices = np.array(pairs, dtype=np.int64).reshape(-1, 2)
        self.is_same, self.fold = is_same[kept], fold[kept].astype(np.int64)

    def _report(self, pairs_file: Path, total: int, strict: bool) -> None:
        if not self.skipped_pairs:
            return
        listed = "; ".join(f"'{line}' ({why})" for line, why in self.skipped_pairs[:3])
        message = (
            f"{pairs_file}: {len(self.skipped_pairs)} of {total} pair(s) name an image that is "
            f"missing or unreadable: {listed}"
        )
        if strict:
            raise ValueError(
                f"{message}. Restore the images, or pass strict=False to drop the pairs"
            )
        warnings.warn(
            f"{message}. Dropped them (folds now have unequal sizes); see skipped_pairs",
            stacklevel=3,
        )

    @property
    def pair_paths(self) -> list[tuple[str, str]]:
        """The two image files of each pair."""
        paths = self.images.paths or []
        return [(paths[a], paths[b]) for a, b in self.pair_indices.tolist()]

    def __len__(self) -> int:
        return len(self.pair_indices)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor, int]:
        first, second = self.pair_indices[index].tolist()
        return (
            self.images.load_input(first),
            self.images.load_input(second),
            int(self.is_same[index]),
        )
