"""``POST /explain``: the numbers equal the library's, and hostile requests get a 4xx."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from deepmetric.explain import explain_pair
from deepmetric.index import Encoder, Index
from tests.serve.conftest import TOKEN
from tests.serve.test_api import files_of


def _item_of(index_dir: Path, path: Path) -> int:
    index = Index.load(index_dir)
    items = index.items(np.arange(len(index)))
    return next(i.id for i in items if i is not None and Path(str(i.source)) == path.resolve())


def test_explain_an_upload_and_a_stored_item(
    client: TestClient, index_dir: Path, model_dir: Path, image_dir: Path
) -> None:
    files = files_of(image_dir)
    query, target = files[0], files[5]
    target_id = _item_of(index_dir, target)
    reply = client.post(
        "/explain", files={"image": query.read_bytes()}, data={"target": str(target_id)}
    )
    assert reply.status_code == 200, reply.text
    body = reply.json()
    encoder = Encoder(model_dir)
    x = encoder.prepare(encoder.read_files([query, target]))
    expected = explain_pair(encoder.model, x[0], x[1], metric="cosine")
    assert body["method"] == "exact" and body["score"] == pytest.approx(expected.score, abs=1e-6)
    assert body["accounted"] == pytest.approx(1.0) and "100% accounted" in body["text"]
    picture = base64.b64decode(body["picture"].split(",", 1)[1])
    with Image.open(io.BytesIO(picture)) as drawn:
        assert drawn.size == (192 * 2 + 16, 192 + 22)
    by_item = client.post(
        "/explain", data={"item_id": str(_item_of(index_dir, query)), "target": str(target_id)}
    ).json()
    assert by_item["score"] == pytest.approx(body["score"], abs=1e-6)
    gradient = client.post(
        "/explain", files={"image": query.read_bytes()},
        data={"target": str(target_id), "method": "gradient"},
    ).json()  # fmt: skip
    assert gradient["method"] == "gradient" and gradient["steps"] == 32


def test_hostile_explain_requests_get_a_4xx(
    client: TestClient, index_dir: Path, image_dir: Path, tmp_path: Path
) -> None:
    image = files_of(image_dir)[0].read_bytes()
    auth = {"Authorization": f"Bearer {TOKEN}"}
    secret = tmp_path / "secret.png"
    secret.write_bytes(image)
    added = client.post(
        "/items", files={"image": image}, data={"source": str(secret)}, headers=auth
    ).json()
    big = io.BytesIO()
    Image.new("1", (5000, 5000)).save(big, format="PNG")
    cases = [
        ({"data": {"target": "0"}}, 422, "exactly one of image or item_id"),
        ({"files": {"image": image}, "data": {"target": "0", "item_id": "1"}}, 422, "exactly one"),
        ({"files": {"image": image}, "data": {"target": "999"}}, 404, "no item 999"),
        ({"files": {"image": image}, "data": {"target": str(2**64)}}, 422, ""),
        ({"files": {"image": image}, "data": {"target": str(added["id"])}}, 404, "no image file"),
        ({"files": {"image": image}, "data": {"target": "0", "method": "lime"}}, 422, ""),
        (
            {"files": {"image": b"not an image"}, "data": {"target": "0"}},
            400,
            "not a readable image",
        ),
        ({"files": {"image": b"x" * 20_001}, "data": {"target": "0"}}, 413, "byte limit"),
        ({"files": {"image": big.getvalue()}, "data": {"target": "0"}}, 400, "at most 16000000"),
    ]
    for request, status, message in cases:
        reply = client.post("/explain", **request)
        assert reply.status_code == status, (request.get("data"), reply.text)
        assert message in reply.text
