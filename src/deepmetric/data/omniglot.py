"""Omniglot: alphabets of hand-drawn characters, bundled (28x28) or in its native layout.

Lake, Salakhutdinov & Tenenbaum, "Human-level concept learning through probabilistic program
induction", Science 350(6266), 2015. MIT licence, copyright (c) 2015 Brenden Lake; the bundled
copy's licence is ``bundled/OMNIGLOT_LICENSE.txt``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
from torch import Tensor

from .arrays import ArrayDataset
from .base import DATASETS, FileOptions, LabeledDataset, check_split, require
from .images import CheckMode, ImageSize, check_channels

OMNIGLOT_URL = "https://github.com/brendenlake/omniglot"
BUNDLED = Path(__file__).parent / "bundled" / "omniglot28_background.npz"
_FOLDERS = {
    "background": "images_background",
    "train": "images_background",
    "evaluation": "images_evaluation",
    "test": "images_evaluation",
}


def _subfolders(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _drawing(path: Path) -> int:
    """The drawer number of a native file name ``<character id>_<drawer>.png`` (0 if none)."""
    tail = path.stem.rpartition("_")[2]
    return int(tail) if tail.isdigit() else 0


class Omniglot(LabeledDataset):
    """Omniglot in its native layout: 1,623 characters of 50 alphabets, 20 drawings each.

    Layout: ``root/images_background/<alphabet>/<character>/<file>.png`` (30 alphabets, 964
    characters) and ``root/images_evaluation/...`` (20 alphabets, 659 characters), as in the
    unzipped ``images_background.zip`` and ``images_evaluation.zip``. ``split`` is
    ``"background"`` (alias ``"train"``) or ``"evaluation"`` (alias ``"test"``); the two share
    no alphabet. A class is one character, named ``"<alphabet>/<character>"`` and numbered in
    sorted order; ``extra["alphabet"]`` holds each item's alphabet name and
    ``extra["drawing"]`` its drawer (the ``_NN`` of the file name). The images are black
    strokes on white (``ink="black"``); ``ink="white"`` inverts them to white on black, the
    convention of the bundled set. Use ``channels=1`` for a single channel. Download:
    https://github.com/brendenlake/omniglot. ``build_dataset({"name": "omniglot"})`` without a
    root gives the bundled 28x28 background set instead (:func:`omniglot`).
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
        ink: Literal["black", "white"] = "black",
    ) -> None:
        check_split(split, tuple(_FOLDERS), "Omniglot")
        if ink not in ("black", "white"):
            raise ValueError(f"Omniglot ink must be 'black' or 'white'; got {ink!r}")
        self.ink = ink
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
        drawing = np.array([_drawing(p) for group in files for p in group], dtype=np.int64)
        options = FileOptions(image_size, channels, strict, check, names)
        self._set_files(paths, raw, {"alphabet": alphabets[raw], "drawing": drawing}, options)

    def load_input(self, index: int) -> Tensor:
        image = super().load_input(index)
        return 1.0 - image if self.ink == "white" else image


def bundled_omniglot(
    alphabets: Sequence[str] | None = None,
    *,
    image_size: ImageSize = None,
    channels: int = 1,
) -> ArrayDataset:
    """The bundled background set: 19,280 drawings of 964 characters from 30 alphabets, 28x28.

    White ink (1.0) on black paper (0.0), reduced from the 105x105 originals with an area
    filter. Classes are characters named ``"<alphabet>/characterNN"``; ``extra["alphabet"]``
    holds each item's alphabet name, ``extra["drawing"]`` its drawer (1-20) and
    ``extra["item_id"]`` its row in the bundled file. ``alphabets`` keeps those alphabets only.

    Example:
        >>> data = bundled_omniglot(["Latin"])
        >>> len(data), data.num_classes, data.class_names[0], data[0][0].shape
        (520, 26, 'Latin/character01', torch.Size([1, 28, 28]))
    """
    with np.load(BUNDLED) as npz:  # allow_pickle stays False
        arrays = {k: npz[k] for k in ("images", "labels", "alphabet", "drawing", "class_name")}
        names = npz["alphabet_names"]
    alphabet = names[arrays["alphabet"]]
    rows = np.arange(len(alphabet))
    if alphabets is not None:
        if isinstance(alphabets, str) or not alphabets:
            raise ValueError(f"alphabets must be a non-empty list of names; got {alphabets!r}")
        unknown = sorted(set(alphabets) - set(names.tolist()))
        if unknown:
            raise ValueError(
                f"omniglot alphabets: {unknown} are not alphabets of the background set "
                f"(known: {', '.join(names.tolist())})"
            )
        rows = np.flatnonzero(np.isin(alphabet, list(alphabets)))
    data = ArrayDataset(
        arrays["images"][rows],
        arrays["labels"][rows],
        class_names=[str(n) for n in arrays["class_name"].tolist()],
        image_size=image_size,
    )
    data = data.subset(np.arange(len(rows)))  # drop the class names of absent characters
    data.channels = check_channels(channels)
    data.extra = {
        "alphabet": alphabet[rows].astype(str),
        "drawing": arrays["drawing"][rows].astype(np.int64),
        "item_id": rows.astype(np.int64),
    }
    if data.channels == 3:
        data.inputs = data.inputs.expand(-1, 3, -1, -1).contiguous()
    return data


def omniglot(
    root: str | Path | None = None,
    split: Literal["background", "evaluation", "train", "test"] = "background",
    *,
    alphabets: Sequence[str] | None = None,
    image_size: ImageSize = None,
    channels: int | None = None,
    strict: bool = False,
    check: CheckMode = "fast",
    ink: Literal["black", "white"] = "black",
) -> LabeledDataset:
    """Omniglot by name: the bundled 28x28 background set without ``root``, else the native
    layout under ``root`` (:class:`Omniglot`; ``ink="white"`` matches the bundled set's white
    ink on black). ``alphabets`` keeps those alphabets only; ``channels`` defaults to 1 for the
    bundled set and 3 for the native PNGs."""
    if root is None:
        if check_split(split, tuple(_FOLDERS), "Omniglot") not in ("background", "train"):
            raise ValueError(
                "omniglot: only the background split is bundled; for the evaluation split "
                f"download {OMNIGLOT_URL} and set root to the folder holding images_evaluation"
            )
        return bundled_omniglot(alphabets, image_size=image_size, channels=channels or 1)
    data: LabeledDataset = Omniglot(
        root, split, image_size=image_size, channels=channels or 3, strict=strict, check=check,
        ink=ink,
    )  # fmt: skip
    if alphabets is not None:
        data = data.subset(np.flatnonzero(np.isin(data.extra["alphabet"], list(alphabets))))
    return data


DATASETS.register("omniglot")(omniglot)  # type: ignore[arg-type]
