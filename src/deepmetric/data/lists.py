"""Training data given as pair or triplet lists instead of class labels.

People collect "these two are the same product" logs, face pairs (LFW's ``pairs.txt``) and
"A is closer to P than to N" judgements far more often than clean classes. A list file is a
CSV, one row per pair ``a,b,same`` (``same`` 1/0 or true/false) or per triplet
``anchor,positive,negative``, paths relative to the file's folder (or ``root``); a header row
naming those columns is optional.

The items are the distinct images of the list. Positive links (same pairs; anchor and
positive) join items into connected components, the item's pseudo-class ``label``; a listed
negative inside one component is a contradiction and an error. By default training uses the
rows themselves: ``tuples`` holds each row's items, the ``TupleSampler`` builds batches of
whole rows and the ``listed`` miner hands the loss exactly the listed pairs or triplets (plus,
optionally, in-batch negatives between items of different components). ``closure=True``
instead trains on the components as classes, with the usual samplers and miners, and warns
when one component swallows a large share of the images (chained pairs joining unrelated
items).
"""

from __future__ import annotations

import csv
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Sampler

from .base import DATASETS, FileOptions, LabeledDataset
from .images import CheckMode, ImageSize

_TRUE, _FALSE = {"1", "true", "yes", "same"}, {"0", "false", "no", "different"}
HEADERS = {2: ("a", "b", "same"), 3: ("anchor", "positive", "negative")}
EXPLODED = 0.1  # a component holding more than this share of the images is warned about


class _Components:
    """Union-find over item indices."""

    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def join(self, i: int, j: int) -> None:
        self.parent[self.find(i)] = self.find(j)


class TupleList(LabeledDataset):
    """The images of a pair or triplet list (see the module docstring); ``width`` 2 or 3.

    Attributes:
        tuples: ``(rows, width)`` item indices of each row (None with ``closure``).
        same: ``(rows,)`` bool, whether each pair is a positive (pairs only).
    """

    width = 2

    def __init__(
        self,
        file: str | Path,
        root: str | Path | None = None,
        *,
        closure: bool = False,
        image_size: ImageSize = None,
        channels: int = 3,
        check: CheckMode = "fast",
    ) -> None:
        path = Path(file)
        if not path.is_file():
            raise FileNotFoundError(f"{self.kind} list {path} does not exist")
        folder = Path(root) if root is not None else path.parent
        numbers, rows, same = self._read(path, folder)
        self.same = np.array(same, dtype=bool) if self.width == 2 else None
        paths = sorted({p for row in rows for p in row})
        where = {p: i for i, p in enumerate(paths)}
        index = np.array([[where[p] for p in row] for row in rows], dtype=np.int64)
        labels = self._components(index, numbers, path)
        self._set_files(paths, labels, {}, FileOptions(image_size, channels, True, check))
        self.tuples = None if closure else index
        if closure:
            self._warn_if_exploded(path)

    @property
    def kind(self) -> str:
        return "pair" if self.width == 2 else "triplet"

    def _read(
        self, path: Path, folder: Path
    ) -> tuple[list[int], list[tuple[str, ...]], list[bool]]:
        """The file's line numbers, item paths and positive flags, row by row, checked."""
        with open(path, newline="") as handle:
            lines = [(n, [f.strip() for f in row]) for n, row in enumerate(csv.reader(handle), 1)]
        lines = [(n, row) for n, row in lines if any(row)]
        if lines and tuple(f.lower() for f in lines[0][1]) == HEADERS[self.width]:
            lines = lines[1:]
        if not lines:
            raise ValueError(f"{path} lists no {self.kind}s; write one per row: "
                             f"{','.join(HEADERS[self.width])}")  # fmt: skip
        numbers, rows, same = [], [], []
        for number, row in lines:
            where = f"{path} row {number}"
            if len(row) != 3:
                columns = ",".join(HEADERS[self.width])
                raise ValueError(f"{where}: expected 3 comma-separated fields {columns}; got "
                                 f"{len(row)}: {row}")  # fmt: skip
            files = row[:2] if self.width == 2 else row
            if self.width == 2:
                flag = row[2].lower()
                if flag not in _TRUE | _FALSE:
                    raise ValueError(f"{where}: same must be 1/0 or true/false; got {row[2]!r}")
                same.append(flag in _TRUE)
            else:
                same.append(True)
            twice = [name for i, name in enumerate(files) if name in files[:i]]
            if twice:
                raise ValueError(f"{where}: names {twice[0]} twice; a {self.kind} needs "
                                 f"{len(files)} different images")  # fmt: skip
            for name in files:
                if not (folder / name).is_file():
                    raise FileNotFoundError(f"{where}: image {folder / name} does not exist")
            numbers.append(number)
            rows.append(tuple(str(folder / name) for name in files))
        return numbers, rows, same

    def _components(self, index: np.ndarray, numbers: list[int], path: Path) -> np.ndarray:
        """Each item's component of the positive links; a listed negative inside one raises."""
        n = int(index.max()) + 1
        parts = _Components(n)
        flags = self.same if self.same is not None else np.ones(len(index), dtype=bool)
        for row, positive in zip(index, flags, strict=True):
            if positive:
                parts.join(int(row[0]), int(row[1]))
        for row, positive, number in zip(index, flags, numbers, strict=True):
            apart = [int(row[0]), int(row[-1])]  # a negative pair, or anchor and negative
            if (len(row) == 3 or not positive) and parts.find(apart[0]) == parts.find(apart[1]):
                raise ValueError(
                    f"{path} row {number}: lists as different two images that other rows link as "
                    "the same (through a chain of positive pairs); fix the list"
                )
        roots = np.array([parts.find(i) for i in range(n)])
        return np.unique(roots, return_inverse=True)[1].reshape(-1)

    def _warn_if_exploded(self, path: Path) -> None:
        sizes = np.bincount(self.labels)
        if len(self) > 2 and sizes.max() > max(2, EXPLODED * len(self)):
            warnings.warn(
                f"{path}: closure joins {sizes.max()} of {len(self)} images "
                f"({sizes.max() / len(self):.0%}) into one pseudo-class, as chains of positive "
                "pairs link unrelated images; check the list, or train on the rows "
                "(closure: false)",
                stacklevel=3,
            )

    def _take_inputs(self, index: np.ndarray) -> None:
        """A subset keeps the rows whose items all remain, renumbered."""
        if self.tuples is None:
            return
        new = np.full(int(self.tuples.max()) + 1, -1, dtype=np.int64)
        new[index] = np.arange(len(index))
        kept = (new[self.tuples] >= 0).all(axis=1)
        self.tuples = new[self.tuples[kept]]
        if self.same is not None:
            self.same = self.same[kept]


@DATASETS.register("pairs")
class PairList(TupleList):
    """Images from a list of pairs ``a,b,same``; see :mod:`deepmetric.data.lists`.

    Example:
        >>> import tempfile
        >>> from PIL import Image
        >>> folder = Path(tempfile.mkdtemp())
        >>> for name in "abc":
        ...     Image.new("L", (4, 4)).save(folder / f"{name}.png")
        >>> _ = (folder / "pairs.csv").write_text("a,b,same\\na.png,b.png,1\\nb.png,c.png,0\\n")
        >>> data = PairList(folder / "pairs.csv")
        >>> data.labels.tolist(), data.tuples.tolist(), data.same.tolist()
        ([0, 0, 1], [[0, 1], [1, 2]], [True, False])
    """

    width = 2


@DATASETS.register("triplets")
class TripletList(TupleList):
    """Images from a list of triplets ``anchor,positive,negative``; see
    :mod:`deepmetric.data.lists`."""

    width = 3


class TupleSampler(Sampler[list[int]]):
    """Batches of whole rows of a pair or triplet list: ``batch_size // width`` rows each, laid
    out row after row (``a1, b1, a2, b2, ...``), what the ``listed`` miner reads.

    Every row is seen once an epoch in a seeded shuffle of ``(seed, epoch)``; the last batch is
    filled with rows of the next shuffle, so every batch is full. Under ``torch.distributed``
    rank ``r`` of ``R`` takes the ``r``-th of ``R`` near-equal runs of whole rows of every
    batch, so the gathered batch is the same as one process's.

    Example:
        >>> sampler = TupleSampler(np.array([[0, 1], [2, 3], [4, 5]]), batch_size=4, seed=0)
        >>> len(sampler), all(len(batch) == 4 for batch in sampler)
        (2, True)
    """

    def __init__(
        self, tuples: np.ndarray, batch_size: int, *, seed: int = 0, num_replicas: int = 1,
        rank: int = 0,
    ) -> None:  # fmt: skip
        self.tuples = torch.as_tensor(np.asarray(tuples, dtype=np.int64))
        width = self.tuples.shape[1]
        self.rows = batch_size // width
        if self.rows < max(1, num_replicas):
            raise ValueError(
                f"sampler.batch_size ({batch_size}) must hold at least {max(1, num_replicas)} "
                f"row(s) of {width} items"
            )
        self.seed, self.epoch, self.num_replicas, self.rank = seed, 0, num_replicas, rank

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose batches the next iteration yields."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return -(-len(self.tuples) // self.rows)

    def __iter__(self) -> Iterator[list[int]]:
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        need = len(self) * self.rows
        shuffles = -(-need // len(self.tuples))
        order = torch.cat(
            [torch.randperm(len(self.tuples), generator=gen) for _ in range(shuffles)]
        )
        batches = self.tuples[order[:need]].view(len(self), self.rows, -1)
        edges = [r * self.rows // self.num_replicas for r in range(self.num_replicas + 1)]
        share = batches[:, edges[self.rank] : edges[self.rank + 1]]
        return iter(share.flatten(1).tolist())


__all__ = ["PairList", "TripletList", "TupleList", "TupleSampler"]
