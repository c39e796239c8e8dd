"""MPerClassSampler: batch structure, epoch coverage, seeding, distributed shares and errors."""

from __future__ import annotations

import datetime
import json
import socket
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils.data import DataLoader, TensorDataset

from deepmetric.samplers import HierarchicalSampler, MPerClassSampler

# 6 classes of 4 items, interleaved: with m=2 and 2 classes per batch, 12 chunks fill exactly
# 6 batches, so every item is used exactly once per epoch (half of each batch per rank for 2).
EVEN_LABELS = [c for _ in range(4) for c in (3, 1, 4, 0, 5, 9)]


def check_epoch(batches: list[list[int]], labels: list[int], m: int, batch_size: int) -> None:
    """Every batch: valid indices, ``batch_size // m`` classes, ``m`` consecutive items each."""
    sizes = Counter(labels)
    for batch in batches:
        assert len(batch) == batch_size
        assert all(0 <= i < len(labels) for i in batch)
        per_class = Counter(labels[i] for i in batch)
        assert len(per_class) == batch_size // m
        assert set(per_class.values()) == {m}
        for start in range(0, batch_size, m):
            chunk = batch[start : start + m]
            assert len({labels[i] for i in chunk}) == 1
            size = sizes[labels[chunk[0]]]
            if size >= m:  # no item twice in a chunk
                assert len(set(chunk)) == m
            else:  # a small class (replacement=True) repeats its items evenly
                assert set(Counter(chunk).values()) <= {m // size, m // size + 1}
                assert len(set(chunk)) == size


@st.composite
def settings_and_labels(draw: st.DrawFn) -> tuple[list[int], int, int, bool, int, int]:
    m = draw(st.integers(1, 4))
    per_batch = draw(st.integers(1, 4))
    replacement = draw(st.booleans())
    class_ids = draw(st.lists(st.integers(-50, 50), min_size=per_batch, max_size=7, unique=True))
    low = 1 if replacement else m
    sizes = draw(st.lists(st.integers(low, 14), min_size=len(class_ids), max_size=len(class_ids)))
    labels = [c for c, n in zip(class_ids, sizes, strict=True) for _ in range(n)]
    labels = draw(st.permutations(labels))
    return (
        labels,
        m,
        m * per_batch,
        replacement,
        draw(st.integers(0, 2**40)),
        draw(st.integers(1, min(3, m * per_batch))),  # a batch is shared by at most its size
    )


@settings(deadline=None, max_examples=60)
@given(settings_and_labels())
def test_every_batch_is_m_per_class_and_the_epoch_covers_every_item(
    case: tuple[list[int], int, int, bool, int, int],
) -> None:
    labels, m, batch_size, replacement, seed, replicas = case
    shares = [
        MPerClassSampler(
            labels,
            m,
            batch_size,
            seed=seed,
            replacement=replacement,
            num_replicas=replicas,
            rank=rank,
        )
        for rank in range(replicas)
    ]
    global_batches = shares[0].global_batches().tolist()
    check_epoch(global_batches, labels, m, batch_size)
    slices = [list(sampler) for sampler in shares]
    for sampler, batches in zip(shares, slices, strict=True):
        assert len(batches) == len(sampler) == len(global_batches)
        assert sampler.global_batches().tolist() == global_batches
    # the ranks' slices of each step, in rank order, are that step's global batch
    assert [sum(step, []) for step in zip(*slices, strict=True)] == global_batches
    seen = {i for batch in global_batches for i in batch}
    assert seen == set(range(len(labels)))  # every item, hence every class


def test_length_is_the_fewest_batches_that_hold_every_chunk() -> None:
    # Class 0: 30 items -> 15 chunks of 2, so 15 batches even though the 18 chunks would fit in
    # 9; the small classes are oversampled to fill the other slots.
    labels = [0] * 30 + [1, 1, 2, 2, 3, 3]
    assert len(MPerClassSampler(labels, 2, 4)) == 15
    assert len(MPerClassSampler(labels, 2, 4, num_replicas=2, rank=1)) == 15  # same steps
    batches = list(MPerClassSampler(labels, 2, 4))
    assert all(sum(labels[i] == 0 for i in batch) == 2 for batch in batches)
    # Balanced: 4 classes of 5 items and m=2 give 3 chunks each, the last topped up from the
    # start of the same shuffle: 12 chunks, 3 batches of 4 classes.
    balanced = [c for c in range(4) for _ in range(5)]
    assert len(MPerClassSampler(balanced, 2, 8)) == 3


def test_leftover_items_top_up_the_last_chunk() -> None:
    labels = [7] * 5 + [8] * 4  # m=3: class 7 -> 2 chunks (5 items + 1 reused), class 8 -> 2
    for epoch in range(5):
        sampler = MPerClassSampler(labels, 3, 6, seed=11)
        sampler.set_epoch(epoch)
        batches = list(sampler)
        check_epoch(batches, labels, 3, 6)
        items_7 = [i for batch in batches for i in batch if labels[i] == 7]
        assert len(items_7) == 6 and set(items_7) == set(range(5))


def test_same_seed_and_epoch_repeat_other_epochs_and_seeds_differ() -> None:
    labels = [c for c in range(10) for _ in range(6)]
    state = torch.get_rng_state()
    first = list(MPerClassSampler(labels, 3, 12, seed=5))
    assert list(MPerClassSampler(labels, 3, 12, seed=5)) == first
    assert torch.equal(torch.get_rng_state(), state)  # the global RNG is never touched
    sampler = MPerClassSampler(labels, 3, 12, seed=5)
    assert list(sampler) == list(sampler) == first  # no hidden epoch counter
    sampler.set_epoch(1)
    second = list(sampler)
    assert second != first
    sampler.set_epoch(0)
    assert list(sampler) == first
    assert list(MPerClassSampler(labels, 3, 12, seed=6)) != first


def test_list_numpy_and_tensor_labels_agree() -> None:
    labels = [2, 0, 1, 2, 0, 1, 2, 0, 1, 1]
    expected = list(MPerClassSampler(labels, 2, 4, seed=3))
    for same in (np.array(labels, dtype=np.int32), torch.tensor(labels, dtype=torch.int16)):
        assert list(MPerClassSampler(same, 2, 4, seed=3)) == expected


@pytest.mark.parametrize("replicas", [2, 3, 4])
def test_rank_shares_are_disjoint_equal_and_cover_the_global_list(replicas: int) -> None:
    labels = [c for c in range(9) for _ in range(3 + c % 4)]
    shares = [
        MPerClassSampler(labels, 2, 6, seed=8, num_replicas=replicas, rank=rank)
        for rank in range(replicas)
    ]
    for sampler in shares:
        sampler.set_epoch(4)
    batches = [list(sampler) for sampler in shares]
    global_batches = shares[0].global_batches().tolist()
    assert {len(share) for share in batches} == {len(global_batches)}  # every rank, every step
    for step, whole in enumerate(global_batches):
        parts = [share[step] for share in batches]
        assert sum(parts, []) == whole  # disjoint slices that make up the batch, in rank order
        assert max(map(len, parts)) - min(map(len, parts)) <= 1  # near-equal
    # With nothing padded or topped up, the ranks share no dataset item either.
    even = [
        set(sum(MPerClassSampler(EVEN_LABELS, 2, 4, num_replicas=2, rank=r), [])) for r in (0, 1)
    ]
    assert even[0].isdisjoint(even[1]) and len(even[0] | even[1]) == len(EVEN_LABELS)


def test_works_as_a_dataloader_batch_sampler() -> None:
    labels = torch.arange(40) % 5
    data = TensorDataset(torch.arange(40), labels)
    sampler = MPerClassSampler(labels, 4, 8, seed=1)
    loader = DataLoader(data, batch_sampler=sampler)
    assert len(loader) == len(sampler)
    got = [(index.tolist(), label) for index, label in loader]
    assert [index for index, _ in got] == list(sampler)
    for _, label in got:
        assert sorted(Counter(label.tolist()).values()) == [4, 4]


def _ddp_worker(rank: int, world: int, port: int, out_dir: str) -> None:
    dist.init_process_group(
        "gloo",
        init_method=f"tcp://127.0.0.1:{port}",
        rank=rank,
        world_size=world,
        timeout=datetime.timedelta(seconds=30),
    )
    try:
        sampler = MPerClassSampler(EVEN_LABELS, 2, 4, seed=21)  # rank and world from the group
        sampler.set_epoch(2)
        result = {"rank": sampler.rank, "world": sampler.num_replicas, "batches": list(sampler)}
        Path(out_dir, f"rank{rank}.json").write_text(json.dumps(result))
        dist.barrier()
    finally:
        dist.destroy_process_group()


def test_real_two_process_gloo_group_gives_disjoint_shares(tmp_path: Path) -> None:
    if not (dist.is_available() and dist.is_gloo_available()):
        pytest.skip("torch.distributed with the gloo backend is not available")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    mp.spawn(_ddp_worker, args=(2, port, str(tmp_path)), nprocs=2, join=True)
    results = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    for rank, result in enumerate(results):
        assert (result["rank"], result["world"]) == (rank, 2)
        expected = MPerClassSampler(EVEN_LABELS, 2, 4, seed=21, num_replicas=2, rank=rank)
        expected.set_epoch(2)
        assert result["batches"] == list(expected)
    items = [{i for batch in result["batches"] for i in batch} for result in results]
    assert items[0].isdisjoint(items[1])
    assert len(items[0] | items[1]) == len(EVEN_LABELS)


@pytest.mark.parametrize(
    ("labels", "kwargs", "message"),
    [
        ([0, 0, 1, 1], {"m": 0, "batch_size": 4}, r"m must be an integer >= 1; got 0"),
        ([0, 0, 1, 1], {"m": 1.5, "batch_size": 4}, r"m must be an integer >= 1; got 1\.5"),
        ([0, 0, 1, 1], {"m": 2, "batch_size": 0}, r"batch_size must be an integer >= 1; got 0"),
        (
            [0, 0, 1, 1],
            {"m": 4, "batch_size": 10},
            r"batch_size must be a multiple of m; got batch_size=10, m=4",
        ),
        (
            [0, 0, 1, 1],
            {"m": 2, "batch_size": 6},
            r"labels have 2 classes, fewer than batch_size // m = 6 // 2 = 3 classes per batch",
        ),
        (
            [0, 0, 0, 5, 2, 2, 9],
            {"m": 2, "batch_size": 4},
            r"class 5 has 1 item\(s\), fewer than m=2 \(2 class\(es\) in all are that small\); "
            r"pass replacement=True or use a smaller m",
        ),
        (
            [0, 0, 1, 1],
            {"m": 2, "batch_size": 4, "num_replicas": 2, "rank": 2},
            r"rank must be in \[0, num_replicas\) = \[0, 2\); got 2",
        ),
        (
            [0, 0, 1, 1],
            {"m": 2, "batch_size": 4, "num_replicas": 2, "rank": -1},
            r"rank must be in \[0, num_replicas\) = \[0, 2\); got -1",
        ),
        (
            [0, 0, 1, 1],
            {"m": 2, "batch_size": 4, "num_replicas": 0},
            r"num_replicas must be an integer >= 1; got 0",
        ),
        (
            [0, 0, 1, 1],
            {"m": 2, "batch_size": 4, "seed": 0.5},
            r"seed must be an integer; got 0\.5",
        ),
        (
            [0.0, 0.5, 1.0],
            {"m": 1, "batch_size": 1},
            r"labels must be integers; got dtype torch\.float",
        ),
        (
            [True, False],
            {"m": 1, "batch_size": 1},
            r"labels must be integers; got dtype torch\.bool",
        ),
        (["a", "b"], {"m": 1, "batch_size": 1}, r"labels must be integers; could not read them"),
        ([], {"m": 1, "batch_size": 1}, r"labels must be non-empty; got 0 labels"),
        ([[0, 1], [1, 0]], {"m": 1, "batch_size": 1}, r"labels must be 1-D; got shape \(2, 2\)"),
    ],
)
def test_impossible_settings_raise_with_the_numbers(
    labels: list[object], kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        MPerClassSampler(labels, **kwargs)


def test_set_epoch_rejects_a_non_integer() -> None:
    sampler = MPerClassSampler([0, 1], 1, 1)
    with pytest.raises(ValueError, match=r"epoch must be an integer; got '1'"):
        sampler.set_epoch("1")


def test_replacement_allows_classes_smaller_than_m() -> None:
    labels = [0, 1, 1, 2, 2, 2, 2, 2]
    sampler = MPerClassSampler(labels, 4, 8, replacement=True, seed=2)
    batches = list(sampler)
    check_epoch(batches, labels, 4, 8)
    assert {labels[i] for batch in batches for i in batch} == {0, 1, 2}


def test_hierarchical_batches_hold_the_classes_per_group_asked_for() -> None:
    # 5 groups of 4-6 classes, 3-5 items per class; the group of class c is c // 6 (capped)
    rng = np.random.default_rng(0)
    groups_of_class = [0] * 4 + [1] * 6 + [2] * 5 + [3] * 4 + [4] * 5
    labels = [c for c, g in enumerate(groups_of_class) for _ in range(int(rng.integers(3, 6)))]
    groups = [f"g{groups_of_class[c]}" for c in labels]
    sampler = HierarchicalSampler(labels, groups, 2, 16, 4, seed=3, replacement=True)
    plain = MPerClassSampler(labels, m=2, batch_size=16, seed=3, replacement=True)
    batches = list(sampler)
    assert len(batches) == len(sampler) == len(plain)
    check_epoch(batches, labels, 2, 16)
    for batch in batches:
        per_group = Counter(groups[i] for i in batch[::2])  # one entry per class chunk
        assert sorted(per_group.values()) == [4, 4]  # 2 groups x 4 classes
    seen = {i for batch in batches for i in batch}
    assert len(seen) > 0.9 * len(labels)  # coverage is likely, not guaranteed
    assert [list(b) for b in sampler] == batches  # seeded
    sampler.set_epoch(1)
    assert list(sampler) != batches


def test_hierarchical_settings_that_cannot_work_say_why() -> None:
    labels = [c for c in range(6) for _ in range(2)]
    groups = [c // 3 for c in labels]
    with pytest.raises(ValueError, match="fewer than classes_per_group=4"):
        HierarchicalSampler(labels, groups, 2, 8, 4)
    with pytest.raises(ValueError, match="must be a multiple of classes_per_group=2"):
        HierarchicalSampler(labels, groups, 2, 6, 2)
    with pytest.raises(ValueError, match="the same for every item of a class"):
        HierarchicalSampler(labels, list(range(12)), 2, 4, 1)
    with pytest.raises(ValueError, match="2 groups cannot fill a batch of 3 distinct groups"):
        HierarchicalSampler(labels, groups, 2, 6, 1)
    with pytest.raises(ValueError, match="groups must hold one value per label"):
        HierarchicalSampler(labels, groups[:-1], 2, 4, 1)


def test_classes_smaller_than_m_warn_once_with_the_counts() -> None:
    import warnings

    labels = torch.tensor([0] * 8 + [1] * 2 + [2] * 8)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        MPerClassSampler(labels, m=4, batch_size=8, replacement=True)
    assert [str(w.message) for w in caught] == [
        "1 of 3 classes have fewer than m=4 items (the smallest 2); their items repeat within a "
        "batch"
    ]


def test_a_batch_smaller_than_the_process_count_is_refused() -> None:
    with pytest.raises(ValueError, match="batch_size 2 cannot be shared by 3 processes"):
        MPerClassSampler(EVEN_LABELS, 2, 2, num_replicas=3, rank=0)
