"""Generic formats: folder per class, CSV, in-memory arrays, digits, and the shared base."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from torch.utils.data import DataLoader

from deepmetric.data import (
    ArrayDataset,
    CSVDataset,
    DigitsDataset,
    ImageFolderDataset,
    LabeledDataset,
)
from tests.data import fixtures as fx


def test_folder_per_class_with_and_without_split(tmp_path: Path) -> None:
    rows = fx.make_folder(tmp_path / "train", {"zebra": 2, "ant": 3})
    (tmp_path / "train" / ".hidden").mkdir()
    data = ImageFolderDataset(tmp_path, "train")
    fx.assert_matches(data, rows)
    assert data.class_names == ["ant", "zebra"] and data.labels.tolist() == [0, 0, 0, 1, 1]
    assert ImageFolderDataset(tmp_path / "train").paths == data.paths
    images, labels = next(iter(DataLoader(data, batch_size=5)))
    assert images.shape == (5, 3, 8, 8) and images.dtype == torch.float32
    assert labels.tolist() == [0, 0, 0, 1, 1]


def test_folder_resizes_with_pil_bilinear(tmp_path: Path) -> None:
    fx.make_folder(tmp_path, {"a": 1})
    data = ImageFolderDataset(tmp_path, image_size=(5, 3), channels=1)
    image, _ = data[0]
    expected = fx.pil_oracle(Path(data.paths[0]), (5, 3), "L")  # type: ignore[index]
    np.testing.assert_allclose(image.numpy(), expected, atol=1e-6)
    assert 0.0 <= float(image.min()) and float(image.max()) <= 1.0


def test_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(
        FileNotFoundError, match=r"nowhere is not a directory; expected one sub-folder"
    ):
        ImageFolderDataset(tmp_path / "nowhere")
    with pytest.raises(ValueError, match=r"has no class sub-folders"):
        ImageFolderDataset(tmp_path)
    fx.make_folder(tmp_path, {"a": 1})
    with pytest.raises(ValueError, match=r"image_size must be positive; got 0"):
        ImageFolderDataset(tmp_path, image_size=0)
    with pytest.raises(ValueError, match=r"channels must be 1 \(greyscale\) or 3 \(RGB\); got 4"):
        ImageFolderDataset(tmp_path, channels=4)
    with pytest.raises(ValueError, match=r"check must be 'fast', 'full' or 'none'; got 'slow'"):
        ImageFolderDataset(tmp_path, check="slow")  # type: ignore[arg-type]
    (tmp_path / "b").mkdir()
    with pytest.raises(ValueError, match=r"class folder .*/b has no files; add its images"):
        ImageFolderDataset(tmp_path)


def _write_csv(tmp_path: Path) -> list[fx.Row]:
    rows = []
    lines = ["path,label,split,is_query,is_gallery,camera"]
    spec = [
        (10, "test", 1, 0, 3),
        (9, "train", 0, 0, 1),
        (10, "test", 0, 1, 2),
        (9, "test", 0, 1, 5),
    ]
    for i, (label, split, query, gallery, camera) in enumerate(spec):
        path = fx.write_image(tmp_path / "pics" / f"{i}.png", i)
        lines.append(f"pics/{i}.png,{label},{split},{query},{gallery},{camera}")
        extra = {
            "split": split,
            "is_query": bool(query),
            "is_gallery": bool(gallery),
            "camera": camera,
        }
        rows.append(fx.Row(path, str(label), extra))
    (tmp_path / "items.csv").write_text("\n".join(lines) + "\n")
    return rows


def test_csv_columns_split_and_numeric_labels(tmp_path: Path) -> None:
    rows = _write_csv(tmp_path)
    data = CSVDataset(tmp_path / "items.csv")
    fx.assert_matches(data, rows)
    assert data.class_names == ["9", "10"]  # numeric order, not string order
    assert data.extra["is_query"].dtype == bool and data.extra["camera"].dtype == np.int64
    fx.assert_matches(
        CSVDataset(tmp_path / "items.csv", "test"), [r for r in rows if r.extra["split"] == "test"]
    )


def test_csv_string_labels_and_errors(tmp_path: Path) -> None:
    fx.write_image(tmp_path / "a.png", 0)
    (tmp_path / "plain.csv").write_text("path,label\na.png,dog\na.png,cat\n")
    assert CSVDataset(tmp_path / "plain.csv").labels.tolist() == [1, 0]
    with pytest.raises(ValueError, match=r"has no 'split' column"):
        CSVDataset(tmp_path / "plain.csv", "train")
    _write_csv(tmp_path)
    with pytest.raises(
        ValueError, match=r"no rows with split='val'; splits found: \['test', 'train'\]"
    ):
        CSVDataset(tmp_path / "items.csv", "val")
    (tmp_path / "bad.csv").write_text("file,label\na.png,1\n")
    with pytest.raises(ValueError, match=r"missing path, found \['file', 'label'\]"):
        CSVDataset(tmp_path / "bad.csv")
    (tmp_path / "flag.csv").write_text("path,label,is_query\na.png,1,maybe\n")
    with pytest.raises(
        ValueError, match=r"flag\.csv line 2: is_query must be 0/1 or true/false; got 'maybe'"
    ):
        CSVDataset(tmp_path / "flag.csv")
    with pytest.raises(
        FileNotFoundError, match=r"none\.csv does not exist; root must be the CSV file"
    ):
        CSVDataset(tmp_path / "none.csv")
    (tmp_path / "nolabel.csv").write_text("path,label\na.png,1\na.png,\n")
    with pytest.raises(ValueError, match=r"nolabel\.csv line 3: the label is empty"):
        CSVDataset(tmp_path / "nolabel.csv")
    (tmp_path / "gone.csv").write_text("path,label\na.png,1\npics/gone.png,2\n")
    with pytest.raises(FileNotFoundError, match=r"gone\.csv line 3: .*gone\.png does not exist"):
        CSVDataset(tmp_path / "gone.csv")


def test_arrays_of_vectors_and_images() -> None:
    vectors = ArrayDataset(np.arange(6, dtype=np.float64).reshape(3, 2), np.array([5, 2, 5]))
    assert vectors.class_names == ["2", "5"] and vectors.labels.tolist() == [1, 0, 1]
    x, y = vectors[2]
    assert x.dtype == torch.float32 and x.tolist() == [4.0, 5.0] and y == 1
    assert vectors.paths is None
    pixels = np.random.default_rng(0).integers(0, 256, size=(2, 3, 6, 6)).astype(np.uint8)
    images = ArrayDataset(pixels, ["a", "b"], image_size=3)
    image, _ = images[1]
    reference = torch.nn.functional.interpolate(
        torch.from_numpy(pixels[1:]).float() / 255, size=(3, 3), mode="bilinear", antialias=True
    )[0]
    torch.testing.assert_close(image, reference)
    grey = ArrayDataset(torch.rand(4, 5, 5), [0, 1, 0, 1], class_names=["x", "y"])
    assert grey[0][0].shape == (1, 5, 5) and grey.class_names == ["x", "y"]


@pytest.mark.parametrize(
    ("inputs", "labels", "kwargs", "message"),
    [
        (np.zeros((2, 2, 3, 3, 3)), [0, 1], {}, r"got shape \(2, 2, 3, 3, 3\)"),
        (np.zeros((2, 2, 3, 3)), [0, 1], {}, r"1 or 3 channels; got shape \(2, 2, 3, 3\)"),
        (
            np.full((2, 3, 3), 2.0),
            [0, 1],
            {},
            r"float images must lie in \[0, 1\]; got values in \[2\.0, 2\.0\]",
        ),
        (np.zeros((2, 3)), [0], {}, r"labels must have shape \(2,\), one per input; got \(1,\)"),
        (np.zeros((2, 3)), [0, 1], {"image_size": 4}, r"image_size applies to images only"),
        (np.zeros((2, 3), dtype=np.int32), [0, 1], {}, r"inputs must be uint8 or floating point"),
        (np.array([[np.nan], [0.0]]), [0, 1], {}, r"inputs must be finite"),
        (
            np.zeros((2, 3)),
            [0.5, 1.0],
            {},
            r"labels must be integers or strings; got dtype float64",
        ),
        (np.zeros((2, 3)), [0, 3], {"class_names": ["a"]}, r"labels must lie in \[0, 1\)"),
    ],
)
def test_array_errors(
    inputs: np.ndarray, labels: list[object], kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        ArrayDataset(inputs, labels, **kwargs)  # type: ignore[arg-type]


def test_digits_match_scikit_learn() -> None:
    digits = load_digits()
    data = DigitsDataset()
    assert len(data) == 1797 and data.class_names == [str(d) for d in range(10)]
    assert np.array_equal(data.labels, digits.target)
    image, label = data[17]
    assert image.shape == (1, 8, 8) and label == digits.target[17]
    np.testing.assert_allclose(image[0].numpy(), digits.images[17] / 16.0, rtol=1e-6)
    vectors = DigitsDataset("test", as_vectors=True)
    np.testing.assert_allclose(
        vectors[0][0].numpy(), digits.data[vectors.extra["item_id"][0]] / 16.0, rtol=1e-6
    )
    assert vectors.class_names == ["5", "6", "7", "8", "9"]
    assert set(digits.target[DigitsDataset("train").extra["item_id"]]) == {0, 1, 2, 3, 4}
    assert DigitsDataset(image_size=4)[0][0].shape == (1, 4, 4)
    with pytest.raises(
        ValueError, match=r"digits split must be one of 'all', 'train', 'test'; got 'val'"
    ):
        DigitsDataset("val")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"image_size applies to images only"):
        DigitsDataset(as_vectors=True, image_size=4)


def test_subset_renumbers_classes_and_keeps_fields_aligned(tmp_path: Path) -> None:
    _write_csv(tmp_path)
    data = CSVDataset(tmp_path / "items.csv")
    part = data.subset([3, 0])
    assert part.paths == [data.paths[3], data.paths[0]]  # type: ignore[index]
    assert [part.class_names[c] for c in part.labels] == [
        data.class_names[data.labels[i]] for i in (3, 0)
    ]
    assert part.extra["camera"].tolist() == [5, 3] and len(data) == 4
    only = data.subset(np.array([0, 2]))
    assert only.class_names == ["10"] and only.labels.tolist() == [0, 0]
    arrays = DigitsDataset("train").subset([1, 0])
    assert torch.equal(arrays[0][0], DigitsDataset("train")[1][0])
    with pytest.raises(ValueError, match=r"indices must lie in \[0, 4\); got 0\.\.9"):
        data.subset([0, 9])


def test_base_validates_its_fields() -> None:
    with pytest.raises(ValueError, match=r"labels must be a 1-D integer array; got float64"):
        LabeledDataset(np.array([0.0]), ["a"])
    with pytest.raises(ValueError, match=r"item_id must have one entry per label \(2\); got 1"):
        LabeledDataset(np.array([0, 0]), ["a"], extra={"item_id": np.array([1])})
    with pytest.raises(NotImplementedError, match=r"has no files; override load_input"):
        LabeledDataset(np.array([0]), ["a"])[0]


def test_csv_errors_name_the_line_in_the_file_after_blank_lines(tmp_path: Path) -> None:
    from PIL import Image

    Image.new("RGB", (4, 4)).save(tmp_path / "a.png")
    (tmp_path / "list.csv").write_text("path,label\n\na.png,cat\n\n\na.png,\n")
    with pytest.raises(ValueError, match=r"list\.csv line 6: the label is empty"):
        CSVDataset(tmp_path / "list.csv")
