"""Pair and triplet lists: parsing, components, errors, the row sampler and the listed miner."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from deepmetric.config import load_config
from deepmetric.data import PairList, TripletList, TupleSampler, build_dataset
from deepmetric.miners import ListedMiner
from deepmetric.runs import build_data, build_miner, run_training
from deepmetric.tuples import Pairs, Triplets


def _images(folder: Path, names: str) -> None:
    folder.mkdir(exist_ok=True)
    for i, name in enumerate(names):
        Image.new("L", (8, 8), color=20 * i).save(folder / f"{name}.png")


def _write(folder: Path, text: str, name: str = "list.csv") -> Path:
    (folder / name).write_text(text)
    return folder / name


def test_pairs_become_items_components_and_rows(tmp_path: Path) -> None:
    _images(tmp_path, "abcdef")
    path = _write(tmp_path, "a,b,same\na.png,b.png,1\nb.png,c.png,true\nd.png,e.png,0\n"
                            "a.png,f.png,0\n")  # fmt: skip
    data = build_dataset({"name": "pairs", "file": str(path)})
    assert isinstance(data, PairList) and len(data) == 6
    assert data.labels.tolist() == [0, 0, 0, 1, 2, 3]  # a-b-c joined, d, e, f alone
    assert data.tuples is not None and data.same is not None
    assert data.tuples.tolist() == [[0, 1], [1, 2], [3, 4], [0, 5]]
    assert data.same.tolist() == [True, True, False, False]
    part = data.subset([0, 1, 3, 4])  # rows with c or f drop out; the others are renumbered
    assert part.tuples is not None and part.tuples.tolist() == [[0, 1], [2, 3]]
    assert part.same is not None and part.same.tolist() == [True, False]


def test_triplets_without_header(tmp_path: Path) -> None:
    _images(tmp_path, "abcd")
    path = _write(tmp_path, "a.png,b.png,c.png\nc.png,d.png,a.png\n")
    data = TripletList(path)
    assert data.labels.tolist() == [0, 0, 1, 1] and data.tuples is not None
    assert data.tuples.tolist() == [[0, 1, 2], [2, 3, 0]] and data.same is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a.png,b.png\n", r"list.csv row 1: expected 3 comma-separated fields a,b,same; got 2"),
        ("a.png,b.png,1\na.png,z.png,0\n", r"list.csv row 2: image .*z.png does not exist"),
        ("a.png,b.png,maybe\n", r"list.csv row 1: same must be 1/0 or true/false; got 'maybe'"),
        ("a,b,same\n\na.png,a.png,1\n", r"list.csv row 3: names a.png twice; a pair needs 2"),
        ("a.png,b.png,1\nb.png,c.png,1\na.png,c.png,0\n", r"list.csv row 3: lists as different"),
        ("a,b,same\n", r"list.csv lists no pairs; write one per row: a,b,same"),
    ],
)
def test_a_bad_list_names_the_file_and_the_row(tmp_path: Path, text: str, message: str) -> None:
    _images(tmp_path, "abc")
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        PairList(_write(tmp_path, text))


def test_closure_trains_on_components_and_warns_when_they_explode(tmp_path: Path) -> None:
    _images(tmp_path, "abcdefghijkl")
    chain = "".join(f"{x}.png,{y}.png,1\n" for x, y in itertools.pairwise("abcdefghijkl"))
    with pytest.warns(UserWarning, match="closure joins 12 of 12 images"):
        data = PairList(_write(tmp_path, chain), closure=True)
    assert data.tuples is None and data.num_classes == 1
    fine = PairList(_write(tmp_path, "a.png,b.png,1\nc.png,d.png,1\n" * 1, "two.csv"))
    assert fine.num_classes == 2


def test_the_sampler_yields_whole_rows_once_an_epoch_and_splits_them_across_ranks() -> None:
    tuples = np.arange(30).reshape(10, 3)
    one = TupleSampler(tuples, batch_size=12, seed=3)
    batches = list(one)
    assert len(one) == 3 and all(len(b) == 12 for b in batches)
    rows = [tuple(b[i : i + 3]) for b in batches for i in range(0, 12, 3)]
    assert set(rows) == {tuple(r) for r in tuples.tolist()}  # each row seen; 2 repeat to fill
    ranks = [list(TupleSampler(tuples, 12, seed=3, num_replicas=2, rank=r)) for r in (0, 1)]
    assert [a + b for a, b in zip(*ranks, strict=True)] == batches
    one.set_epoch(1)
    assert list(one) != batches


def _brute(labels: list[int], width: int, in_batch: bool) -> set[tuple[int, ...]]:
    """Every pair (kind, i, j) or triplet (a, p, n) a listed batch should give, by loops."""
    out: set[tuple[int, ...]] = set()
    rows = [list(range(s, s + width)) for s in range(0, len(labels), width)]
    for r, row in enumerate(rows):
        if width == 3:
            out.add(tuple(row))
        else:
            out.add((int(labels[row[0]] == labels[row[1]]), row[0], row[1]))
        for other in range(len(labels)) if in_batch else []:
            if other // width == r:
                continue
            if width == 3 and labels[other] != labels[row[0]]:
                out.add((row[0], row[1], other))
            if width == 2:
                for i in row:
                    if labels[i] != labels[other]:
                        out.add((0, i, other))
    return out


@pytest.mark.parametrize("width", [2, 3])
@pytest.mark.parametrize("in_batch", [False, True])
def test_the_listed_miner_equals_a_loop(width: int, in_batch: bool) -> None:
    gen = torch.Generator().manual_seed(width)
    for _ in range(5):
        labels = torch.randint(0, 4, (4 * width,), generator=gen)
        if width == 3:  # a listed triplet's anchor and positive share a component
            labels[1::3] = labels[0::3]
            labels[2::3] = (labels[0::3] + 1) % 4
        out = ListedMiner(width, in_batch_negatives=in_batch)(torch.zeros(len(labels), 2), labels)
        if width == 3:
            assert isinstance(out, Triplets)
            got = set(zip(*(t.tolist() for t in out), strict=True))
        else:
            assert isinstance(out, Pairs)
            got = {(1, a, p) for a, p in zip(out.a1.tolist(), out.p.tolist(), strict=True)}
            got |= {(0, a, n) for a, n in zip(out.a2.tolist(), out.n.tolist(), strict=True)}
            assert len(out.a2) == len(set(zip(out.a2.tolist(), out.n.tolist(), strict=True)))
        assert got == _brute(labels.tolist(), width, in_batch)


def test_the_loss_gets_exactly_the_listed_pairs_of_each_batch(tmp_path: Path) -> None:
    _images(tmp_path, "abcdefgh")
    text = "a.png,b.png,1\nc.png,d.png,0\ne.png,f.png,1\ng.png,h.png,0\nb.png,e.png,0\n"
    data = PairList(_write(tmp_path, text))
    listed = {tuple(r) for r in data.tuples.tolist()}  # type: ignore[union-attr]
    seen = set()
    for batch in TupleSampler(data.tuples, batch_size=4, seed=0):  # type: ignore[arg-type]
        labels = torch.from_numpy(data.labels[batch])
        pairs = ListedMiner(2, in_batch_negatives=False)(torch.zeros(4, 2), labels)
        mined = {(batch[a], batch[b]) for a, b in zip(*(pairs.a1.tolist(), pairs.p.tolist()),
                                                      strict=True)}  # fmt: skip
        mined |= {(batch[a], batch[b]) for a, b in zip(pairs.a2.tolist(), pairs.n.tolist(),
                                                       strict=True)}  # fmt: skip
        assert mined == {(batch[i], batch[i + 1]) for i in (0, 2)} and mined <= listed
        seen |= mined
    assert seen == listed


@pytest.mark.parametrize(("kind", "loss"), [("pairs", "contrastive"), ("triplets", "triplet")])
def test_a_run_trains_from_a_list(tmp_path: Path, kind: str, loss: str) -> None:
    _images(tmp_path, "abcdefgh")
    pairs = "a.png,b.png,1\nc.png,d.png,0\ne.png,f.png,1\ng.png,h.png,1\n"
    triplets = "a.png,b.png,c.png\nc.png,d.png,e.png\ne.png,f.png,g.png\ng.png,h.png,a.png\n"
    path = _write(tmp_path, pairs if kind == "pairs" else triplets)
    (tmp_path / "run.yaml").write_text("epochs: 1\n")
    sets = [f"data.train={{name: {kind}, file: {path}, channels: 1}}",
            "data.test={name: digits, split: test, as_vectors: false}",
            "model.backbone={name: conv4, in_channels: 1, channels: 4, num_blocks: 2}",
            "model.embedding_dim=4", "sampler.batch_size=6", "sampler.m_per_class=2",
            f"loss={{name: {loss}}}", "runtime.progress=false", "output.report=false",
            f"output.dir={tmp_path / 'run'}"]  # fmt: skip
    outcome = run_training(load_config(tmp_path / "run.yaml", sets))
    assert outcome.result.steps == 2  # 4 rows: 3 pairs or 2 triplets a batch
    config = load_config(tmp_path / "run.yaml", [*sets, "miner={name: listed}"])
    miner = build_miner(config, build_data(config).train)
    assert isinstance(miner, ListedMiner) and miner.width == (2 if kind == "pairs" else 3)
    with pytest.raises(ValueError, match=f"data.train is a {kind[:-1]} list, trained on its rows"):
        wrong = [*sets, "miner={name: batch_hard}", f"output.dir={tmp_path / 'x'}"]
        run_training(load_config(tmp_path / "run.yaml", wrong))
