"""Text queries: a dual encoder saved with its text tower, indexed images found from words."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from deepmetric.data import Shapes
from deepmetric.index import Encoder, Index
from deepmetric.losses import ClipLoss
from deepmetric.models import DualEncoder, build_vocab, load_model, load_text_model
from deepmetric.training import RuntimeOptions, SamplerOptions, TrainOptions, train

from .test_cli import run


@pytest.fixture(scope="module")
def dual_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = Shapes("train", n=64, seed=0, image_size=16)
    torch.manual_seed(0)
    model = DualEncoder(
        {"backbone": {"name": "conv4", "channels": 4, "num_blocks": 2}, "embedding_dim": 8},
        {"backbone": {"name": "text_transformer", "vocab": build_vocab(data.captions),
                      "dim": 8, "heads": 2, "depth": 1}, "embedding_dim": 8},
    )  # fmt: skip
    model.image.preprocessing = {"image_size": [16, 16], "channels": 3}
    out = tmp_path_factory.mktemp("dual")
    options = TrainOptions(epochs=1, sampler=SamplerOptions(batch_size=16, m_per_class=1),
                           runtime=RuntimeOptions(progress=False))  # fmt: skip
    train(model, data, loss=ClipLoss(), options=options, out_dir=out)
    return out / "model"


def test_the_model_directory_keeps_both_towers(dual_dir: Path) -> None:
    image, text = load_model(dual_dir), load_text_model(dual_dir)
    assert image.embedding_dim == text.embedding_dim == 8
    assert (dual_dir / "text" / "config.json").is_file()
    vectors = Encoder(dual_dir).encode_texts(["a small red circle at the left"])
    with torch.no_grad():
        expected = text(["a small red circle at the left"]).numpy()
    np.testing.assert_allclose(vectors, expected, rtol=1e-6)


def test_search_finds_images_from_text(dual_dir: Path, tmp_path: Path) -> None:
    shapes = Shapes("test", n=8, seed=1, image_size=16)
    for i in range(len(shapes)):
        folder = tmp_path / "photos" / shapes.captions[i].replace(" ", "_")
        folder.mkdir(parents=True, exist_ok=True)
        array = (shapes.images()[i].permute(1, 2, 0).numpy() * 255).astype(np.uint8)
        Image.fromarray(array).save(folder / f"{i}.png")
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
