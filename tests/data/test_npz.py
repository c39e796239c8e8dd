"""The npz dataset: items, labels and row selections equal direct numpy indexing of the file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from deepmetric.config import load_config
from deepmetric.data import NpzDataset, build_dataset
from deepmetric.runs import build_data, run_training

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "omniglot_npz.yaml"


def toy(tmp_path: Path, n: int = 24, **more: np.ndarray) -> tuple[Path, dict[str, np.ndarray]]:
    """An Omniglot-like file: 6 alphabets x 2 characters x 2 drawings, rows in class order."""
    rng = np.random.default_rng(0)
    arrays = {
        "images": rng.integers(0, 256, size=(n, 5, 4)).astype(np.uint8),
        "labels": (np.arange(n) // 2).astype(np.int32),
        "alphabet": (np.arange(n) // 4).astype(np.int32),
        "drawing": (np.arange(n) % 2 + 1).astype(np.int8),
        "split": np.array(["background"] * (n // 2) + ["evaluation"] * (n - n // 2)),
        "class_name": np.array([f"alpha{c // 2}/character{c % 2 + 1:02d}" for c in range(n // 2)]),
        **more,
    }
    path = tmp_path / "toy.npz"
    np.savez(path, **arrays)  # type: ignore[arg-type]
    return path, arrays


def items(data: NpzDataset) -> np.ndarray:
    return np.stack([data[i][0].numpy() for i in range(len(data))])


def expected_ids(raw: np.ndarray) -> list[int]:
    """Contiguous class ids in sorted order of the raw labels, written out with a dict."""
    order = {value: i for i, value in enumerate(sorted(set(raw.tolist())))}
    return [order[value] for value in raw.tolist()]


def test_every_row_as_a_float_image_with_a_channel_axis(tmp_path: Path) -> None:
    path, a = toy(tmp_path)
    data = NpzDataset(path)
    assert len(data) == 24 and data.channels == 1 and data.paths is None
    np.testing.assert_allclose(items(data), a["images"][:, None] / 255.0, atol=1e-7)
    assert data[3][0].dtype == torch.float32 and data[3][1] == int(a["labels"][3])
    assert data.labels.tolist() == expected_ids(a["labels"])
    assert data.class_names == [str(c) for c in range(12)]
    assert data.extra["item_id"].tolist() == list(range(24))


@pytest.mark.parametrize(
    ("where", "mask"),
    [
        ({"alphabet": [1, 4]}, lambda a: (a["alphabet"] == 1) | (a["alphabet"] == 4)),
        ({"alphabet": 2}, lambda a: a["alphabet"] == 2),
        ({"alphabet": {"min": 1, "max": 3}}, lambda a: (a["alphabet"] >= 1) & (a["alphabet"] <= 3)),
        ({"alphabet": {"min": 4}}, lambda a: a["alphabet"] >= 4),
        ({"alphabet": {"max": 0}}, lambda a: a["alphabet"] <= 0),
        ({"split": ["evaluation"]}, lambda a: a["split"] == "evaluation"),
        ({"split": "background", "drawing": [2]}, lambda a: (a["split"] == "background") & (a["drawing"] == 2)),  # noqa: E501
    ],
)  # fmt: skip
def test_where_keeps_the_rows_numpy_selects(tmp_path: Path, where: dict, mask: object) -> None:
    path, a = toy(tmp_path)
    rows = mask(a)  # type: ignore[operator]
    data = NpzDataset(path, where=where, extra=["alphabet", "drawing"])
    np.testing.assert_allclose(items(data), a["images"][rows][:, None] / 255.0, atol=1e-7)
    assert data.labels.tolist() == expected_ids(a["labels"][rows])
    assert data.extra["item_id"].tolist() == np.flatnonzero(rows).tolist()
    assert data.extra["alphabet"].tolist() == a["alphabet"][rows].tolist()
    assert data.extra["drawing"].tolist() == a["drawing"][rows].tolist()


def test_class_names_from_a_per_class_array(tmp_path: Path) -> None:
    path, a = toy(tmp_path)
    data = NpzDataset(path, where={"alphabet": [2, 5]}, class_names="class_name")
    assert data.class_names == [
        "alpha2/character01",
        "alpha2/character02",
        "alpha5/character01",
        "alpha5/character02",
    ]
    names = [data.class_names[c] for c in data.labels]
    rows = np.isin(a["alphabet"], [2, 5])
    assert names == a["class_name"][a["labels"][rows]].tolist()


def test_group_disjoint_split_from_the_config(tmp_path: Path) -> None:
    """configs/omniglot_npz.yaml on a 30-alphabet file: alphabets 0-19 train, 20-29 test."""
    rng = np.random.default_rng(1)
    n = 30 * 2 * 3  # 30 alphabets, 2 characters each, 3 drawings
    arrays = {
        "images": rng.integers(0, 256, size=(n, 28, 28)).astype(np.uint8),
        "labels": np.arange(n) // 3,
        "alphabet": np.arange(n) // 6,
        "class_name": np.array([f"a{c // 2}/c{c % 2}" for c in range(n // 3)]),
    }
    np.savez(tmp_path / "omni.npz", **arrays)  # type: ignore[arg-type]
    file = f"{tmp_path / 'omni.npz'}"
    config = load_config(CONFIG, [f"data.train.path={file}", f"data.test.path={file}"])
    data = build_data(config)
    train_rows, test_rows = arrays["alphabet"] < 20, arrays["alphabet"] >= 20
    assert data.train.extra["item_id"].tolist() == np.flatnonzero(train_rows).tolist()
    assert data.test.extra["item_id"].tolist() == np.flatnonzero(test_rows).tolist()
    assert set(data.train.extra["alphabet"].tolist()) == set(range(20))
    assert set(data.test.extra["alphabet"].tolist()) == set(range(20, 30))
    assert not set(data.train.class_names) & set(data.test.class_names)
    assert data.test.num_classes == 20 and data.train.num_classes == 40
    assert data.test[0][0].shape == (1, 28, 28)


def test_vectors_rgb_images_and_string_labels(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    vectors = rng.random((6, 3)).astype(np.float32)
    rgb = rng.integers(0, 256, size=(6, 3, 4, 4)).astype(np.uint8)
    names = np.array(["cat", "ant", "cat", "bee", "ant", "bee"])
    np.savez(tmp_path / "v.npz", x=vectors, rgb=rgb, name=names)
    data = NpzDataset(tmp_path / "v.npz", inputs="x", labels="name")
    np.testing.assert_array_equal(items(data), vectors)
    assert data.class_names == ["ant", "bee", "cat"] and data.labels.tolist() == [2, 0, 2, 1, 0, 1]
    data = NpzDataset(tmp_path / "v.npz", inputs="rgb", labels="name", where={"name": ["bee"]})
    np.testing.assert_allclose(items(data), rgb[[3, 5]] / 255.0, atol=1e-7)
    assert data.channels == 3


def test_channels_and_image_size(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    rgb = rng.integers(0, 256, size=(2, 3, 4, 4)).astype(np.uint8)
    path, a = toy(tmp_path)
    np.savez(tmp_path / "rgb.npz", images=rgb, labels=[0, 1])
    grey = NpzDataset(tmp_path / "rgb.npz", channels=1)
    luma = np.einsum("nchw,c->nhw", rgb / 255.0, [0.299, 0.587, 0.114])[:, None]
    np.testing.assert_allclose(items(grey), luma, atol=1e-6)
    assert grey.channels == 1
    colour = NpzDataset(path, channels=3)
    np.testing.assert_allclose(items(colour), np.repeat(a["images"][:, None], 3, 1) / 255.0)
    small = NpzDataset(path, image_size=(3, 2))
    resized = torch.nn.functional.interpolate(
        torch.from_numpy(a["images"][:, None] / 255.0).float(),
        size=(3, 2),
        mode="bilinear",
        antialias=True,
    )
    np.testing.assert_allclose(items(small), resized.clamp(0, 1).numpy(), atol=1e-6)


def test_built_from_a_spec_and_subset_keeps_the_fields(tmp_path: Path) -> None:
    path, a = toy(tmp_path)
    spec = {"name": "npz", "path": str(path), "where": {"alphabet": [0, 3]}, "extra": ["drawing"]}
    data = build_dataset(spec)
    assert isinstance(data, NpzDataset) and len(data) == 8
    part = data.subset([6, 1])
    rows = np.flatnonzero(np.isin(a["alphabet"], [0, 3]))[[6, 1]]
    assert part.extra["item_id"].tolist() == rows.tolist() == [14, 1]
    assert part.extra["drawing"].tolist() == a["drawing"][rows].tolist()
    np.testing.assert_allclose(items(part), a["images"][rows][:, None] / 255.0, atol=1e-7)
    with pytest.raises(
        KeyError, match=r"unknown parameter 'wher' in dataset '\w+'; did you mean 'where'"
    ):
        build_dataset({"name": "npz", "path": str(path), "wher": {}})


def test_file_errors_name_the_file_and_the_fix(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"npz: .*missing.npz .*does not exist.*--set"):
        NpzDataset(tmp_path / "missing.npz")
    (tmp_path / "text.npz").write_text("not an archive")
    with pytest.raises(ValueError, match=r"text.npz is not a readable .npz archive.*numpy.savez"):
        NpzDataset(tmp_path / "text.npz")
    np.save(tmp_path / "one.npy", np.zeros(3))
    with pytest.raises(ValueError, match=r"one.npy holds a single .npy array, not a .npz"):
        NpzDataset(tmp_path / "one.npy")
    path, _ = toy(tmp_path)
    (tmp_path / "cut.npz").write_bytes(path.read_bytes()[:-300])  # no zip directory left
    with pytest.raises(ValueError, match=r"cut.npz is not a readable .npz archive"):
        NpzDataset(tmp_path / "cut.npz")
    damaged = bytearray(path.read_bytes())
    damaged[200:240] = bytes(b ^ 0xFF for b in damaged[200:240])  # inside the images member
    (tmp_path / "flipped.npz").write_bytes(bytes(damaged))
    with pytest.raises(ValueError, match=r"flipped.npz: array 'images' is damaged .*write it"):
        NpzDataset(tmp_path / "flipped.npz")


def test_missing_keys_list_the_arrays_present(tmp_path: Path) -> None:
    path, _ = toy(tmp_path)
    keys = "'images', 'labels', 'alphabet', 'drawing', 'split', 'class_name'"
    with pytest.raises(KeyError, match=f"toy.npz has no array 'image'; its arrays: {keys}"):
        NpzDataset(path, inputs="image")
    with pytest.raises(KeyError, match="has no array 'script'"):
        NpzDataset(path, where={"script": [0]})
    with pytest.raises(KeyError, match="has no array 'camera'"):
        NpzDataset(path, extra=["camera"])


def test_object_arrays_are_refused(tmp_path: Path) -> None:
    path, _ = toy(tmp_path, tags=np.array([{"a": 1}] * 24, dtype=object))
    NpzDataset(path)  # an object array that is not asked for is never read
    with pytest.raises(ValueError, match=r"array 'tags' cannot be read without pickle.*astype"):
        NpzDataset(path, extra=["tags"])


def test_length_mismatches(tmp_path: Path) -> None:
    path, _ = toy(tmp_path, short=np.arange(5), grid=np.zeros((24, 2)))
    one_per_row = r"'short' must be 1-D with one entry per row of 'images' \(24\); got shape \(5,\)"
    with pytest.raises(ValueError, match=one_per_row):
        NpzDataset(path, labels="short")
    with pytest.raises(ValueError, match=r"'short' must be 1-D .*got shape \(5,\)"):
        NpzDataset(path, where={"short": [1]})
    with pytest.raises(ValueError, match=r"'grid' must be 1-D .*got shape \(24, 2\)"):
        NpzDataset(path, extra=["grid"])


@pytest.mark.parametrize(
    ("where", "match"),
    [
        ({"alphabet": [2, 9]}, r"where.alphabet: \[9\] match no row of .*toy.npz; 'alphabet' holds values \[0, 1, 2, 3, 4, 5\]"),  # noqa: E501
        ({"split": ["train"]}, r"\['train'\] match no row.*values \['background', 'evaluation'\]"),
        ({"labels": [99]}, r"\[99\] match no row.*12 values in \[0, 11\]"),
        ({"alphabet": {"min": 6}}, r"where .* selects no row of .*toy.npz \(at 'alphabet'.*\); widen"),  # noqa: E501
        ({"split": "background", "alphabet": [4]}, r"selects no row .*\(at 'alphabet'"),
        ({"split": {"min": 0}}, r"where.split: a min/max range needs a numeric field; .*<U10"),
        ({"alphabet": {"low": 0}}, r"where.alphabet must be a list of values or \{min: ..., max: ...\}"),  # noqa: E501
        ({"alphabet": {}}, r"where.alphabet must be a list of values or"),
        ({"alphabet": {"min": "a"}}, r"where.alphabet.min must be a number; got 'a'"),
        ({"alphabet": []}, r"where.alphabet must be a value, a non-empty list"),
        ({"alphabet": None}, r"where.alphabet must be a value, a non-empty list"),
    ],
)  # fmt: skip
def test_where_errors(tmp_path: Path, where: dict, match: str) -> None:
    path, _ = toy(tmp_path)
    with pytest.raises(ValueError, match=match):
        NpzDataset(path, where=where)


def test_value_errors_name_the_file(tmp_path: Path) -> None:
    path, _ = toy(
        tmp_path,
        big=np.full((24, 2, 2), 2.0),
        words=np.array(["x"] * 24),
        few=np.array(["a", "b"]),
        table=np.zeros((12, 2)),
        vectors=np.zeros((24, 3), np.float32),
    )
    with pytest.raises(ValueError, match=r"toy.npz: float images must lie in \[0, 1\]"):
        NpzDataset(path, inputs="big")
    with pytest.raises(ValueError, match=r"toy.npz: class_names='class_name' needs integer labels"):
        NpzDataset(path, labels="words", class_names="class_name")
    with pytest.raises(
        ValueError, match=r"labels must index 'few' \(length 2\); got labels in \[0"
    ):
        NpzDataset(path, class_names="few")
    with pytest.raises(
        ValueError, match=r"class_names array 'table' must be 1-D; got shape \(12, 2"
    ):
        NpzDataset(path, class_names="table")
    with pytest.raises(ValueError, match=r"channels applies to images only; got 1 for vectors"):
        NpzDataset(path, inputs="vectors", channels=1)
    with pytest.raises(ValueError, match=r"channels must be 1 \(greyscale\) or 3 \(RGB\); got 2"):
        NpzDataset(path, channels=2)
    with pytest.raises(ValueError, match=r"extra must be a list of array names; got 'alphabet'"):
        NpzDataset(path, extra="alphabet")


def test_the_faces_config_trains_on_people_0_to_29_and_tests_on_the_others(tmp_path: Path) -> None:
    """configs/faces.yaml on an Olivetti-shaped file (40 people, 2 images of 64x64 each)."""
    rng = np.random.default_rng(3)
    labels = np.repeat(np.arange(40), 2).astype(np.int32)
    images = rng.integers(0, 256, size=(80, 64, 64)).astype(np.uint8)
    np.savez(tmp_path / "faces.npz", images=images, labels=labels)
    file = tmp_path / "faces.npz"
    sets = [f"data.train.path={file}", f"data.test.path={file}", "epochs=1",
            "model.backbone.channels=4", f"output.dir={tmp_path / 'run'}", "output.report=false",
            "output.baselines=false", "sampler.batch_size=8", "sampler.m_per_class=2"]  # fmt: skip
    config = load_config(CONFIG.parent / "faces.yaml", sets)
    data = build_data(config)
    assert data.train.extra["item_id"].tolist() == list(range(60))
    assert data.test.extra["item_id"].tolist() == list(range(60, 80))
    outcome = run_training(config)
    assert {"auc", "eer", "map_at_r"} <= set(outcome.metrics)
