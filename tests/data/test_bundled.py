"""The bundled Omniglot background set: loads offline from the package, with its fields."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from deepmetric.data import build_dataset, bundled_omniglot, with_rotated_classes
from deepmetric.data.omniglot import BUNDLED


def test_bundled_set_loads_from_the_package_alone() -> None:
    assert BUNDLED.is_file()
    assert (
        "Copyright (c) 2015 Brenden Lake" in (BUNDLED.parent / "OMNIGLOT_LICENSE.txt").read_text()
    )
    data = build_dataset({"name": "omniglot"})
    assert (len(data), data.num_classes) == (19280, 964)
    alphabets = data.extra["alphabet"]
    assert len(np.unique(alphabets)) == 30 and alphabets.dtype.kind == "U"
    assert sorted(np.unique(data.extra["drawing"]).tolist()) == list(range(1, 21))
    x, label = data[0]
    assert x.shape == (1, 28, 28) and x.dtype == torch.float32 and 0 <= x.min() <= x.max() <= 1
    assert data.class_names[label].split("/")[0] == alphabets[0]
    # each character: 20 drawings by 20 drawers, all of one alphabet
    for c in (0, 500, 963):
        rows = np.flatnonzero(data.labels == c)
        assert len(rows) == 20 and len(set(data.extra["drawing"][rows].tolist())) == 20
        assert len(set(alphabets[rows].tolist())) == 1


def test_alphabets_channels_and_errors() -> None:
    latin = build_dataset({"name": "omniglot", "alphabets": ["Latin", "Greek"], "channels": 3})
    assert latin.num_classes == 26 + 24 and latin[0][0].shape == (3, 28, 28)
    assert set(latin.extra["alphabet"].tolist()) == {"Latin", "Greek"}
    with pytest.raises(ValueError, match="'Klingon'.*are not alphabets of the background set"):
        bundled_omniglot(["Klingon"])
    with pytest.raises(ValueError, match="only the background split is bundled"):
        build_dataset({"name": "omniglot", "split": "evaluation"})
    with pytest.raises(FileNotFoundError, match="Omniglot: expected"):
        build_dataset({"name": "omniglot", "root": "/nonexistent"})


def test_native_layout_filters_alphabets_and_reads_drawers(tmp_path: Path) -> None:
    from tests.data import fixtures as fx

    fx.make_omniglot(tmp_path)
    data = build_dataset({"name": "omniglot", "root": str(tmp_path), "image_size": 8})
    assert sorted(set(data.extra["drawing"].tolist())) == [1, 2]  # the files' _NN suffix
    first = str(data.extra["alphabet"][0])
    part = build_dataset(
        {"name": "omniglot", "root": str(tmp_path), "alphabets": [first], "image_size": 8}
    )
    assert set(part.extra["alphabet"].tolist()) == {first} and 0 < len(part) < len(data)


def test_rotated_classes_are_new_classes_and_groups() -> None:
    data = bundled_omniglot(["Latin"])
    turned = with_rotated_classes(data)
    assert len(turned) == 4 * len(data) and turned.num_classes == 4 * data.num_classes
    i = 3
    j = i + 2 * len(data)  # the same drawing turned by 180 degrees
    torch.testing.assert_close(turned[j][0], torch.rot90(data[i][0], 2, (1, 2)))
    assert turned.class_names[turned.labels[j]] == data.class_names[data.labels[i]] + "@180"
    assert turned.extra["alphabet"][j] == "Latin@180"
    assert turned.extra["drawing"][j] == data.extra["drawing"][i]
