"""``deepmetric explain``: a pair, a query's neighbours in an index, the files and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from deepmetric.cli import app
from deepmetric.explain import explain_pair
from deepmetric.index import Encoder, build_index
from deepmetric.models import Embedder, save_model
from tests.cli.test_commands import one_line_error
from tests.index.fixtures import PREPROCESSING, make_images, make_model

runner = CliRunner()


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("explain")
    make_model(root / "model")
    make_images(root / "images")
    build_index(root / "model", str(root / "images"), far=0).save(root / "idx")
    return root


def test_a_pair_prints_the_score_and_writes_the_picture(folder: Path, tmp_path: Path) -> None:
    a, b = folder / "images/red/0.png", folder / "images/blue/1.png"
    out = tmp_path / "pair.png"
    result = runner.invoke(
        app, ["explain", str(folder / "model"), str(a), str(b), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    encoder = Encoder(folder / "model")
    x = encoder.prepare(encoder.read_files([a, b]))
    expected = explain_pair(encoder.model, x[0], x[1])
    assert f"cosine {expected.score:.4g} · exact map" in result.output
    assert "100% accounted" in result.output and f"wrote {out}" in result.output
    with Image.open(out) as picture:
        assert picture.size == (224 * 2 + 16, 224 + 22)
    again = runner.invoke(
        app, ["explain", str(folder / "model"), str(a), str(b), "--out", str(out)]
    )
    one_line_error(again, "exists; pass --overwrite")


def test_json_has_the_numbers_and_the_maps(folder: Path) -> None:
    a, b = folder / "images/red/0.png", folder / "images/red/1.png"
    result = runner.invoke(
        app, ["explain", str(folder / "model"), str(a), str(b), "--json", "--lines", "2"]
    )
    assert result.exit_code == 0, result.output
    found = json.loads(result.output)
    assert found["method"] == "exact" and found["metric"] == "cosine"
    assert len(found["map_a"]) == 4 and len(found["correspondences"]) == 2
    assert sum(map(sum, found["map_a"])) == pytest.approx(found["score"], abs=1e-5)
    gradient = runner.invoke(
        app,
        [
            "explain",
            str(folder / "model"),
            str(a),
            str(b),
            "--json",
            "--method",
            "gradient",
            "--steps",
            "8",
        ],
    )
    assert json.loads(gradient.output)["method"] == "gradient"


def test_neighbours_in_an_index_with_why_not(folder: Path, tmp_path: Path) -> None:
    query = folder / "images/red/0.png"
    out = tmp_path / "n.png"
    result = runner.invoke(
        app,
        [
            "explain",
            str(folder / "model"),
            str(query),
            "--index",
            str(folder / "idx"),
            "-k",
            "2",
            "--json",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    found = json.loads(result.stdout)
    kinds = [n["kind"] for n in found["neighbours"]]
    assert kinds == ["match", "match", "why not"]
    top = found["neighbours"][0]
    assert top["label"] == "red" and top["score"] == pytest.approx(1.0, abs=1e-5)  # itself
    assert found["neighbours"][2]["label"] != "red"
    with Image.open(out) as picture:
        assert picture.height == 3 * (224 + 22) + 2 * 16


def test_the_metric_comes_from_the_model(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = Embedder(
        {
            "backbone": {"name": "conv4", "channels": 8, "num_blocks": 2},
            "embedding_dim": 8,
            "normalize": False,
        }
    )
    save_model(model.eval(), tmp_path / "m", preprocessing=PREPROCESSING)
    images = make_images(tmp_path / "images")
    a, b = images / "red/0.png", images / "green/0.png"
    result = runner.invoke(app, ["explain", str(tmp_path / "m"), str(a), str(b)])
    assert result.exit_code == 0 and result.output.startswith("euclidean ")


def test_bad_input_is_one_line(folder: Path, tmp_path: Path) -> None:
    model, a = str(folder / "model"), str(folder / "images/red/0.png")
    (tmp_path / "bad.png").write_text("not an image")
    cases = [
        ([model, a], "give two images A B"),
        ([model, a, str(tmp_path / "missing.png")], "missing.png: no such image file"),
        ([model, a, str(tmp_path / "bad.png")], "bad.png: the data is not a readable image"),
        ([model, a, a, "--out", str(tmp_path / "x.jpg")], "--out must end in .png"),
        ([model, a, a, "--metric", "manhattan"], "--metric must be one of"),
        ([model, a, a, "--method", "lime"], "method must be one of"),
        ([str(tmp_path), a, a], "neither a run directory"),
        ([model, a, "--index", str(folder / "idx"), "--metric", "euclidean"], "ranks by cosine"),
    ]
    for args, match in cases:
        one_line_error(runner.invoke(app, ["explain", *args]), match)


def test_an_index_of_another_model_is_one_line(folder: Path, tmp_path: Path) -> None:
    other = make_model(tmp_path / "other", seed=1)
    query = str(folder / "images/red/0.png")
    result = runner.invoke(app, ["explain", str(other), query, "--index", str(folder / "idx")])
    one_line_error(result, "model")


def test_exact_on_a_model_without_a_map_says_to_use_gradients(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = Embedder(
        {
            "backbone": {"name": "conv4", "channels": 8, "num_blocks": 2},
            "pooling": "gem",
            "embedding_dim": 8,
        }
    )
    save_model(model.eval(), tmp_path / "m", preprocessing=PREPROCESSING)
    images = make_images(tmp_path / "images")
    a = str(images / "red/0.png")
    result = runner.invoke(app, ["explain", str(tmp_path / "m"), a, a, "--method", "exact"])
    one_line_error(result, "use the gradient method")
    assert runner.invoke(app, ["explain", str(tmp_path / "m"), a, a]).exit_code == 0
