"""Class-balanced batch sampling: every batch holds ``batch_size // m`` classes, ``m`` items each.

How one epoch is built, from ``(seed, epoch)`` alone and so identically on every rank:

1. Each class's items are shuffled and cut into chunks of ``m``. When the class size ``n`` is not a
   multiple of ``m``, the last chunk is topped up with the first items of the same shuffle, so a
   chunk never holds an item twice and every item is seen. A class smaller than ``m`` (allowed
   only with ``replacement=True``) repeats its shuffle cyclically, each item ``m // n`` or
   ``m // n + 1`` times. One such pass over a class gives ``ceil(n / m)`` chunks.
2. The number of batches is the smallest that holds every chunk with distinct classes in each
   batch, ``max(ceil(chunks / classes_per_batch), most chunks of one class)``. Free slots get
   extra chunks, given to the classes with the fewest
   chunks first (ties broken at random); an extra chunk comes from a fresh pass over its class.
   Nothing is dropped, so every item (hence every class) appears at least once per epoch.
3. Chunks are packed batch by batch: distinct classes are drawn in proportion to their chunks
   left, except that a class with a chunk for every batch left must be taken, which is what makes
   the packing always succeed. The batch order is then shuffled.
4. ``batch_size`` is the global batch. Rank ``r`` of ``R`` takes the ``r``-th of ``R`` near-equal
   slices of every batch, so ``R`` processes step through the same batches as one process, and
   a loss over the gathered slices sees the whole batch, in its order.

Hierarchical batches (``groups`` and ``classes_per_group``: a coarse label such as an alphabet, a
product super-class or a bird order) replace step 3: each batch takes
``classes_per_batch // classes_per_group`` distinct groups and ``classes_per_group`` distinct
classes from each, groups and classes drawn in proportion to their chunks left (a class with
none left keeps a small weight, and its extra chunk comes from a fresh pass). So the negatives of
a batch share their group, the hard ones that recognition within a group needs. The epoch has the
same number of batches; coverage is then likely but not guaranteed.
"""

from __future__ import annotations

import hashlib
import warnings
from collections import deque
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor
from torch.utils.data import Sampler

from ._checks import check_int

Labels = Sequence[int] | Tensor | np.ndarray[Any, Any]


def _labels_tensor(labels: Labels) -> Tensor:
    """``labels`` as a CPU int64 tensor of shape ``(n,)``, or a ValueError saying what is wrong."""
    try:
        tensor = torch.as_tensor(labels)
    except (TypeError, ValueError, RuntimeError) as err:
        raise ValueError(f"labels must be integers; could not read them ({err})") from None
    if tensor.numel() == 0:
        raise ValueError("labels must be non-empty; got 0 labels")
    if tensor.dim() != 1:
        raise ValueError(f"labels must be 1-D; got shape {tuple(tensor.shape)}")
    if tensor.dtype.is_floating_point or tensor.dtype.is_complex or tensor.dtype == torch.bool:
        raise ValueError(f"labels must be integers; got dtype {tensor.dtype} (use class ids)")
    return tensor.detach().to("cpu", torch.int64)


def _world(num_replicas: int | None, rank: int | None) -> tuple[int, int]:
    """``(num_replicas, rank)``: the given values, else the process group's, else ``(1, 0)``."""
    live = dist.is_available() and dist.is_initialized()
    if num_replicas is None:
        num_replicas = dist.get_world_size() if live else 1
    if rank is None:
        rank = dist.get_rank() if live else 0
    num_replicas = int(check_int("num_replicas", num_replicas, 1))
    if not 0 <= int(check_int("rank", rank)) < num_replicas:
        raise ValueError(f"rank must be in [0, num_replicas) = [0, {num_replicas}); got {rank!r}")
    return num_replicas, int(check_int("rank", rank))


def _generator(seed: int, epoch: int) -> torch.Generator:
    """A generator seeded from ``(seed, epoch)``, hashed so that nearby pairs stay unrelated."""
    digest = hashlib.blake2b(f"{seed}:{epoch}".encode(), digest_size=8).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest, "little") >> 1)


def _spread_extra(chunks: Tensor, extra: int, cap: int, gen: torch.Generator) -> Tensor:
    """``chunks: (classes,)`` plus ``extra`` chunks, lowest counts first, none above ``cap``."""
    low, high = int(chunks.min()), cap
    while low < high:  # the highest level that ``extra`` chunks can raise every class to
        mid = (low + high + 1) // 2
        if int((mid - chunks).clamp_min(0).sum()) <= extra:
            low = mid
        else:
            high = mid - 1
    filled = chunks.clamp_min(low)
    rest = extra - int((filled - chunks).sum())
    if rest:  # fewer than the classes at the level, so each gets at most one more
        at_level = (filled == low).nonzero().flatten()
        filled[at_level[torch.randperm(len(at_level), generator=gen)[:rest]]] += 1
    return filled


def _pack(chunks: Tensor, per_batch: int, gen: torch.Generator) -> Tensor:
    """``(num_batches, per_batch)`` class ids, distinct in each row, class c ``chunks[c]`` times.

    Needs ``chunks.sum() == num_batches * per_batch`` and ``chunks <= num_batches``. A row takes
    every class with a chunk for each row left (forced), then the first new classes in a shuffled
    queue of all chunks, i.e. classes drawn in proportion to their chunks left. Taking the forced
    ones keeps ``left <= rows_left`` for all classes, and the sum condition then leaves enough
    classes to choose from. Class c can be forced only in its last ``chunks[c]`` rows, so the
    work is O(total chunks) for the whole epoch, not O(classes) per row.
    """
    total = int(chunks.sum())
    shuffled = torch.arange(len(chunks)).repeat_interleave(chunks)[
        torch.randperm(total, generator=gen)
    ]
    queue = deque(shuffled.tolist())
    initial = chunks.tolist()
    left = list(initial)
    by_size = torch.argsort(chunks, descending=True, stable=True).tolist()
    stale = [0] * len(left)  # queue entries of a class beyond its chunks left
    rows = []
    candidates = 0  # by_size[:candidates] are the classes that can be forced now
    for rows_left in range(total // per_batch, 0, -1):
        while candidates < len(left) and initial[by_size[candidates]] >= rows_left:
            candidates += 1
        row = [cls for cls in by_size[:candidates] if left[cls] == rows_left]
        for cls in row:
            stale[cls] += 1  # taken without using up one of its queue entries
        taken = set(row)
        while len(row) < per_batch:
            cls = queue.popleft()
            if stale[cls]:
                stale[cls] -= 1
            elif cls in taken:
                queue.append(cls)  # still needed in a later row
            else:
                row.append(cls)
                taken.add(cls)
        for cls in row:
            left[cls] -= 1
        rows.append(row)
    return torch.tensor(rows, dtype=torch.int64)


def _chunks(items: Tensor, sizes: Tensor, counts: Tensor, m: int, gen: torch.Generator) -> Tensor:
    """``(counts.sum(), m)`` item chunks, ``counts[c]`` for class c, grouped by class in order.

    ``items: (n,)`` holds the dataset indices sorted by class; class c has ``sizes[c]`` of them.
    Class c is shuffled afresh ``passes[c]`` times (segments); each shuffle is cut into
    ``ceil(sizes[c] / m)`` chunks, the last one wrapping to the start of the same shuffle.
    """
    classes = torch.arange(len(sizes))
    per_pass = -(-sizes // m)
    passes = -(-counts // per_pass)
    seg_class = classes.repeat_interleave(passes)
    seg_len = sizes[seg_class]
    seg_start = seg_len.cumsum(0) - seg_len
    elem_seg = torch.arange(len(seg_class)).repeat_interleave(seg_len)
    local = torch.arange(int(seg_len.sum())) - seg_start[elem_seg]
    class_start = sizes.cumsum(0) - sizes
    elem_item = items[class_start[seg_class[elem_seg]] + local]
    # segment id + U[0, 1): sorting groups by segment and shuffles within each one
    keys = elem_seg.to(torch.float64) + torch.rand(
        len(elem_seg), generator=gen, dtype=torch.float64
    )
    shuffled = elem_item[keys.argsort()]
    chunk_class = classes.repeat_interleave(counts)
    j = torch.arange(int(counts.sum())) - (counts.cumsum(0) - counts)[chunk_class]
    seg_first = passes.cumsum(0) - passes
    seg = seg_first[chunk_class] + j // per_pass[chunk_class]
    offset = (j % per_pass[chunk_class])[:, None] * m + torch.arange(m)  # (chunks, m)
    return shuffled[seg_start[seg][:, None] + offset % sizes[chunk_class][:, None]]


class MPerClassSampler(Sampler[list[int]]):
    """Batches of ``batch_size // m`` distinct classes with exactly ``m`` items each.

    A batch sampler: use it as ``DataLoader(dataset, batch_sampler=sampler)``. It yields lists of
    dataset indices, ``batch_size`` long, grouped by class (``m`` consecutive items per class). The
    epoch is described in the module docstring: every item is seen at least once, small classes
    are oversampled to fill batches, and ``len(sampler)`` is the number of batches (steps).

    Randomness comes only from a private generator seeded by ``(seed, epoch)``, never the global
    RNG: the same seed and epoch give the same batches, and iterating twice without
    ``set_epoch`` repeats the epoch. Call ``set_epoch(epoch)`` at the start of each epoch.

    Under ``torch.distributed``, ``num_replicas`` and ``rank`` default to the process group (else
    1 and 0). Every rank must use the same ``seed``: each builds the same batch list and takes its
    slice of every batch (``batch_size`` is the global batch, at least ``num_replicas``).

    Unlike pytorch-metric-learning's ``MPerClassSampler``, which draws classes at random for a
    fixed ``length_before_new_iter``, an epoch here covers the data set, and ``replacement`` must
    be asked for explicitly when a class is smaller than ``m``.

    Args:
        labels: ``(n,)`` integer class of each dataset item (list, numpy array or tensor).
        m: items per class in a batch.
        batch_size: items per batch over all processes; a multiple of ``m``.
        seed: the shared seed; combined with the epoch.
        replacement: allow classes with fewer than ``m`` items; their chunk repeats items. Classes
            with at least ``m`` items are sampled the same way either way.
        num_replicas: number of processes sharing the epoch.
        rank: this process's index in ``[0, num_replicas)``.

    Raises:
        ValueError: for ``m < 1``, a ``batch_size`` that is not a positive multiple of ``m``,
            fewer than ``batch_size // m`` classes, a class smaller than ``m`` without
            replacement, a rank out of range, or empty, non-integer or non-1-D labels.

    Example:
        >>> labels = [0, 0, 1, 1, 1, 2, 2, 2]
        >>> sampler = MPerClassSampler(labels, m=2, batch_size=4, seed=1)
        >>> len(sampler)
        3
        >>> [len({labels[i] for i in batch}) for batch in sampler]  # classes per batch
        [2, 2, 2]
    """

    def __init__(
        self,
        labels: Labels,
        m: int,
        batch_size: int,
        *,
        seed: int = 0,
        replacement: bool = False,
        num_replicas: int | None = None,
        rank: int | None = None,
    ) -> None:
        super().__init__()
        self.m = int(check_int("m", m, 1))
        self.batch_size = int(check_int("batch_size", batch_size, 1))
        if self.batch_size % self.m:
            raise ValueError(
                f"batch_size must be a multiple of m; got batch_size={batch_size!r}, m={m!r}"
            )
        self.seed = int(check_int("seed", seed))
        self.replacement = bool(replacement)
        self.num_replicas, self.rank = _world(num_replicas, rank)
        self.epoch = 0
        flat = _labels_tensor(labels)
        classes, inverse, sizes = torch.unique(flat, return_inverse=True, return_counts=True)
        self.classes_per_batch = self.batch_size // self.m
        self._check_classes(classes, sizes)
        # Dataset indices sorted by class; class c (label ``classes[c]``) has ``sizes[c]`` items.
        self._items = torch.argsort(inverse, stable=True)
        self._sizes = sizes
        self._per_pass = -(-sizes // self.m)  # chunks in one pass over each class
        needed = max(
            -(-int(self._per_pass.sum()) // self.classes_per_batch), int(self._per_pass.max())
        )
        self._global_len = needed
        if self.batch_size < self.num_replicas:
            raise ValueError(
                f"batch_size {self.batch_size} cannot be shared by {self.num_replicas} processes;"
                " it is the global batch: make it at least the number of processes"
            )

    def _check_classes(self, classes: Tensor, sizes: Tensor) -> None:
        if len(classes) < self.classes_per_batch:
            raise ValueError(
                f"labels have {len(classes)} classes, fewer than batch_size // m = "
                f"{self.batch_size} // {self.m} = {self.classes_per_batch} classes per batch; "
                "use a smaller batch_size or a larger m"
            )
        small = (sizes < self.m).nonzero().flatten()
        if self.replacement and len(small):
            warnings.warn(
                f"{len(small)} of {len(classes)} classes have fewer than m={self.m} items "
                f"(the smallest {int(sizes.min())}); their items repeat within a batch",
                stacklevel=3,
            )
        if not self.replacement and len(small):
            first = int(small[0])
            raise ValueError(
                f"class {int(classes[first])} has {int(sizes[first])} item(s), fewer than "
                f"m={self.m} ({len(small)} class(es) in all are that small); pass "
                "replacement=True or use a smaller m"
            )

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose batches the next iteration yields (same on every rank)."""
        self.epoch = int(check_int("epoch", epoch))

    def global_batches(self) -> Tensor:
        """``(len(self), batch_size)`` dataset indices: the epoch's global batches."""
        gen = _generator(self.seed, self.epoch)
        per_batch = self.classes_per_batch
        extra = self._global_len * per_batch - int(self._per_pass.sum())
        counts = _spread_extra(self._per_pass, extra, self._global_len, gen)
        grid = self._grid(counts, gen)  # (batches, per_batch) class ids
        counts = torch.bincount(grid.flatten(), minlength=len(counts))  # as packed
        chunks = _chunks(self._items, self._sizes, counts, self.m, gen)  # (total, m)
        # Stable-sorting the grid by class lists each class's slots in the same order as its
        # chunks, so a slot's rank in that order is the id of the chunk that fills it.
        order = torch.argsort(grid.flatten(), stable=True)
        chunk_id = torch.empty_like(order)
        chunk_id[order] = torch.arange(len(order))
        batches = chunks[chunk_id].reshape(self._global_len, self.batch_size)
        return batches[torch.randperm(self._global_len, generator=gen)]

    def _grid(self, counts: Tensor, gen: torch.Generator) -> Tensor:
        """``(batches, classes_per_batch)`` class ids, class c ``counts[c]`` times (step 3)."""
        return _pack(counts, self.classes_per_batch, gen)

    def __iter__(self) -> Iterator[list[int]]:
        edges = [r * self.batch_size // self.num_replicas for r in range(self.num_replicas + 1)]
        share = self.global_batches()[:, edges[self.rank] : edges[self.rank + 1]]
        return iter(share.tolist())

    def __len__(self) -> int:
        return self._global_len


class HierarchicalSampler(MPerClassSampler):
    """Batches of ``batch_size // m // classes_per_group`` groups, ``classes_per_group`` classes
    of each and ``m`` items of each class (see the module docstring).

    ``groups: (n,)`` is each item's coarse label (an alphabet, a product super-class), the same
    for every item of a class; every group needs ``classes_per_group`` classes. The other
    arguments are :class:`MPerClassSampler`'s.

    Example:
        >>> labels = [c for c in range(8) for _ in range(2)]
        >>> sampler = HierarchicalSampler(labels, [c // 4 for c in labels], 2, 8, 2, seed=0)
        >>> [sorted({labels[i] // 4 for i in batch}) for batch in sampler][:2]
        [[0, 1], [0, 1]]
    """

    def __init__(
        self, labels: Labels, groups: Labels, m: int, batch_size: int, classes_per_group: int,
        **options: Any,
    ) -> None:  # fmt: skip
        super().__init__(labels, m, batch_size, **options)
        self.classes_per_group = int(check_int("classes_per_group", classes_per_group, 1))
        flat = _labels_tensor(labels)
        inverse = torch.unique(flat, return_inverse=True)[1]
        self._class_group = self._check_groups(groups, flat, inverse, int(inverse.max()) + 1)

    def _check_groups(self, groups: Labels, flat: Tensor, inverse: Tensor, n: int) -> Tensor:
        """The group id (0..) of each class, checked against ``classes_per_group``."""
        k = self.classes_per_group
        raw = np.asarray(groups.cpu() if isinstance(groups, Tensor) else groups)
        if raw.shape != tuple(flat.shape):
            raise ValueError(f"groups must hold one value per label; got shape {raw.shape}")
        ids = torch.from_numpy(np.unique(raw, return_inverse=True)[1].reshape(-1).astype(np.int64))
        first = torch.full((n,), -1, dtype=torch.int64).scatter_(0, inverse.flip(0), ids.flip(0))
        if (first[inverse] != ids).any():
            raise ValueError("groups must be the same for every item of a class")
        if self.classes_per_batch % k:
            raise ValueError(
                f"batch_size // m = {self.classes_per_batch} classes per batch must be a multiple "
                f"of classes_per_group={k}"
            )
        per_group = torch.bincount(first)
        if int(per_group.min()) < k:
            small = raw[int((ids == int(per_group.argmin())).nonzero()[0])]
            raise ValueError(
                f"group {small!r} has {int(per_group.min())} classes, fewer than "
                f"classes_per_group={k}; lower classes_per_group or merge small groups"
            )
        if len(per_group) < self.classes_per_batch // k:
            raise ValueError(
                f"{len(per_group)} groups cannot fill a batch of {self.classes_per_batch // k} "
                "distinct groups; lower batch_size or raise classes_per_group"
            )
        return first

    def _grid(self, counts: Tensor, gen: torch.Generator) -> Tensor:
        """``(batches, per_batch)`` class ids: per batch, distinct groups, then distinct classes
        of each, drawn in proportion to chunks left (see the module docstring)."""
        k, group = self.classes_per_group, self._class_group
        num_groups = int(group.max()) + 1
        members = [(group == g).nonzero().flatten() for g in range(num_groups)]
        left = counts.to(torch.float64)
        rows = []
        for _ in range(self._global_len):
            weight = torch.zeros(num_groups, dtype=torch.float64).index_add_(0, group, left)
            picked = torch.multinomial(weight + 1e-3, self.classes_per_batch // k, generator=gen)
            row = []
            for g in picked.tolist():
                own = members[g]
                take = own[torch.multinomial(left[own] + 1e-3, k, generator=gen)]
                left[take] = (left[take] - 1).clamp_min(0)
                row.append(take)
            rows.append(torch.cat(row))
        return torch.stack(rows)
