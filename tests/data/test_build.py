"""build_dataset: every name builds from a spec; misses and unknown parameters say why."""

from __future__ import annotations

from pathlib import Path

import pytest

from deepmetric import data
from tests.data import fixtures as fx

NAMES = [
    "captions",
    "cars196",
    "csv",
    "cub200",
    "digits",
    "folder",
    "inshop",
    "lfw",
    "market1501",
    "npz",
    "omniglot",
    "pairs",
    "shapes",
    "sop",
    "triplets",
]


def test_names() -> None:
    assert data.names() == NAMES


@pytest.mark.parametrize(
    ("name", "make", "split", "expected"),
    [
        ("cub200", fx.make_cub, "test", data.CUB200),
        ("cars196", fx.make_cars, "train", data.Cars196),
        ("sop", fx.make_sop, "train", data.StanfordOnlineProducts),
        ("inshop", fx.make_inshop, "gallery", data.InShop),
        ("market1501", fx.make_market, "query", data.Market1501),
        ("lfw", fx.make_lfw, "all", data.LFWDataset),
        ("omniglot", fx.make_omniglot, "evaluation", data.Omniglot),
    ],
)
def test_benchmarks_build_from_a_spec(
    tmp_path: Path, name: str, make: object, split: str, expected: type
) -> None:
    make(tmp_path)  # type: ignore[operator]
    built = data.build_dataset(
        {"name": name, "root": str(tmp_path), "split": split, "image_size": 4}
    )
    direct = expected(tmp_path, split, image_size=4)
    assert isinstance(built, expected) and built.paths == direct.paths
    assert built.labels.tolist() == direct.labels.tolist() and built[0][0].shape == (3, 4, 4)


def test_generic_formats_build_from_a_spec(tmp_path: Path) -> None:
    fx.make_folder(tmp_path / "imgs", {"a": 1, "b": 1})
    assert len(data.build_dataset({"name": "folder", "root": str(tmp_path / "imgs")})) == 2
    (tmp_path / "list.csv").write_text("path,label\nimgs/a/000.png,x\n")
    assert data.build_dataset({"name": "csv", "root": str(tmp_path / "list.csv")}).class_names == [
        "x"
    ]
    assert len(data.build_dataset({"name": "digits", "as_vectors": True})[0][0]) == 64


def test_misses_suggest_close_names() -> None:
    with pytest.raises(KeyError, match=r"unknown dataset 'cub'; did you mean 'cub200'\?"):
        data.build_dataset({"name": "cub", "root": "x"})
    with pytest.raises(
        KeyError, match=r"unknown parameter 'spilt' in dataset '\w+'; did you mean 'split'\?"
    ):
        data.build_dataset({"name": "digits", "spilt": "train"})
