"""``deepmetric index`` and ``deepmetric search`` through Typer's CliRunner."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import typer
from PIL import Image
from torch import nn
from typer.testing import CliRunner

from deepmetric.cli import index as index_cli
from deepmetric.cli import search as search_cli
from deepmetric.cli import serve as serve_cli
from deepmetric.config import build_config
from deepmetric.data import ImageFolderDataset, build_augmentation
from deepmetric.index import Encoder, ExactIndex, Index, dataset_spec
from deepmetric.models import embed, load_model
from deepmetric.runs import run_training

from .fixtures import CLASSES, IMAGE_SIZE, PER_CLASS, make_model


def cli() -> typer.Typer:
    """The commands as ``deepmetric.cli`` registers them."""
    app = typer.Typer()
    app.add_typer(index_cli.app, name="index")
    app.command("search")(search_cli.search)
    app.command("serve")(serve_cli.serve)
    return app


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli(), [str(a) for a in args])
    return result.exit_code, result.output


@pytest.fixture
def built(tmp_path: Path, model_dir: Path, image_dir: Path) -> Path:
    code, out = run("index", "build", model_dir, "--data", image_dir, "--out", tmp_path / "idx")
    assert code == 0, out
    assert f"indexed {len(CLASSES) * PER_CLASS} items (Flat, cosine)" in out
    return tmp_path / "idx"


def test_build_indexes_every_image_with_its_class(built: Path, model_dir: Path) -> None:
    index = Index.load(built)
    items = index.items(np.arange(len(index)))
    assert sorted({i.label for i in items if i}) == list(CLASSES)
    assert all(i is not None and Path(str(i.source)).is_file() for i in items)
    assert index.fingerprint == Encoder(model_dir).fingerprint
    code, out = run("index", "info", built)
    assert code == 0 and "Flat" in out and "12 (0 tombstones)" in out


def test_search_images_equals_exact_search_of_their_vectors(
    built: Path, model_dir: Path, image_dir: Path
) -> None:
    files = sorted(str(p) for p in image_dir.rglob("*.png"))
    encoder = Encoder(model_dir)
    exact = ExactIndex(encoder.dim)
    exact.add(encoder.encode_files(files))
    want_scores, want_ids = exact.search(encoder.encode_files(files[:2]), 3)
    code, out = run("search", built, files[0], files[1], "-k", "3", "--json")
    assert code == 0, out
    report = json.loads(out)
    sources = {i.source: i.id for i in Index.load(built).items(np.arange(12)) if i}
    got = [[sources[files[i]] for i in row] for row in want_ids]  # exact ids -> index ids
    assert [[hit["id"] for hit in q["results"]] for q in report] == got
    scores = [[hit["score"] for hit in q["results"]] for q in report]
    np.testing.assert_allclose(scores, want_scores, rtol=1e-5)
    assert report[0]["results"][0]["source"] == files[0]
    code, out = run("search", built, files[0], "-k", "2")
    assert code == 0 and files[0] in out and " 1 " in out


@pytest.mark.parametrize(
    "options, k_reciprocal, expansion",
    [(["--rerank", "k-reciprocal"], True, 0), (["--query-expansion", "3"], False, 3),
     (["--rerank", "k-reciprocal", "--query-expansion", "2"], True, 2)],
)  # fmt: skip
def test_search_re_ranks_the_top_hits(
    built: Path, model_dir: Path, image_dir: Path, options: list[str], k_reciprocal: bool,
    expansion: int,
) -> None:  # fmt: skip
    import torch

    from deepmetric.search.rerank import k_reciprocal_distances, rerank_candidates

    query = sorted(str(p) for p in image_dir.rglob("*.png"))[3]
    code, out = run("search", built, query, "-k", "4", "--json", *options)
    assert code == 0, out
    hits = json.loads(out)[0]["results"]
    index = Index.load(built)
    ids = np.arange(12)  # every item is a candidate: 12 < 100
    vector = torch.as_tensor(Encoder(model_dir).encode_files([query])[0])
    order, scores = rerank_candidates(vector, torch.as_tensor(index.vectors(ids)),
                                      metric="cosine", k_reciprocal=k_reciprocal,
                                      expansion=expansion)  # fmt: skip
    assert [h["id"] for h in hits] == ids[order[:4].numpy()].tolist()
    assert [h["score"] for h in hits] == pytest.approx(scores[:4].tolist(), abs=1e-6)
    assert all(h["match"] is None for h in hits)
    if k_reciprocal and not expansion:  # the oracle: the distances over all candidates
        d = k_reciprocal_distances(
            vector[None], torch.as_tensor(index.vectors(ids)), metric="cosine"
        )
        assert hits[0]["score"] == pytest.approx(float(d.min()), abs=1e-6)


def test_search_with_vectors_add_and_remove(built: Path, image_dir: Path, tmp_path: Path) -> None:
    vectors = np.eye(8, dtype=np.float32)[:2]
    np.save(tmp_path / "q.npy", vectors)
    code, out = run("search", built, tmp_path / "q.npy", "-k", "4", "--json")
    assert code == 0, out
    assert [len(q["results"]) for q in json.loads(out)] == [4, 4]
    code, out = run("index", "add", built, "--data", image_dir / ".." / "images")
    assert code == 0 and "added 12 items (ids 12..23); the index holds 24" in out, out
    code, out = run("index", "remove", built, "0", "5")
    assert code == 0 and "the index holds 22" in out
    assert Index.load(built).items([0, 5, 6])[:2] == [None, None]


def test_bad_input_exits_non_zero_with_one_readable_line(
    built: Path, tmp_path: Path, image_dir: Path
) -> None:
    other_model = make_model(tmp_path / "other", seed=1)
    np.save(tmp_path / "wide.npy", np.ones((1, 5), dtype=np.float32))
    (tmp_path / "notes.txt").write_text("not an image")
    cases = [
        (
            ("index", "build", tmp_path / "nope", "--data", image_dir, "--out", tmp_path / "x"),
            "model directory",
        ),
        (
            (
                "index",
                "build",
                other_model,
                "--data",
                tmp_path / "missing",
                "--out",
                tmp_path / "x",
            ),
            "data must be a folder",
        ),
        (
            (
                "index",
                "build",
                other_model,
                "--data",
                image_dir,
                "--out",
                tmp_path / "x",
                "--metric",
                "dot",
            ),
            "--metric must be cosine or euclidean; got 'dot'",
        ),
        (("search", tmp_path / "nowhere", tmp_path / "wide.npy"), "does not exist"),
        (("search", built, tmp_path / "wide.npy"), "index dim is 8, query dim is 5"),
        (("search", built, tmp_path / "gone.png"), "query file(s) not found"),
        (("search", built, tmp_path / "notes.txt"), "cannot decode image"),
        (
            ("search", built, image_dir / "red" / "0.png", "--model", other_model),
            "but this index holds vectors of model",
        ),
        (("index", "remove", built, "999"), "ids not in the index: [999]"),
    ]
    for args, message in cases:
        code, out = run(*args)
        assert code == 2, (args, out)
        assert message in out, (args, out)
        assert out.strip().startswith("error:") and "Traceback" not in out
    assert len(Index.load(built)) == 12


def test_every_command_has_help() -> None:
    for args in (
        ("index", "build"),
        ("index", "add"),
        ("index", "remove"),
        ("search",),
        ("serve",),
    ):
        code, out = run(*args, "--help")
        assert code == 0 and "Usage" in out


def six_classes(root: Path) -> Path:
    """``root/<class>/<i>.png``: 6 classes x 4 noisy 16x16 RGB images (class = colour mix)."""
    rng = np.random.default_rng(3)
    for c in range(6):
        (root / f"c{c}").mkdir(parents=True)
        for i in range(4):
            pixels = rng.integers(0, 80, size=(IMAGE_SIZE, IMAGE_SIZE, 3))
            pixels[:, :, c % 3] += 100 + 40 * (c // 3)
            Image.fromarray(pixels.astype(np.uint8)).save(root / f"c{c}" / f"{i}.png")
    return root


def test_a_trained_image_model_can_be_indexed(tmp_path: Path) -> None:
    images = six_classes(tmp_path / "images")
    augment = {"size": IMAGE_SIZE, "crop_scale": None, "hflip": 0.0, "eval_crop_fraction": 1.0,
               "mean": [0.4, 0.5, 0.6], "std": [0.2, 0.25, 0.3]}  # fmt: skip
    config = build_config({
        "data": {"train": {"name": "folder", "root": str(images), "image_size": IMAGE_SIZE}},
        "model": {"backbone": {"name": "conv4", "in_channels": 3, "channels": 8,
                               "num_blocks": 2}, "embedding_dim": 8},
        "sampler": {"batch_size": 8, "m_per_class": 2}, "epochs": 1, "augmentation": augment,
        "evaluation": {"ks": [1, 2, 4]},  # 2 test classes of 4 images
        "runtime": {"progress": False}, "output": {"dir": str(tmp_path / "run"), "report": False},
    })  # fmt: skip
    model_dir = run_training(config).result.model_dir
    assert model_dir is not None
    card = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    assert card["preprocessing"] == {
        "image_size": [IMAGE_SIZE, IMAGE_SIZE], "channels": 3,
        "mean": augment["mean"], "std": augment["std"],
    }  # fmt: skip
    spec = f"{{name: folder, root: {images}}}"  # a YAML flow mapping
    code, out = run("index", "build", model_dir, "--data", spec, "--out", tmp_path / "idx")
    assert code == 0 and "indexed 24 items (Flat, cosine)" in out, out
    # with eval_crop_fraction 1 the index's vectors are the eval pipeline's (oracle: by hand)
    data = ImageFolderDataset(images, image_size=IMAGE_SIZE)
    pipeline = nn.Sequential(build_augmentation(augment, "eval"), load_model(model_dir))
    want = embed(pipeline, data).numpy()
    np.testing.assert_allclose(Encoder(model_dir).encode_files(data.paths), want, atol=1e-5)


def test_data_spec_is_yaml_or_json_with_clear_errors(model_dir: Path, image_dir: Path) -> None:
    encoder = Encoder(model_dir)
    as_json = json.dumps({"name": "folder", "root": str(image_dir)})
    for text in (f"{{name: folder, root: {image_dir}}}", as_json):
        spec = dataset_spec(text, encoder)
        assert spec == {"name": "folder", "root": str(image_dir), "image_size": [16, 16],
                        "channels": 3}  # fmt: skip
    assert dataset_spec("{name: folder, root: x, image_size: 8}", encoder)["image_size"] == 8
    cases = [
        ("{name: folder root: x}", "--data is not a valid YAML mapping (expected ',' or '}', "
         "but got ':' at column 19); got '{name: folder root: x}'"),
        ("{name: 'x}", "--data is not a valid YAML mapping (found unexpected end of stream"),
        ("{root: x}", "--data must be a mapping with a dataset 'name' key"),
    ]  # fmt: skip
    for text, message in cases:
        with pytest.raises(ValueError, match=re.escape(message)):
            dataset_spec(text, encoder)
        code, out = run("index", "build", model_dir, "--data", text, "--out", "unused")
        assert code == 2 and message in out and out.count("\n") == 1, out


def test_build_says_what_it_skipped_and_why_there_is_no_threshold(
    tmp_path: Path, model_dir: Path, image_dir: Path
) -> None:
    import shutil

    data = tmp_path / "photos"
    shutil.copytree(image_dir, data)
    for name in ("broken1.png", "broken2.png"):
        (data / CLASSES[0] / name).write_bytes(b"not an image")
    code, out = run("index", "build", model_dir, "--data", data, "--out", tmp_path / "idx",
                    "--far", "0.000001")  # fmt: skip
    assert code == 0, out
    assert "warning: " in out and "skipped 2 of" in out and "broken1.png" in out
    assert "match threshold: none (too few labelled pairs to calibrate at FAR 1e-06)" in out
    code, out = run("index", "build", model_dir, "--data", image_dir, "--out",
                    tmp_path / "idx0", "--far", "0")  # fmt: skip
    assert code == 0 and "match threshold: none (--far 0)" in out


def test_a_non_utf8_file_name_is_named_in_one_line(
    tmp_path: Path, model_dir: Path, image_dir: Path
) -> None:
    import os
    import shutil

    data = tmp_path / "photos"
    shutil.copytree(image_dir, data)
    first = sorted((data / CLASSES[0]).iterdir())[0]
    os.rename(bytes(first), bytes(first.parent) + b"/caf\xe9.png")  # Latin-1, not UTF-8
    code, out = run("index", "build", model_dir, "--data", data, "--out", tmp_path / "idx")
    assert code == 2 and out.count("error: ") == 1 and "Traceback" not in out
    assert "is not valid UTF-8 text" in out and "caf" in out and "rename the file" in out
