"""Arrays stored in a ``.npz`` archive: images or vectors, labels, and fields to select rows by.

``NpzDataset`` reads a few named arrays with a plain ``np.load(path)``: pickled (object) arrays
are refused, so reading a file never runs code from it. A ``where`` mapping keeps the rows whose
fields match, which expresses group-disjoint splits in a config, e.g. Omniglot's zero-shot
protocol (train on alphabets 0-19, test on the characters of the unseen alphabets 20-29)::

    train: {name: npz, path: omniglot28_background.npz, where: {alphabet: {min: 0, max: 19}}}
    test: {name: npz, path: omniglot28_background.npz, where: {alphabet: {min: 20, max: 29}}}
"""

from __future__ import annotations

import os
import zipfile
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .arrays import ArrayDataset
from .base import DATASETS
from .images import ImageSize, check_channels
from .unlabelled import drop_labels

Where = Mapping[str, Any]
_SAVE_HINT = "write it with numpy.savez(path, images=..., labels=...)"
_LUMA = torch.tensor([0.299, 0.587, 0.114])  # ITU-R 601-2, as PIL's convert("L")


def _open(path: Path) -> Any:
    """The lazily read archive at ``path``; bad files raise with the file and the fix."""
    if not path.is_file():
        where = "" if path.is_absolute() else f" (relative to the working directory {os.getcwd()})"
        raise FileNotFoundError(
            f"npz: {path}{where} does not exist or is not a file; pass the path of a .npz "
            "archive, e.g. --set data.train.path=/data/file.npz"
        )
    try:
        archive = np.load(path)  # allow_pickle stays False: a file never runs code
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as err:
        raise ValueError(f"{path} is not a readable .npz archive ({err}); {_SAVE_HINT}") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise ValueError(f"{path} holds a single .npy array, not a .npz archive; {_SAVE_HINT}")
    return archive


def _files(path: Path) -> list[str]:
    """The names of the arrays in the archive at ``path``."""
    with _open(path) as archive:
        return list(archive.files)


def _read(path: Path, keys: Sequence[str]) -> dict[str, np.ndarray]:
    """The arrays ``keys`` of the archive at ``path`` (each read once)."""
    out: dict[str, np.ndarray] = {}
    with _open(path) as archive:
        for key in dict.fromkeys(keys):
            if key not in archive.files:
                present = ", ".join(repr(k) for k in archive.files) or "none"
                raise KeyError(
                    f"{path} has no array {key!r}; its arrays: {present}. Name one of them "
                    "(inputs=, labels=, class_names=, extra=, where=) or add it to the file"
                )
            try:
                out[key] = np.asarray(archive[key])
            except ValueError as err:
                if "allow_pickle" not in str(err):
                    raise ValueError(
                        f"{path}: array {key!r} is damaged ({err}); write it again"
                    ) from None
                raise ValueError(
                    f"{path}: array {key!r} cannot be read without pickle ({err}); store it "
                    "with a plain dtype, e.g. strings as fixed-width unicode (array.astype(str))"
                ) from None
            except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as err:
                raise ValueError(
                    f"{path}: array {key!r} is damaged ({err}); write it again"
                ) from None
    return out


def _describe(column: np.ndarray) -> str:
    """A short account of the values a field holds, for error messages."""
    distinct = np.unique(column)
    if len(distinct) <= 10:
        return f"values {distinct.tolist()}"
    if column.dtype.kind in "iuf":
        return f"{len(distinct)} values in [{distinct[0]}, {distinct[-1]}]"
    return f"{len(distinct)} values such as {distinct[:5].tolist()}"


def _range_rows(path: Path, field: str, column: np.ndarray, bounds: Mapping[str, Any]) -> Any:
    """Rows with ``min <= column <= max``; either bound may be left out."""
    unknown = [k for k in bounds if k not in ("min", "max")]
    if unknown or not bounds:
        raise ValueError(
            f"where.{field} must be a list of values or {{min: ..., max: ...}} (inclusive, "
            f"either may be left out); got {dict(bounds)!r}"
        )
    for key, bound in bounds.items():
        if isinstance(bound, bool) or not isinstance(bound, int | float):
            raise ValueError(f"where.{field}.{key} must be a number; got {bound!r}")
    if column.dtype.kind not in "iuf":
        raise ValueError(
            f"where.{field}: a min/max range needs a numeric field; {path} stores {field!r} "
            f"as {column.dtype}; list the values instead"
        )
    low, high = bounds.get("min", -np.inf), bounds.get("max", np.inf)
    return (column >= low) & (column <= high)


def _value_rows(path: Path, field: str, column: np.ndarray, values: Any) -> Any:
    """Rows whose field is one of ``values``; a value that matches no row raises."""
    listed = [values] if isinstance(values, str | int | float) else values
    if not isinstance(listed, Sequence) or not listed:
        raise ValueError(
            f"where.{field} must be a value, a non-empty list of values or "
            f"{{min: ..., max: ...}}; got {values!r}"
        )
    wanted = np.asarray(listed)
    unmatched = wanted[~np.isin(wanted, column)].tolist()
    if unmatched:
        raise ValueError(
            f"where.{field}: {unmatched} match no row of {path}; {field!r} holds "
            f"{_describe(column)}"
        )
    return np.isin(column, wanted)


def _select(path: Path, where: Where, arrays: Mapping[str, np.ndarray], n: int) -> np.ndarray:
    """The indices of the rows that every ``where`` condition keeps."""
    keep = np.ones(n, dtype=bool)
    for field, condition in where.items():
        column = arrays[field]
        if isinstance(condition, Mapping):
            keep &= _range_rows(path, field, column, condition)
        else:
            keep &= _value_rows(path, field, column, condition)
        if not keep.any():
            raise ValueError(
                f"where {dict(where)!r} selects no row of {path} (at {field!r}, which holds "
                f"{_describe(column)}); widen the selection"
            )
    return np.flatnonzero(keep)


def _check_lengths(path: Path, arrays: Mapping[str, np.ndarray], inputs: str, rows: Any) -> int:
    """The number of items: every per-item array has one entry per row of ``inputs``."""
    n = len(arrays[inputs]) if arrays[inputs].ndim else 0
    for key in rows:
        value = arrays[key]
        if value.ndim != 1 or len(value) != n:
            raise ValueError(
                f"{path}: array {key!r} must be 1-D with one entry per row of {inputs!r} "
                f"({n}); got shape {value.shape}"
            )
    return n


@DATASETS.register("npz")
class NpzDataset(ArrayDataset):
    """Images or vectors and their labels from named arrays of a ``.npz`` file.

    Reads ``path`` with ``np.load`` (object arrays refused: loading never executes code).
    ``inputs`` names the ``(n, dim)``, ``(n, height, width)`` or ``(n, channels, height,
    width)`` array (uint8 images are divided by 255, float images must lie in [0, 1]; see
    :class:`ArrayDataset`), ``labels`` the ``(n,)`` integer or string labels, numbered in sorted
    order; with ``labels=None``, or a file without a ``labels`` array, the items are unlabelled
    (:mod:`deepmetric.data.unlabelled`). ``class_names`` optionally names a per-class array
    indexed by the raw integer label (e.g. Omniglot's ``class_name``). ``where`` keeps the rows
    whose fields match, every condition at once: ``{field: [v1, v2]}`` (one of the values; a
    value with no row is an error), ``{field: v}`` or ``{field: {min: a, max: b}}`` (inclusive;
    either bound optional).
    ``extra`` names per-item arrays kept in ``dataset.extra``; ``extra["item_id"]`` is each
    item's row in the file. ``channels`` converts images to 1 (luma, as PIL's ``"L"``) or 3
    (greyscale repeated) channels; None keeps the file's.

    Example:
        >>> import os, tempfile
        >>> path = os.path.join(tempfile.mkdtemp(), "toy.npz")
        >>> images = np.arange(16, dtype=np.uint8).reshape(4, 2, 2)
        >>> np.savez(path, images=images, labels=[5, 5, 7, 7], group=[0, 1, 0, 1])
        >>> data = NpzDataset(path, where={"group": [1]})
        >>> len(data), data.class_names, data.extra["item_id"].tolist(), data[0][0].shape
        (2, ['5', '7'], [1, 3], torch.Size([1, 2, 2]))
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        inputs: str = "images",
        labels: str | None = "labels",
        where: Where | None = None,
        class_names: str | None = None,
        extra: Sequence[str] = (),
        image_size: ImageSize = None,
        channels: int | None = None,
    ) -> None:
        file = Path(path)
        if isinstance(extra, str):
            raise ValueError(f"extra must be a list of array names; got {extra!r}")
        where = dict(where or {})
        named = [k for k in (class_names,) if k is not None]
        if labels == "labels" and labels not in _files(file):
            labels = None  # a file without labels: unlabelled items
        keys = [] if labels is None else [labels]
        arrays = _read(file, [inputs, *keys, *where, *extra, *named])
        n = _check_lengths(file, arrays, inputs, [*keys, *where, *extra])
        rows = _select(file, where, arrays, n)
        raw, names = np.zeros(len(rows), np.int64) if labels is None else arrays[labels][rows], None
        if class_names is not None:
            names, raw = _named_classes(file, raw, arrays[class_names], class_names)
        try:
            super().__init__(arrays[inputs][rows], raw, class_names=names, image_size=image_size)
        except ValueError as err:
            raise ValueError(f"{file}: {err}") from None
        self.extra = {"item_id": rows, **{key: arrays[key][rows] for key in extra}}
        if labels is None:
            drop_labels(self)
        if channels is not None:
            if self.inputs.dim() == 2:
                raise ValueError(f"channels applies to images only; got {channels!r} for vectors")
            self.channels = check_channels(channels)
        self.path = file

    def load_input(self, index: int) -> Tensor:
        item = super().load_input(index)
        if item.dim() == 3 and item.shape[0] != self.channels:
            if self.channels == 3:
                return item.expand(3, -1, -1).clone()
            return torch.einsum("chw,c->hw", item, _LUMA)[None]
        return item


def _named_classes(
    path: Path, raw: np.ndarray, names: np.ndarray, key: str
) -> tuple[list[str], np.ndarray]:
    """The names of the classes present and contiguous ids, from a per-class names array."""
    if names.ndim != 1:
        raise ValueError(f"{path}: class_names array {key!r} must be 1-D; got shape {names.shape}")
    if not np.issubdtype(raw.dtype, np.integer):
        raise ValueError(
            f"{path}: class_names={key!r} needs integer labels to index it; got {raw.dtype}"
        )
    present, ids = np.unique(raw, return_inverse=True)
    if len(present) and (present[0] < 0 or present[-1] >= len(names)):
        raise ValueError(
            f"{path}: labels must index {key!r} (length {len(names)}); "
            f"got labels in [{present[0]}, {present[-1]}]"
        )
    return [str(name) for name in names[present].tolist()], ids.reshape(-1)


__all__ = ["NpzDataset"]
