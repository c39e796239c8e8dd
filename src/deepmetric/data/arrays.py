"""In-memory datasets: arrays of vectors or images, and scikit-learn's bundled digits."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from .base import DATASETS, LabeledDataset, check_split
from .images import ImageSize, image_size_pair


def _as_float_inputs(inputs: np.ndarray | Tensor) -> Tensor:
    """``inputs`` as a tensor: uint8 kept (scaled when read), floats as float32 in [0, 1]."""
    tensor = torch.as_tensor(inputs)
    if tensor.dtype == torch.uint8:
        return tensor
    if not tensor.dtype.is_floating_point:
        raise ValueError(f"inputs must be uint8 or floating point; got dtype {tensor.dtype}")
    tensor = tensor.to(torch.float32)
    if tensor.numel() and not bool(torch.isfinite(tensor).all()):
        raise ValueError("inputs must be finite; got NaN or Inf values")
    return tensor


def _encode(
    labels: Sequence[Any] | np.ndarray | Tensor, class_names: Sequence[str] | None, n: int
) -> tuple[np.ndarray, list[str]]:
    """Contiguous int64 class ids and their names from raw labels (ints or strings)."""
    raw = np.asarray(labels.cpu() if isinstance(labels, Tensor) else labels)
    if raw.shape != (n,):
        raise ValueError(f"labels must have shape ({n},), one per input; got {raw.shape}")
    if class_names is not None:
        if not np.issubdtype(raw.dtype, np.integer):
            raise ValueError(
                f"labels must be integer class ids when class_names is given; got {raw.dtype}"
            )
        return raw.astype(np.int64), list(class_names)
    if raw.dtype.kind not in "iuU":
        raise ValueError(f"labels must be integers or strings; got dtype {raw.dtype}")
    classes, ids = np.unique(raw, return_inverse=True)
    return ids.reshape(-1).astype(np.int64), [str(c) for c in classes.tolist()]


class ArrayDataset(LabeledDataset):
    """Vectors or images held in memory, with integer or string labels.

    ``inputs`` is ``(n, dim)`` (vectors), ``(n, height, width)`` (greyscale images) or
    ``(n, channels, height, width)`` with 1 or 3 channels (channels first: convert a
    channels-last array with ``.transpose(0, 3, 1, 2)``). uint8 images are divided by 255; float
    images must already lie in [0, 1]. Images are resized to ``image_size`` when read, with
    torch's anti-aliased bilinear interpolation (close to PIL's bilinear resize). Raw labels are
    numbered in sorted order unless ``class_names`` is given, in which case ``labels`` must be
    ids into it. ``channels`` is the images' channel count (1 for vectors).

    Example:
        >>> data = ArrayDataset(np.eye(3, dtype=np.float32), ["b", "a", "b"])
        >>> data.labels.tolist(), data.class_names, data[0][0].tolist()
        ([1, 0, 1], ['a', 'b'], [1.0, 0.0, 0.0])
    """

    def __init__(
        self,
        inputs: np.ndarray | Tensor,
        labels: Sequence[Any] | np.ndarray | Tensor,
        *,
        class_names: Sequence[str] | None = None,
        image_size: ImageSize = None,
    ) -> None:
        self.inputs = _as_float_inputs(inputs)
        dims = self.inputs.dim()
        if dims == 3:
            self.inputs = self.inputs.unsqueeze(1)
        if dims not in (2, 3, 4) or (dims == 4 and self.inputs.shape[1] not in (1, 3)):
            raise ValueError(
                "inputs must be (n, dim) vectors, (n, height, width) or (n, channels, height, "
                f"width) images with 1 or 3 channels; got shape {tuple(self.inputs.shape)}"
            )
        if dims == 2 and image_size is not None:
            raise ValueError(f"image_size applies to images only; got {image_size!r} for vectors")
        if self.inputs.dtype == torch.float32 and dims > 2 and self.inputs.numel():
            low, high = float(self.inputs.min()), float(self.inputs.max())
            if low < 0 or high > 1:
                raise ValueError(f"float images must lie in [0, 1]; got values in [{low}, {high}]")
        ids, names = _encode(labels, class_names, len(self.inputs))
        channels = 1 if dims < 4 else int(self.inputs.shape[1])
        super().__init__(ids, names, image_size=image_size, channels=channels)

    def load_input(self, index: int) -> Tensor:
        item = self.inputs[index]
        item = item.to(torch.float32) / 255.0 if item.dtype == torch.uint8 else item.clone()
        size = self.image_size
        if item.dim() == 3 and size is not None and tuple(item.shape[1:]) != size:
            item = torch.nn.functional.interpolate(
                item[None], size=size, mode="bilinear", align_corners=False, antialias=True
            )[0].clamp_(0.0, 1.0)
        return item

    def load_batch(self, index: Tensor) -> Tensor | None:
        """The inputs of items ``index`` stacked as ``load_input`` gives them one at a time, in
        one indexing step; ``None`` when images are resized (then load them one by one)."""
        if self.image_size is not None and self.inputs.dim() != 2:
            return None
        batch = self.inputs[index]
        return batch.to(torch.float32) / 255.0 if batch.dtype == torch.uint8 else batch

    def _take_inputs(self, index: np.ndarray) -> None:
        self.inputs = self.inputs[torch.from_numpy(index)]


def with_rotated_classes(data: ArrayDataset) -> ArrayDataset:
    """``data`` plus its images turned by 90, 180 and 270 degrees, each turn a set of new classes.

    A rotated character is a character nobody writes, so the turns multiply the classes to
    learn from by four (Santoro et al. 2016; Vinyals et al., "Matching Networks for One Shot
    Learning", NeurIPS 2016). Class ``"name"`` turned by 90 degrees is ``"name@90"``; string
    ``extra`` fields (an alphabet) get the same suffix, so a turned group is a group of its own.
    Meant for training sets only; evaluation stays on upright items.

    Example:
        >>> data = with_rotated_classes(ArrayDataset(np.zeros((2, 3, 3), np.uint8), ["a", "b"]))
        >>> len(data), data.class_names
        (8, ['a', 'b', 'a@90', 'b@90', 'a@180', 'b@180', 'a@270', 'b@270'])
    """
    if data.inputs.dim() != 4:
        raise ValueError("rotate_classes needs images (n, channels, height, width); got vectors")
    turns = (0, 90, 180, 270)
    inputs = torch.cat([torch.rot90(data.inputs, t // 90, (2, 3)) for t in turns])
    num = data.num_classes
    labels = np.concatenate([data.labels + i * num for i in range(len(turns))])
    names = [f"{n}@{t}" if t else n for t in turns for n in data.class_names]
    out = ArrayDataset(inputs, labels, class_names=names, image_size=data.image_size)
    out.channels = data.channels
    out.extra = {
        key: np.concatenate(
            [
                value if not t or value.dtype.kind != "U" else np.char.add(value, f"@{t}")
                for t in turns
            ]
        )
        for key, value in data.extra.items()
    }
    return out


@DATASETS.register("digits")
class DigitsDataset(ArrayDataset):
    """scikit-learn's bundled 8x8 digits (1,797 images, classes 0-9): needs no download.

    Items are 1-channel 8x8 images scaled from 0..16 to [0, 1], or with ``as_vectors=True`` the
    same pixels as 64-d vectors (row-major). ``split="all"`` keeps every digit; following the
    class-disjoint convention of metric learning benchmarks, ``"train"`` holds the digits 0-4 and
    ``"test"`` the digits 5-9 (renumbered 0-4; ``class_names`` keeps the digit).
    ``extra["item_id"]`` is the row in ``sklearn.datasets.load_digits()``.

    Example:
        >>> test = DigitsDataset("test")
        >>> len(DigitsDataset()), test.class_names[0], test[0][0].shape
        (1797, '5', torch.Size([1, 8, 8]))
    """

    def __init__(
        self,
        split: Literal["all", "train", "test"] = "all",
        *,
        as_vectors: bool = False,
        image_size: ImageSize = None,
    ) -> None:
        from sklearn.datasets import load_digits

        check_split(split, ("all", "train", "test"), "digits")
        digits = load_digits()
        target = np.asarray(digits.target, dtype=np.int64)
        rows = {"all": target >= 0, "train": target < 5, "test": target >= 5}[split]
        images = np.asarray(digits.images, dtype=np.float32)[rows] / 16.0
        inputs = images.reshape(len(images), -1) if as_vectors else images
        if as_vectors and image_size is not None:
            raise ValueError(
                f"image_size applies to images only; got {image_size!r} with as_vectors=True"
            )
        super().__init__(inputs, target[rows].astype(str), image_size=image_size_pair(image_size))
        self.extra = {"item_id": np.flatnonzero(rows).astype(np.int64)}
