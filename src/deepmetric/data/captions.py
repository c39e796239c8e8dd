"""Images with captions, what an image-text dual encoder trains on: items ``((image,
caption), label)``, the label numbering the distinct captions (two images with one caption
share it, so the clip loss counts both as right answers)."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from .base import DATASETS, FileOptions, LabeledDataset
from .images import CheckMode, ImageSize


class CaptionedImages(LabeledDataset):
    """Images with a caption each: items ``((image, caption), label)``, the label numbering
    the distinct captions (two images with one caption share it). ``inputs`` is ``(n, 3, H,
    W)`` uint8; what a ``DualEncoder`` trains on."""

    def __init__(self, inputs: np.ndarray | Tensor, captions: Sequence[str]) -> None:
        self.inputs = torch.as_tensor(np.asarray(inputs))
        if self.inputs.dim() != 4 or self.inputs.dtype != torch.uint8:
            raise ValueError(f"inputs must be (n, channels, H, W) uint8; got "
                             f"{self.inputs.dtype} {tuple(self.inputs.shape)}")  # fmt: skip
        self.captions = [str(c) for c in captions]
        names, labels = np.unique(np.array(self.captions), return_inverse=True)
        super().__init__(labels.reshape(-1), names.tolist(), channels=int(self.inputs.shape[1]))

    def load_input(self, index: int) -> tuple[Tensor, str]:  # type: ignore[override]
        return self.inputs[index].float() / 255.0, self.captions[index]

    def images(self) -> Tensor:
        """All images, ``(n, C, H, W)`` float in [0, 1]."""
        return self.inputs.float() / 255.0

    def _take_inputs(self, index: np.ndarray) -> None:
        self.inputs = self.inputs[torch.from_numpy(index)]
        self.captions = [self.captions[i] for i in index.tolist()]


@DATASETS.register("captions")
class CaptionFiles(LabeledDataset):
    """Image files with a caption each, listed in a CSV with the columns ``path,caption``
    (paths relative to the CSV's folder); images are read at ``image_size``.

    Example:
        >>> import tempfile
        >>> from PIL import Image
        >>> folder = Path(tempfile.mkdtemp())
        >>> Image.new("RGB", (4, 4), "red").save(folder / "a.png")
        >>> _ = (folder / "c.csv").write_text("path,caption\\na.png,a red square\\n")
        >>> data = CaptionFiles(folder / "c.csv", image_size=2)
        >>> data[0][0][0].shape, data[0][0][1], data.labels.tolist()
        (torch.Size([3, 2, 2]), 'a red square', [0])
    """

    def __init__(
        self, root: str | Path, *, image_size: ImageSize = None, channels: int = 3,
        check: CheckMode = "fast",
    ) -> None:  # fmt: skip
        path = Path(root)
        if not path.is_file():
            raise FileNotFoundError(f"captions: {path} does not exist; root is the CSV file")
        with open(path, newline="") as handle:
            rows = list(csv.DictReader(handle))
        for number, row in enumerate(rows, start=2):
            if not (row.get("path") or "").strip() or not (row.get("caption") or "").strip():
                raise ValueError(f"{path} line {number}: every row needs a path and a caption "
                                 "(header: path,caption)")  # fmt: skip
            image = path.parent / row["path"].strip()
            if not image.is_file():
                raise FileNotFoundError(f"{path} line {number}: image {image} does not exist")
        paths = [str(path.parent / row["path"].strip()) for row in rows]
        self.captions = [row["caption"].strip() for row in rows]
        names = np.array(self.captions)
        self._set_files(paths, names, {}, FileOptions(image_size, channels, True, check))

    def load_input(self, index: int) -> tuple[Tensor, str]:  # type: ignore[override]
        return super().load_input(index), self.captions[index]

    def _take_inputs(self, index: np.ndarray) -> None:
        self.captions = [self.captions[i] for i in index.tolist()]


__all__ = ["CaptionFiles", "CaptionedImages"]
