"""Bad input, model fingerprints, calibration and the image encoder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from deepmetric.data import load_image
from deepmetric.evaluation import threshold_at_far
from deepmetric.index import Encoder, ExactIndex, Index, ModelMismatchError, pair_scores
from deepmetric.models import load_model, model_fingerprint

from .fixtures import PREPROCESSING


def small() -> Index:
    index = Index(4)
    index.add(np.eye(4), labels=list("abcd"))
    return index


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda i: i.search(np.ones((1, 3)), 2), ValueError, "index dim is 4, query dim is 3"),
        (lambda i: i.add(np.ones((1, 5))), ValueError, "index dim is 4, vectors dim is 5"),
        (lambda i: i.search(np.ones((1, 4)), 0), ValueError, "k must be an integer >= 1; got 0"),
        (lambda i: i.add(np.full((1, 4), np.nan)), ValueError, "finite; 1 row"),
        (lambda i: i.add(np.ones((2, 4)), ids=[7, 7]), ValueError, "distinct"),
        (lambda i: i.add(np.ones((1, 4)), ids=[-1]), ValueError, "must be >= 0"),
        (lambda i: i.add(np.ones((1, 4)), ids=[2]), ValueError, r"already in the index: \[2\]"),
        (lambda i: i.add(np.ones((2, 4)), labels=["a"]), ValueError, "labels must be a seq"),
        (lambda i: i.add(np.ones((1, 4)), attributes=[{"x": {1}}]), ValueError, "JSON"),
        (lambda i: i.remove([2, 99]), KeyError, r"not in the index: \[99\]"),
        (lambda i: i.update([99], np.ones((1, 4))), KeyError, r"not in the index: \[99\]"),
        (lambda i: i.search(np.ones(4), 1, attributes={"a b": 1}), ValueError, "identifiers"),
        (lambda i: i.search(np.ones(4), 1, attributes={"a": [1]}), ValueError, "string, number"),
        (lambda i: i.is_match(np.ones(2)), ValueError, "no match threshold; call Index.cal"),
    ],
)
def test_bad_input_raises_a_message_that_names_it(call, error, match) -> None:  # type: ignore[no-untyped-def]
    index = small()
    with pytest.raises(error, match=match):
        call(index)
    assert len(index) == 4 and index.items([2])[0] is not None  # nothing changed


def test_bad_settings_raise() -> None:
    with pytest.raises(ValueError, match="metric must be 'cosine' or 'euclidean'; got 'dot'"):
        Index(4, metric="dot")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="dim must be an integer >= 1; got 0"):
        Index(0)
    with pytest.raises(ValueError, match="faiss cannot build the index 'Nonsense9'"):
        Index(4, factory="Nonsense9").add(np.ones((2, 4)))
    with pytest.raises(ValueError, match="trained on at least 64 vectors; got 10"):
        Index(4, factory="IVF64,Flat").add(np.ones((10, 4)))
    with pytest.raises(ValueError, match="search_params 'bogus=3' do not apply"):
        Index(4, factory="Flat", search_params="bogus=3").add(np.ones((2, 4)))
    exact = ExactIndex(2)
    exact.add(np.ones((1, 2)))
    with pytest.raises(ValueError, match=r"ids already in the index: \[0\]"):
        exact.add(np.ones((1, 2)), ids=[0])
    with pytest.raises(KeyError, match=r"not in the index: \[3\]"):
        exact.remove([3])


def test_vectors_of_another_model_are_refused() -> None:
    index = Index(4)
    index.add(np.eye(4), fingerprint="a" * 64)  # adopted: the index was empty
    assert index.fingerprint == "a" * 64
    index.search(np.ones((1, 4)), 1, fingerprint="a" * 64)
    for call in (
        lambda: index.search(np.ones((1, 4)), 1, fingerprint="b" * 64),
        lambda: index.add(np.ones((1, 4)), fingerprint="b" * 64),
    ):
        with pytest.raises(ModelMismatchError, match="come from model bbbbbbbbbbbb, but this"):
            call()
    assert len(index) == 4


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_calibration_uses_the_verification_threshold(metric: str) -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((60, 6))
    labels = np.arange(60) % 6
    x += 8 * np.eye(6)[labels]
    scores, same = pair_scores(x, labels, metric=metric)  # type: ignore[arg-type]
    index = Index(6, metric=metric)  # type: ignore[arg-type]
    threshold = index.calibrate(scores, same, far=1e-2)
    assert threshold == threshold_at_far(scores, same, 1e-2, higher_is_similar=metric == "cosine")
    accepted = index.is_match(scores)
    assert accepted[~same].mean() <= 1e-2 and accepted[same].mean() > 0.5
    assert not index.is_match(np.array([np.inf, -np.inf])).any()  # sentinels never match


def test_pair_scores_match_a_loop_over_pairs() -> None:
    x = np.random.default_rng(1).standard_normal((7, 3))
    labels = np.array(["a", "b", "a", "c", "b", "a", "c"])
    scores, same = pair_scores(x, labels, metric="euclidean")
    want = [
        (np.linalg.norm(x[i] - x[j]), labels[i] == labels[j])
        for i in range(7)
        for j in range(i + 1, 7)
    ]
    np.testing.assert_allclose(scores, [w[0] for w in want], rtol=1e-6)
    assert same.tolist() == [w[1] for w in want]
    with pytest.raises(ValueError, match=r"labels must have shape \(7,\)"):
        pair_scores(x, labels[:3])


def test_encoder_repeats_the_model_preprocessing(model_dir: Path, image_dir: Path) -> None:
    encoder = Encoder(model_dir)
    files = sorted(str(p) for p in image_dir.rglob("*.png"))[:3]
    by_file = encoder.encode_files(files)
    by_bytes = encoder.encode_bytes([Path(f).read_bytes() for f in files])
    np.testing.assert_allclose(by_file, by_bytes, atol=1e-6)
    model = load_model(model_dir)
    images = torch.stack([load_image(f, image_size=16, channels=3) for f in files])
    with torch.no_grad():
        want = model((images - 0.5) / 0.25)  # mean 0.5, std 0.25 from PREPROCESSING
    np.testing.assert_allclose(by_file, want.numpy(), atol=1e-5)
    assert encoder.fingerprint == model_fingerprint(model_dir) and encoder.dim == 8
    assert PREPROCESSING["image_size"] == 16
    with pytest.raises(ValueError, match="not a readable image"):
        encoder.encode_bytes([b"plain text, not an image"])
