"""Tiny datasets written in the exact native layouts, with the ground truth they encode.

Each ``make_*`` writes 8x8 images under ``root`` and returns the expected items of each split
as ``{split: [Row, ...]}``, written down here independently of the loaders' parsing code.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

SIZE = (8, 8)


@dataclass
class Row:
    """One expected item: its file, its class name and its extra fields."""

    path: Path
    cls: str
    extra: dict[str, Any] = field(default_factory=dict)


def write_image(path: Path, seed: int, size: tuple[int, int] = SIZE) -> Path:
    """A seeded random RGB image at ``path``, in the format its suffix names."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, size=(size[1], size[0], 3))
    image = Image.fromarray(pixels.astype(np.uint8), "RGB")
    image.save(path, format="JPEG" if path.suffix.lower() in (".jpg", ".jpeg") else None)
    return path


def jpeg_bytes(seed: int = 0) -> bytes:
    buffer = io.BytesIO()
    pixels = np.random.default_rng(seed).integers(0, 256, size=(16, 16, 3)).astype(np.uint8)
    Image.fromarray(pixels, "RGB").save(buffer, format="JPEG")
    return buffer.getvalue()


def write_bad_files(folder: Path) -> dict[str, str]:
    """Unreadable files in ``folder``: file name -> the start of the expected reason."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "notes.png").write_text("not an image at all\n")
    good = jpeg_bytes(1)
    (folder / "truncated.jpg").write_bytes(good[:-40])  # header intact, tail gone
    png = io.BytesIO()
    Image.new("RGB", (8, 8), (10, 20, 30)).save(png, format="PNG")
    damaged = bytearray(png.getvalue())
    damaged[-20] ^= 0xFF  # inside the IDAT data: the chunk CRC no longer matches
    (folder / "crc.png").write_bytes(bytes(damaged))
    return {
        "empty.jpg": "empty file",
        "notes.png": "not an image",
        "truncated.jpg": "truncated JPEG",
        "crc.png": "corrupt image",
    }


def make_folder(root: Path, classes: dict[str, int]) -> list[Row]:
    rows = []
    for c, (name, count) in enumerate(classes.items()):
        for i in range(count):
            path = write_image(root / name / f"{i:03d}.png", seed=100 * c + i)
            rows.append(Row(path, name))
    return rows


def make_cub(root: Path) -> dict[str, list[Row]]:
    """Classes 1, 100 (train) and 101, 200 (test) of the 200, two images each."""
    classes = {
        1: "001.Black_footed_Albatross",
        100: "100.Brown_Pelican",
        101: "101.White_Pelican",
        200: "200.Common_Yellowthroat",
    }
    images, labels, out = [], [], {"train": [], "test": []}
    image_id = 0
    for class_id, name in classes.items():
        for i in range(2):
            image_id += 1
            rel = f"{name}/{name.split('.')[1]}_{i:04d}_{image_id}.jpg"
            write_image(root / "images" / rel, image_id)
            images.append(f"{image_id} {rel}")
            labels.append(f"{image_id} {class_id}")
            split = "train" if class_id <= 100 else "test"
            out[split].append(Row(root / "images" / rel, name, {"item_id": image_id}))
    (root / "images.txt").write_text("\n".join(images) + "\n")
    (root / "image_class_labels.txt").write_text("\n".join(reversed(labels)) + "\n")
    (root / "classes.txt").write_text("\n".join(f"{k} {v}" for k, v in classes.items()) + "\n")
    return out


def make_cars(root: Path) -> dict[str, list[Row]]:
    """A real ``cars_annos.mat``: six images of classes 1, 98 (train) and 99, 196 (test)."""
    from scipy.io import savemat

    names = np.array([f"Make Model {k}" for k in range(1, 197)], dtype=object)
    fields = ["relative_im_path", "bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2", "class", "test"]
    classes = [1, 98, 99, 196, 1, 99]
    annotations = np.zeros((1, len(classes)), dtype=[(f, "O") for f in fields])
    out: dict[str, list[Row]] = {"train": [], "test": []}
    for i, class_id in enumerate(classes):
        rel = f"car_ims/{i + 1:06d}.jpg"
        write_image(root / rel, 500 + i)
        bbox = (i, i + 1, i + 6, i + 7)
        annotations[0, i] = (rel, *[np.uint8(v) for v in bbox], np.uint8(class_id), np.uint8(i % 2))
        extra = {"bbox": bbox, "item_id": i + 1, "classification_test": bool(i % 2)}
        out["train" if class_id <= 98 else "test"].append(
            Row(root / rel, str(names[class_id - 1]), extra)
        )
    savemat(
        root / "cars_annos.mat", {"annotations": annotations, "class_names": names.reshape(1, -1)}
    )
    return out


def make_sop(root: Path) -> dict[str, list[Row]]:
    out: dict[str, list[Row]] = {}
    specs = {
        "train": [(1, 1), (1, 1), (2, 1), (3, 2)],
        "test": [(11319, 1), (11320, 3), (11320, 3)],
    }
    image_id = 0
    for split, items in specs.items():
        lines, rows = ["image_id class_id super_class_id path"], []
        for j, (class_id, super_class) in enumerate(items):
            image_id += 1
            rel = f"{'bicycle' if super_class == 1 else 'chair'}_final/{class_id}{j}_{j}.JPG"
            write_image(root / rel, image_id)
            lines.append(f"{image_id} {class_id} {super_class} {rel}")
            rows.append(
                Row(root / rel, str(class_id), {"item_id": image_id, "super_class": super_class})
            )
        (root / f"Ebay_{split}.txt").write_text("\n".join(lines) + "\n")
        out[split] = rows
    return out


def make_inshop(root: Path, official: bool = True) -> dict[str, list[Row]]:
    """Items 02, 05 train; 07, 09 in query and gallery; 11 in the gallery only.

    ``official``: the list in Eval/, images under Img/; else both in ``root``.
    """
    entries = [
        ("02", "train"),
        ("02", "train"),
        ("05", "train"),
        ("07", "query"),
        ("07", "gallery"),
        ("07", "gallery"),
        ("09", "query"),
        ("09", "gallery"),
        ("11", "gallery"),
    ]
    images = root / "Img" if official else root
    lines, out = [], {"train": [], "query": [], "gallery": []}
    for k, (item, status) in enumerate(entries):
        item_id = f"id_000000{item}"
        rel = f"img/WOMEN/Dresses/{item_id}/{k:02d}_1_front.jpg"
        write_image(images / rel, 900 + k)
        lines.append(f"{rel} {item_id} {status}")
        extra = {
            "item_id": item_id,
            "is_query": status == "query",
            "is_gallery": status == "gallery",
        }
        out[status].append(Row(images / rel, item_id, extra))
    listing = (
        root / "Eval" / "list_eval_partition.txt" if official else root / "list_eval_partition.txt"
    )
    listing.parent.mkdir(parents=True, exist_ok=True)
    listing.write_text(
        f"{len(entries)}\nimage_name item_id evaluation_status\n" + "\n".join(lines) + "\n"
    )
    return {**out, "test": out["query"] + out["gallery"]}


MARKET = {
    "bounding_box_train": [
        "0002_c1s1_000451_03.jpg",
        "0002_c2s1_000301_01.jpg",
        "0007_c3s3_077419_03.jpg",
    ],
    "bounding_box_test": [
        "0003_c3s1_000100_01.jpg",
        "0003_c4s1_000200_02.jpg",
        "0000_c1s1_000001_01.jpg",
        "-1_c2s1_000002_01.jpg",
        "0011_c6s2_000300_01.jpg",
    ],
    "query": ["0003_c1s1_000050_00.jpg", "0011_c5s2_000150_00.jpg"],
}


def make_market(root: Path) -> dict[str, list[Row]]:
    out: dict[str, list[Row]] = {}
    for k, (folder, files) in enumerate(MARKET.items()):
        rows = []
        for j, name in enumerate(files):
            write_image(root / folder / name, 1000 + 10 * k + j)
            pid_text, camera_part = name.split("_")[:2]
            pid, camera = int(pid_text), int(camera_part[1])
            extra = {
                "pid": pid,
                "camera": camera,
                "is_query": folder == "query",
                "is_gallery": folder == "bounding_box_test",
            }
            rows.append(Row(root / folder / name, pid_text if pid < 0 else f"{pid:04d}", extra))
        out[folder] = rows
    (root / "bounding_box_test" / "Thumbs.db").write_bytes(b"\x00" * 10)
    return {
        "train": out["bounding_box_train"],
        "query": out["query"],
        "gallery": out["bounding_box_test"],
        "test": out["query"] + out["bounding_box_test"],
    }


LFW_PEOPLE = {"Alice_Smith": 3, "Bob_Jones": 2, "Carol_King": 1, "Dave_Lee": 2}
# Two folds of 2 same-person and 2 different-person pairs: (line, is_same, fold, first, second)
LFW_PAIRS = [
    ("Alice_Smith 1 2", True, 0, ("Alice_Smith", 1), ("Alice_Smith", 2)),
    ("Bob_Jones 1 2", True, 0, ("Bob_Jones", 1), ("Bob_Jones", 2)),
    ("Alice_Smith 1 Carol_King 1", False, 0, ("Alice_Smith", 1), ("Carol_King", 1)),
    ("Bob_Jones 2 Dave_Lee 1", False, 0, ("Bob_Jones", 2), ("Dave_Lee", 1)),
    ("Alice_Smith 2 3", True, 1, ("Alice_Smith", 2), ("Alice_Smith", 3)),
    ("Dave_Lee 1 2", True, 1, ("Dave_Lee", 1), ("Dave_Lee", 2)),
    ("Carol_King 1 Dave_Lee 2", False, 1, ("Carol_King", 1), ("Dave_Lee", 2)),
    ("Alice_Smith 3 Bob_Jones 1", False, 1, ("Alice_Smith", 3), ("Bob_Jones", 1)),
]


def lfw_path(root: Path, person: tuple[str, int]) -> Path:
    return root / "lfw" / person[0] / f"{person[0]}_{person[1]:04d}.jpg"


def make_lfw(root: Path) -> list[Row]:
    rows = []
    for p, (name, count) in enumerate(LFW_PEOPLE.items()):
        for i in range(1, count + 1):
            rows.append(Row(write_image(lfw_path(root, (name, i)), 2000 + 10 * p + i), name))
    (root / "pairs.txt").write_text(
        "2\t2\n" + "\n".join(line.replace(" ", "\t") for line, *_ in LFW_PAIRS) + "\n"
    )
    return rows


OMNIGLOT = {
    "images_background": {"Greek": ["character01", "character02"], "Latin": ["character01"]},
    "images_evaluation": {"Korean": ["character01", "character02"]},
}


def make_omniglot(root: Path) -> dict[str, list[Row]]:
    out: dict[str, list[Row]] = {}
    for s, (folder, alphabets) in enumerate(OMNIGLOT.items()):
        rows = []
        for alphabet, characters in alphabets.items():
            for c, character in enumerate(characters):
                for k in range(2):
                    path = root / folder / alphabet / character / f"{c:04d}_{k + 1:02d}.png"
                    write_image(path, 3000 + 100 * s + 10 * c + k)
                    rows.append(Row(path, f"{alphabet}/{character}", {"alphabet": alphabet}))
        out[folder] = rows
    return {"background": out["images_background"], "evaluation": out["images_evaluation"]}


def pil_oracle(path: Path, size: tuple[int, int] | None = None, mode: str = "RGB") -> np.ndarray:
    """The expected ``(C, H, W)`` float pixels, straight from pillow."""
    with Image.open(path) as img:
        image = img.convert(mode)
    if size is not None:
        image = image.resize((size[1], size[0]), Image.Resampling.BILINEAR)
    array = np.asarray(image, dtype=np.float32) / 255.0
    return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)


def assert_matches(dataset: Any, rows: list[Row]) -> None:
    """``dataset`` holds exactly ``rows``: same files, class names and extra fields."""
    expected = {str(row.path): row for row in rows}
    assert dataset.paths is not None and sorted(dataset.paths) == sorted(expected)
    assert dataset.labels.dtype == np.int64 and len(dataset) == len(rows)
    assert 0 <= dataset.labels.min() and dataset.labels.max() < len(dataset.class_names)
    for i, path in enumerate(dataset.paths):
        row = expected[path]
        assert dataset.class_names[dataset.labels[i]] == row.cls, path
        for key, value in row.extra.items():
            assert np.array_equal(dataset.extra[key][i], np.asarray(value)), (path, key)
    image, label = dataset[0]
    assert label == dataset.labels[0]
    np.testing.assert_array_equal(image.numpy(), pil_oracle(Path(dataset.paths[0])))
