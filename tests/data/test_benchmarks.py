"""Benchmark loaders on tiny copies written in each data set's native layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from deepmetric.data import (
    CUB200,
    Cars196,
    InShop,
    LFWDataset,
    LFWPairs,
    Market1501,
    Omniglot,
    StanfordOnlineProducts,
)
from tests.data import fixtures as fx


@pytest.mark.parametrize("split", ["train", "test"])
def test_cub_splits_by_class_id_and_joins_labels_by_image_id(tmp_path: Path, split: str) -> None:
    rows = fx.make_cub(tmp_path)
    data = CUB200(tmp_path, split)
    fx.assert_matches(data, rows[split])
    assert data.class_names == sorted({row.cls for row in rows[split]})  # class-id order
    both = CUB200(tmp_path, "all")
    fx.assert_matches(both, rows["train"] + rows["test"])


def test_cub_accepts_the_archive_folder_and_resizes(tmp_path: Path) -> None:
    fx.make_cub(tmp_path / "CUB_200_2011")
    data = CUB200(tmp_path, "test", image_size=(4, 6), channels=1)
    image, _ = data[1]
    assert image.shape == (1, 4, 6) and image.dtype.is_floating_point
    expected = fx.pil_oracle(Path(data.paths[1]), (4, 6), "L")  # type: ignore[index]
    np.testing.assert_allclose(image.numpy(), expected, atol=1e-6)


def test_cars_reads_a_real_mat_file(tmp_path: Path) -> None:
    rows = fx.make_cars(tmp_path)
    for split in ("train", "test"):
        data = Cars196(tmp_path, split)
        fx.assert_matches(data, rows[split])
        assert data.extra["bbox"].shape == (len(rows[split]), 4)
    assert Cars196(tmp_path, "train").class_names == ["Make Model 1", "Make Model 98"]


def test_sop_reads_the_ebay_lists(tmp_path: Path) -> None:
    rows = fx.make_sop(tmp_path)
    for split in ("train", "test"):
        fx.assert_matches(StanfordOnlineProducts(tmp_path, split), rows[split])
    assert StanfordOnlineProducts(tmp_path, "test").class_names == ["11319", "11320"]


@pytest.mark.parametrize("official", [True, False])
def test_inshop_query_and_gallery_share_labels(tmp_path: Path, official: bool) -> None:
    rows = fx.make_inshop(tmp_path, official)
    for split in ("train", "query", "gallery", "test"):
        fx.assert_matches(InShop(tmp_path, split), rows[split])
    query, gallery = InShop(tmp_path, "query"), InShop(tmp_path, "gallery")
    assert query.class_names == gallery.class_names == ["id_00000007", "id_00000009", "id_00000011"]
    assert InShop(tmp_path, "train").class_names == ["id_00000002", "id_00000005"]


def test_market_parses_identity_and_camera_and_keeps_junk(tmp_path: Path) -> None:
    rows = fx.make_market(tmp_path)
    for split in ("train", "query", "gallery", "test"):
        fx.assert_matches(Market1501(tmp_path, split), rows[split])
    gallery, query = Market1501(tmp_path, "gallery"), Market1501(tmp_path, "query")
    assert gallery.class_names == query.class_names == ["-1", "0000", "0003", "0011"]
    assert sorted(gallery.extra["pid"].tolist()) == [-1, 0, 3, 3, 11]
    assert not any(p.endswith("Thumbs.db") for p in gallery.paths or [])
    assert gallery.skipped == []


def test_market_skips_misnamed_files_with_a_warning(tmp_path: Path) -> None:
    fx.make_market(tmp_path)
    fx.write_image(tmp_path / "query" / "person.jpg", 7)
    with pytest.warns(UserWarning, match=r"skipped 1 misnamed file\(s\) such as .*person\.jpg"):
        query = Market1501(tmp_path, "query")
    assert len(query) == 2 and query.skipped[0][0].endswith("person.jpg")
    with pytest.raises(ValueError, match=r"misnamed file\(s\).*person\.jpg"):
        Market1501(tmp_path, "query", strict=True)


def test_lfw_people_and_pairs(tmp_path: Path) -> None:
    rows = fx.make_lfw(tmp_path)
    images = LFWDataset(tmp_path)
    fx.assert_matches(images, rows)
    pairs = LFWPairs(tmp_path)
    assert len(pairs) == len(fx.LFW_PAIRS)
    assert pairs.is_same.tolist() == [same for _, same, *_ in fx.LFW_PAIRS]
    assert pairs.fold.tolist() == [fold for _, _, fold, *_ in fx.LFW_PAIRS]
    expected = [
        (str(fx.lfw_path(tmp_path, a)), str(fx.lfw_path(tmp_path, b))) for *_, a, b in fx.LFW_PAIRS
    ]
    assert pairs.pair_paths == expected
    first, second, same = pairs[2]
    np.testing.assert_array_equal(first.numpy(), fx.pil_oracle(Path(expected[2][0])))
    np.testing.assert_array_equal(second.numpy(), fx.pil_oracle(Path(expected[2][1])))
    assert same == 0


def test_lfw_pairs_drop_pairs_with_a_missing_image(tmp_path: Path) -> None:
    fx.make_lfw(tmp_path)
    fx.lfw_path(tmp_path, ("Carol_King", 1)).unlink()
    with pytest.warns(UserWarning, match=r"2 of 8 pair\(s\) name an image that is missing"):
        pairs = LFWPairs(tmp_path)
    assert len(pairs) == 6 and pairs.fold.tolist() == [0, 0, 0, 1, 1, 1]
    assert [line for line, _ in pairs.skipped_pairs] == [
        "Alice_Smith 1 Carol_King 1",
        "Carol_King 1 Dave_Lee 2",
    ]
    with pytest.raises(ValueError, match=r"Restore the images, or pass strict=False"):
        LFWPairs(tmp_path, strict=True)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("10 300\nA 1 2\n", r"declares 10 fold\(s\) of 300 \+ 300 pairs = 6000 lines"),
        ("ten\n", r"line 1 must be '<folds> <pairs per fold>'"),
        ("1 1\nA 1\nA 1 B 1\n", r"line 2: expected 'name i j'; got 'A 1'"),
        ("1\nA 1 2\nA 1 2\n", r"line 3: expected 'name1 i name2 j'; got 'A 1 2'"),
    ],
)
def test_lfw_pairs_file_errors_name_the_line(tmp_path: Path, text: str, message: str) -> None:
    fx.make_lfw(tmp_path)
    (tmp_path / "pairs.txt").write_text(text)
    with pytest.raises(ValueError, match=message):
        LFWPairs(tmp_path)


def test_omniglot_background_and_evaluation(tmp_path: Path) -> None:
    rows = fx.make_omniglot(tmp_path)
    for split, alias in (("background", "train"), ("evaluation", "test")):
        fx.assert_matches(Omniglot(tmp_path, split), rows[split])
        assert Omniglot(tmp_path, alias).paths == Omniglot(tmp_path, split).paths
    data = Omniglot(tmp_path, "background", channels=1, image_size=4)
    assert data.class_names == ["Greek/character01", "Greek/character02", "Latin/character01"]
    assert data[0][0].shape == (1, 4, 4)


@pytest.mark.parametrize(
    ("make", "cls", "split", "missing", "site"),
    [
        (fx.make_cub, CUB200, "train", "image_class_labels.txt", "vision.caltech.edu"),
        (fx.make_cars, Cars196, "train", "cars_annos.mat", "ai.stanford.edu"),
        (fx.make_sop, StanfordOnlineProducts, "test", "Ebay_test.txt", "cvgl.stanford.edu"),
        (fx.make_inshop, InShop, "train", "Eval/list_eval_partition.txt", "DeepFashion"),
        (fx.make_market, Market1501, "query", "query", "project_reid"),
        (fx.make_lfw, LFWDataset, "all", "lfw", "vis-www.cs.umass.edu"),
        (fx.make_omniglot, Omniglot, "evaluation", "images_evaluation", "brendenlake/omniglot"),
    ],
)
def test_a_missing_file_names_the_path_and_the_download_page(
    tmp_path: Path, make: object, cls: type, split: str, missing: str, site: str
) -> None:
    make(tmp_path)  # type: ignore[operator]
    target = tmp_path / missing
    if target.is_dir():
        for path in sorted(target.rglob("*"), reverse=True):
            path.unlink() if path.is_file() else path.rmdir()
        target.rmdir()
    else:
        target.unlink()
    if cls is InShop:
        missing = "list_eval_partition.txt"  # the flat layout is the fallback it names
    with pytest.raises(FileNotFoundError, match=rf"expected {tmp_path}/{missing}.*{site}"):
        cls(tmp_path, split)


@pytest.mark.parametrize("cls", [CUB200, Cars196, StanfordOnlineProducts, InShop, Market1501])
def test_an_unknown_split_lists_the_valid_ones(tmp_path: Path, cls: type) -> None:
    with pytest.raises(ValueError, match=r"split must be one of 'train', .*; got 'val'"):
        cls(tmp_path, "val")


def test_a_damaged_listing_names_the_line(tmp_path: Path) -> None:
    fx.make_sop(tmp_path)
    with open(tmp_path / "Ebay_train.txt", "a") as handle:
        handle.write("99 1 1\n")
    with pytest.raises(ValueError, match=r"Ebay_train\.txt line 6: expected 4 .*fields; got 3"):
        StanfordOnlineProducts(tmp_path, "train")


def test_a_cars_mat_without_annotations_says_what_it_needs(tmp_path: Path) -> None:
    from scipy.io import savemat

    savemat(tmp_path / "cars_annos.mat", {"class_names": np.array(["a"], dtype=object)})
    with pytest.raises(ValueError, match=r"struct array 'annotations' with fields"):
        Cars196(tmp_path)
