"""Unreadable files are found when a dataset is built: skipped and reported, or an error."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from torch.utils.data import DataLoader

from deepmetric.data import ImageFolderDataset, image_problem, load_image
from deepmetric.data.images import check_images
from tests.data import fixtures as fx


def _tree(tmp_path: Path) -> tuple[list[fx.Row], dict[str, str]]:
    rows = fx.make_folder(tmp_path, {"good": 3, "mixed": 1})
    bad = fx.write_bad_files(tmp_path / "mixed")
    (tmp_path / "onlybad").mkdir()
    (tmp_path / "onlybad" / "zero.jpg").write_bytes(b"")
    return rows, {**bad, "zero.jpg": "empty file"}


def test_bad_files_are_skipped_counted_and_reported(tmp_path: Path) -> None:
    rows, bad = _tree(tmp_path)
    with pytest.warns(
        UserWarning, match=r"ImageFolderDataset: skipped 5 of 9 image file\(s\)"
    ) as record:
        data = ImageFolderDataset(tmp_path)
    assert len(record) == 1 and "dataset.skipped" in str(record[0].message)
    fx.assert_matches(data, rows)  # the class with no readable file is gone
    assert data.class_names == ["good", "mixed"]
    reasons = {Path(path).name: why for path, why in data.skipped}
    assert set(reasons) == set(bad)
    for name, start in bad.items():
        assert reasons[name].startswith(start), (name, reasons[name])
    seen = sum(len(labels) for _, labels in DataLoader(data, batch_size=2))  # a whole epoch
    assert seen == len(rows)


def test_strict_raises_naming_every_bad_file(tmp_path: Path) -> None:
    _, bad = _tree(tmp_path)
    with pytest.raises(
        ValueError, match=r"5 of 9 image file\(s\) cannot be read: .*pass strict=False"
    ) as info:
        ImageFolderDataset(tmp_path, strict=True)
    for name in bad:
        assert name in str(info.value)


def test_clean_data_builds_without_a_warning(tmp_path: Path) -> None:
    fx.make_folder(tmp_path, {"a": 2})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert ImageFolderDataset(tmp_path).skipped == []


def test_fast_check_misses_what_only_decoding_finds_and_full_check_catches_it(
    tmp_path: Path,
) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), (1, 2, 3)).save(buffer, format="BMP")
    path = tmp_path / "cut.bmp"
    path.write_bytes(buffer.getvalue()[:200])  # BMP's header is intact, the pixels are not
    assert image_problem(str(path), "fast") is None
    assert (image_problem(str(path), "full") or "").startswith("corrupt image")
    with pytest.raises(OSError, match=r"cannot decode image .*cut\.bmp .*check='full'"):
        load_image(str(path))
    assert image_problem(str(path), "none") is None
    assert image_problem(str(tmp_path / "gone.png")) == "missing file"


def test_checks_are_cached_but_see_a_changed_file(tmp_path: Path) -> None:
    path = fx.write_image(tmp_path / "x.jpg", 0)
    assert image_problem(str(path)) is None
    good = path.read_bytes()
    path.write_bytes(good[:-20])  # a new size: the cache key changes
    assert image_problem(str(path)) == "truncated JPEG (no end-of-image marker)"


def test_many_files_are_checked_on_threads_in_order(tmp_path: Path) -> None:
    paths = [str(fx.write_image(tmp_path / f"{i}.png", i, (2, 2))) for i in range(70)]
    (tmp_path / "9.png").write_bytes(b"")
    with pytest.warns(UserWarning, match=r"owner: skipped 1 of 70"):
        keep, skipped = check_images(paths, check="fast", strict=False, owner="owner")
    assert keep.tolist() == [p != str(tmp_path / "9.png") for p in paths]
    assert skipped == [(str(tmp_path / "9.png"), "empty file (0 bytes)")]


def test_load_image_converts_modes_and_keeps_native_size(tmp_path: Path) -> None:
    path = tmp_path / "p.png"
    Image.new("P", (3, 2), 7).save(path)
    image = load_image(str(path))
    assert image.shape == (3, 2, 3)
    np.testing.assert_array_equal(image.numpy(), fx.pil_oracle(path))
    assert load_image(str(path), channels=1).shape == (1, 2, 3)


@pytest.mark.parametrize(
    ("name", "array"),
    [
        ("a.png", np.full((4, 4), 32768, dtype=np.uint16)),  # a 16-bit PNG at half range
        ("a.tiff", np.full((4, 4), 0.5, dtype=np.float32)),  # a float TIFF at half range
    ],
)
def test_high_depth_images_keep_their_range(tmp_path: Path, name: str, array: np.ndarray) -> None:
    path = tmp_path / name
    Image.fromarray(array).save(path)
    for channels in (1, 3):
        pixels = load_image(str(path), channels=channels)
        assert pixels.shape[0] == channels
        assert abs(float(pixels.mean()) - 0.5) < 1 / 255 and float(pixels.std()) == 0


def test_float_images_outside_0_1_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "a.tiff"
    Image.fromarray(np.full((4, 4), 300.0, dtype=np.float32), "F").save(path)
    with pytest.raises(OSError, match=r"F pixels range over \[300, 300\].*convert the image to"):
        load_image(str(path))
