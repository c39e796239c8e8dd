"""Text queries: a dual encoder saved with its text tower, indexed images found from words."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from deepmetric.index import Encoder, Index
from deepmetric.models import load_model, load_text_model

from .fixtures import make_dual_model, make_shape_images
from .test_cli import run


@pytest.fixture(scope="module")
def dual_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_dual_model(tmp_path_factory.mktemp("dual"))


def test_the_model_directory_keeps_both_towers(dual_dir: Path) -> None:
    image, text = load_model(dual_dir), load_text_model(dual_dir)
    assert image.embedding_dim == text.embedding_dim == 8
    assert (dual_dir / "text" / "config.json").is_file()
    vectors = Encoder(dual_dir).encode_texts(["a small red circle at the left"])
    with torch.no_grad():
        expected = text(["a small red circle at the left"]).numpy()
    np.testing.assert_allclose(vectors, expected, rtol=1e-6)


def test_search_finds_images_from_text(dual_dir: Path, tmp_path: Path) -> None:
    make_shape_images(tmp_path / "photos")
    code, out = run("index", "build", dual_dir, "--data", tmp_path / "photos", "--out",
                    tmp_path / "idx")  # fmt: skip
    assert code == 0, out
    query = "a large red circle at the top"
    code, out = run("search", tmp_path / "idx", "--text", query, "-k", "3", "--json")
    assert code == 0, out
    report = json.loads(out)
    assert report[0]["query"] == repr(query) and len(report[0]["results"]) == 3
    index = Index.load(tmp_path / "idx")
    scores, ids = index.search(Encoder(dual_dir).encode_texts([query]), 3)
    assert [hit["id"] for hit in report[0]["results"]] == ids[0].tolist()


def test_text_queries_need_a_text_tower(dual_dir: Path, tmp_path: Path) -> None:
    from deepmetric.models import save_model

    save_model(load_model(dual_dir), tmp_path / "image_only")
    with pytest.raises(ValueError, match="has no text tower"):
        Encoder(tmp_path / "image_only").encode_texts(["a red dot"])
    from deepmetric.cli.search import _queries

    with pytest.raises(ValueError, match="image .or .npy. queries or --text queries, not both"):
        _queries(["img.png"], str(dual_dir), ["a red dot"])
    with pytest.raises(ValueError, match="give QUERY images, one .npy of vectors, or --text"):
        _queries([], str(dual_dir), [])


def test_the_server_takes_text_queries(dual_dir: Path, tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from deepmetric.serve import create_app

    test_search_finds_images_from_text(dual_dir, tmp_path)  # builds tmp_path / "idx"
    client = TestClient(create_app(tmp_path / "idx"))
    assert client.get("/health").json()["text"] is True
    query = "a large red circle at the top"
    reply = client.post("/search", data={"text": query, "k": "3"})
    assert reply.status_code == 200, reply.text
    _, ids = Index.load(tmp_path / "idx").search(Encoder(dual_dir).encode_texts([query]), 3)
    assert [r["id"] for r in reply.json()["results"]] == ids[0].tolist()
    blank = client.post("/search", data={"text": "   "})
    assert blank.status_code == 422 and "text must hold a word" in blank.text
