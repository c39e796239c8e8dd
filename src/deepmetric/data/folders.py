"""File-backed generic formats: a folder per class, and a CSV of paths and labels."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from .base import DATASETS, FileOptions, LabeledDataset
from .images import CheckMode, ImageSize
from .unlabelled import drop_labels

_TRUE = {"1", "true", "yes", "y", "t"}
_FALSE = {"0", "false", "no", "n", "f", ""}


def _class_files(folder: Path) -> list[Path]:
    """The non-hidden files directly inside ``folder``, sorted by name."""
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))


@DATASETS.register("folder")
class ImageFolderDataset(LabeledDataset):
    """Images in a folder per class: ``root/<class_name>/<file>`` (root/split/... with a split).

    Classes are the non-hidden sub-folders, numbered in sorted name order; every non-hidden
    file directly inside one is an item. A flat folder (image files, no sub-folders) holds
    unlabelled items, for self-supervised training (:mod:`deepmetric.data.unlabelled`). Files
    that cannot be decoded as images are skipped and reported (see
    :mod:`deepmetric.data.images`). A class whose files are all unreadable has no items and is
    left out; an empty class folder is an error. ``split`` (e.g. ``"train"``) reads
    ``root/<split>/`` instead.

    Example:
        >>> import tempfile
        >>> from PIL import Image
        >>> root = Path(tempfile.mkdtemp())
        >>> for name in ("cat", "dog"):
        ...     (root / name).mkdir()
        ...     Image.new("RGB", (4, 4)).save(root / name / "a.png")
        >>> data = ImageFolderDataset(root, image_size=2)
        >>> data.class_names, data[1][0].shape, data[1][1]
        (['cat', 'dog'], torch.Size([3, 2, 2]), 1)
    """

    def __init__(
        self,
        root: str | Path,
        split: str | None = None,
        *,
        image_size: ImageSize = None,
        channels: int = 3,
        strict: bool = False,
        check: CheckMode = "fast",
    ) -> None:
        folder = Path(root) if split is None else Path(root) / split
        flat = folder.is_dir() and not any(
            p.is_dir() and not p.name.startswith(".") for p in folder.iterdir()
        )
        if flat and _class_files(folder):
            paths = [str(p) for p in _class_files(folder)]
            options = FileOptions(image_size, channels, strict, check)
            self._set_files(paths, np.zeros(len(paths)), {}, options)
            drop_labels(self)
            return
        paths, raw, classes = folder_items(folder)
        options = FileOptions(image_size, channels, strict, check, dict(enumerate(classes)))
        self._set_files(paths, raw, {}, options)


def folder_items(
    folder: Path, *, empty_ok: bool = False
) -> tuple[list[str], np.ndarray, list[str]]:
    """``(paths, class index of each, class names)`` of a folder-per-class tree; an empty class
    folder is an error unless ``empty_ok`` (then it is a class without items)."""
    if not folder.is_dir():
        raise FileNotFoundError(
            f"{folder} is not a directory; expected one sub-folder of images per class "
            "(<folder>/<class_name>/<image>)"
        )
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise ValueError(f"{folder} has no class sub-folders (<folder>/<class_name>/<image>)")
    files = [_class_files(folder / name) for name in classes]
    empty = [str(folder / name) for name, group in zip(classes, files, strict=True) if not group]
    if empty and not empty_ok:
        raise ValueError(
            f"class folder {empty[0]} has no files"
            + (f" (and {len(empty) - 1} more empty class folders)" if len(empty) > 1 else "")
            + "; add its images or remove the folder"
        )
    paths = [str(p) for group in files for p in group]
    raw = np.repeat(np.arange(len(classes)), [len(group) for group in files])
    return paths, raw, classes


def _parse_bool(value: str, column: str, path: Path, line: int) -> bool:
    word = value.strip().lower()
    if word not in _TRUE | _FALSE:
        raise ValueError(f"{path} line {line}: {column} must be 0/1 or true/false; got {value!r}")
    return word in _TRUE


def _numbers_or_strings(values: list[str]) -> np.ndarray:
    """Integers when every value is one (so "10" sorts after "9"), else the strings."""
    try:
        return np.array([int(v) for v in values], dtype=np.int64)
    except ValueError:
        return np.array(values, dtype=str)


def _read_csv(path: Path) -> tuple[list[dict[str, str]], list[str], list[int]]:
    """The rows, the header's columns, and each row's line in the file (blank lines skipped)."""
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        rows, lines = [], []
        for row in reader:
            rows.append(row)
            lines.append(reader.line_num)
        columns = [c.strip() for c in reader.fieldnames or []]
    if "path" not in columns:
        raise ValueError(
            f"{path} must have a header with columns path,label (optional: split, is_query, "
            f"is_gallery, camera; no label column: unlabelled items); missing path, found {columns}"
        )
    rows = [{(k or "").strip(): (v or "").strip() for k, v in row.items()} for row in rows]
    return rows, columns, lines


def _check_rows(rows: list[dict[str, str]], lines: list[int], path: Path) -> None:
    """Every row has a path, a label, and a file that exists."""
    for row, line in zip(rows, lines, strict=True):
        for column in [c for c in ("path", "label") if c in row]:
            if not row[column]:
                raise ValueError(f"{path} line {line}: the {column} is empty; every row needs one")
        if not (path.parent / row["path"]).exists():
            raise FileNotFoundError(
                f"{path} line {line}: {path.parent / row['path']} does not exist "
                "(paths are relative to the CSV's folder)"
            )


@DATASETS.register("csv")
class CSVDataset(LabeledDataset):
    """Images listed in a CSV file: columns ``path,label`` and optionally ``split``,
    ``is_query``, ``is_gallery``, ``camera``. Without a ``label`` column the items are
    unlabelled (:mod:`deepmetric.data.unlabelled`).

    ``root`` is the CSV file; relative paths are resolved against its folder. Labels may be
    integers (numbered in numeric order) or names (sorted). With ``split``, only rows whose
    ``split`` column equals it are kept. ``is_query``/``is_gallery`` (0/1 or true/false) become
    bool arrays and ``camera`` an int array (strings if not all integers) in ``extra``, with
    ``split`` when the column exists.

    Example:
        >>> import tempfile
        >>> from PIL import Image
        >>> folder = Path(tempfile.mkdtemp())
        >>> Image.new("L", (2, 2)).save(folder / "a.png")
        >>> _ = (folder / "items.csv").write_text("path,label,split\\na.png,7,test\\n")
        >>> data = CSVDataset(folder / "items.csv", split="test")
        >>> data.class_names, data.extra["split"].tolist()
        (['7'], ['test'])
    """

    def __init__(
        self,
        root: str | Path,
        split: str | None = None,
        *,
        image_size: ImageSize = None,
        channels: int = 3,
        strict: bool = False,
        check: CheckMode = "fast",
    ) -> None:
        path = Path(root)
        if not path.is_file():
            raise FileNotFoundError(
                f"csv dataset: {path} does not exist; root must be the CSV file"
            )
        rows, columns, lines = _read_csv(path)
        if split is not None:
            if "split" not in columns:
                raise ValueError(f"{path} has no 'split' column; pass split=None or add the column")
            found = sorted({row["split"] for row in rows})
            lines = [n for n, row in zip(lines, rows, strict=True) if row["split"] == split]
            rows = [row for row in rows if row["split"] == split]
            if not rows:
                raise ValueError(f"{path} has no rows with split={split!r}; splits found: {found}")
        extra: dict[str, np.ndarray] = {}
        for column in ("is_query", "is_gallery"):
            if column in columns:
                values = [
                    _parse_bool(r[column], column, path, n)
                    for r, n in zip(rows, lines, strict=True)
                ]
                extra[column] = np.array(values, dtype=bool)
        if "camera" in columns:
            extra["camera"] = _numbers_or_strings([row["camera"] for row in rows])
        if "split" in columns:
            extra["split"] = np.array([row["split"] for row in rows], dtype=str)
        _check_rows(rows, lines, path)
        paths = [str(path.parent / row["path"]) for row in rows]
        raw = _numbers_or_strings([row.get("label", "0") for row in rows])
        self._set_files(paths, raw, extra, FileOptions(image_size, channels, strict, check))
        if "label" not in columns:
            drop_labels(self)
