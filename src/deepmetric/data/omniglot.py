"""Omniglot in its native layout: alphabets of hand-drawn characters."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np

from .base import DATASETS, FileOptions, LabeledDataset, check_split, require
from .images import CheckMode, ImageSize

OMNIGLOT_URL = "https://github.com/brendenlake/omniglot"
_FOLDERS = {
    "background": "images_background",
    "train": "images_background",
    "evaluation": "images_evaluation",
    "test": "images_evaluation",
}


def _subfolders(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


@DATASETS.register("omniglot")
class Omniglot(LabeledDataset):
    """Omniglot: 1,623 characters from 50 alphabets, 20 drawings each (105x105 PNG).

    Layout: ``root/images_background/<alphabet>/<character>/<file>.png`` (30 alphabets, 964
    characters) and ``root/images_evaluation/...`` (20 alphabets, 659 characters), as in the
    unzipped ``images_background.zip`` and ``images_evaluation.zip``. ``split`` is
    ``"background"`` (alias ``"train"``) or ``"evaluation"`` (alias ``"test"``); the two share
    no alphabet. A class is one character, named ``"<alphabet>/<character>"`` and numbered in
    sorted order; ``extra["alphabet"]`` holds each item's alphabet name. The images are
    black strokes on white; use ``channels=1`` for a single channel. From Lake et al.,
    "Human-level concept learning through probabilistic program induction", Science 2015.
    Download: https://github.com/brendenlake/omniglot.
    """

    def __init__(
        self,
        root: str | Path,
        split: Literal["background", "evaluation", "train", "test"] = "background",
        *,
        image_size: ImageSize = None,
        channels: int = 3,
        strict: bool = False,
        check: CheckMode = "fast",
    ) -> None:
        check_split(split, tuple(_FOLDERS), "Omniglot")
        folder = require(Path(root) / _FOLDERS[split], "Omniglot", OMNIGLOT_URL)
        characters = [c for alphabet in _subfolders(folder) for c in _subfolders(alphabet)]
        if not characters:
            raise ValueError(f"{folder} has no <alphabet>/<character>/ folders of images")
        files = [
            sorted(p for p in c.iterdir() if p.is_file() and not p.name.startswith("."))
            for c in characters
        ]
        counts = [len(group) for group in files]
        names = {i: f"{c.parent.name}/{c.name}" for i, c in enumerate(characters)}
        alphabets = np.array([c.parent.name for c in characters], dtype=str)
        raw = np.repeat(np.arange(len(characters)), counts)
        paths = [str(p) for group in files for p in group]
        options = FileOptions(image_size, channels, strict, check, names)
        self._set_files(paths, raw, {"alphabet": alphabets[raw]}, options)
