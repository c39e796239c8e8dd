"""The HTTP API through FastAPI's TestClient, checked against the library (Encoder + Index)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from deepmetric.index import Encoder, ExactIndex, Index, ModelMismatchError
from deepmetric.serve import create_app
from tests.index.fixtures import make_model
from tests.serve.conftest import TOKEN


def files_of(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.png"))


def snapshot(index_dir: Path) -> tuple[int, list[object]]:
    index = Index.load(index_dir)
    return len(index), index.items(np.arange(40))


def test_health_and_docs(client: TestClient) -> None:
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["items"] == 12 and health["dim"] == 8
    assert health["threshold"] is not None and health["writes"] is True
    assert health["text"] is False
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/search", "/verify", "/items", "/items/{item_id}", "/health"} <= set(paths)
    assert client.get("/docs").status_code == 404  # no page that needs a CDN to render
    page = client.get("/")
    assert page.status_code == 200 and "deepmetric search" in page.text


def test_image_search_equals_exact_search(
    client: TestClient, model_dir: Path, image_dir: Path
) -> None:
    files = files_of(image_dir)
    encoder = Encoder(model_dir)
    exact = ExactIndex(8)
    exact.add(encoder.encode_files([str(f) for f in files]))
    scores, positions = exact.search(encoder.encode_files([str(files[4])]), 5)
    reply = client.post(
        "/search", files={"image": ("q.png", files[4].read_bytes())}, data={"k": "5"}
    )
    assert reply.status_code == 200, reply.text
    results = reply.json()["results"]
    assert [r["source"] for r in results] == [str(files[i]) for i in positions[0]]
    np.testing.assert_allclose([r["score"] for r in results], scores[0], rtol=1e-5)
    assert results[0]["match"] is True and results[0]["label"] == files[4].parent.name
    by_item = client.post("/search", data={"item_id": str(results[0]["id"]), "k": "5"}).json()
    assert [r["id"] for r in by_item["results"]] == [r["id"] for r in results]


def test_vector_search_equals_index_search(client: TestClient, index_dir: Path) -> None:
    vector = np.linspace(-1, 1, 8).astype(np.float32)
    reply = client.post("/search", data={"vector": json.dumps(vector.tolist()), "k": "3"})
    assert reply.status_code == 200, reply.text
    _, ids = Index.load(index_dir).search(vector[None], 3)
    assert [r["id"] for r in reply.json()["results"]] == ids[0].tolist()
    filtered = client.post("/search", data={"vector": json.dumps(vector.tolist()), "label": "red"})
    assert {r["label"] for r in filtered.json()["results"]} == {"red"}


@pytest.mark.parametrize(
    ("form", "files", "status", "message"),
    [
        ({"vector": "[1, 2, 3]"}, None, 422, "index dim is 8, query dim is 3"),
        ({"vector": "not json"}, None, 422, "vector must be a JSON list"),
        ({}, {"image": ("a.txt", b"plain text")}, 400, "not a readable image"),
        ({}, {"image": ("big.png", b"0" * 30_000)}, 413, "over the 20000-byte limit"),
        ({}, {"image": ("huge.png", b"0" * 200_000)}, 413, "Content Too Large"),
        ({}, None, 422, "exactly one of image, vector, item_id or text"),
        ({"text": "a red dot"}, None, 422, "this index's model has no text tower"),
        ({"text": "x" * 501}, None, 422, "at most 500 characters"),
        ({"item_id": "999"}, None, 404, "no item 999"),
        ({"vector": "[0,0,0,0,0,0,0,1]", "k": "0"}, None, 422, "greater than or equal to 1"),
    ],
)
def test_bad_search_input_is_refused(client: TestClient, form, files, status, message) -> None:  # type: ignore[no-untyped-def]
    reply = client.post("/search", data=form, files=files)
    assert reply.status_code == status, reply.text
    assert message in reply.text


def test_verify_scores_the_pair_like_the_encoder(
    client: TestClient, model_dir: Path, image_dir: Path
) -> None:
    a, b = files_of(image_dir)[0], files_of(image_dir)[-1]
    vectors = Encoder(model_dir).encode_files([str(a), str(b)])
    want = float(vectors[0] @ vectors[1] / np.linalg.norm(vectors[0]) / np.linalg.norm(vectors[1]))
    reply = client.post("/verify", files={"image_a": a.read_bytes(), "image_b": b.read_bytes()})
    body = reply.json()
    assert reply.status_code == 200 and body["score"] == pytest.approx(want, abs=1e-5)
    assert body["same"] == (want >= body["threshold"])
    same = client.post("/verify", files={"image_a": a.read_bytes(), "image_b": a.read_bytes()})
    assert same.json()["score"] == pytest.approx(1.0, abs=1e-5) and same.json()["same"] is True
    bad = client.post("/verify", files={"image_a": a.read_bytes(), "image_b": b"nope"})
    assert bad.status_code == 400 and "image_b" in bad.text


def test_items_and_thumbnails(client: TestClient, index_dir: Path) -> None:
    item = client.get("/items/3").json()
    assert item == {
        **Index.load(index_dir).items([3])[0].to_dict(),
        "thumbnail": "/items/3/thumbnail",
    }
    thumb = client.get("/items/3/thumbnail")
    assert thumb.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(thumb.content)).size == (16, 16)
    assert client.get("/items/77").status_code == 404
    assert client.get("/items/77/thumbnail").status_code == 404


def test_writes_need_the_token_and_change_nothing_without_it(
    client: TestClient, index_dir: Path, image_dir: Path
) -> None:
    image = files_of(image_dir)[0].read_bytes()
    before = snapshot(index_dir)
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
        reply = client.post("/items", files={"image": image}, data={"label": "x"}, headers=headers)
        assert reply.status_code == 401 and "Bearer" in reply.text
        assert client.delete("/items/1", headers=headers).status_code == 401
    assert snapshot(index_dir) == before
    auth = {"Authorization": f"Bearer {TOKEN}"}
    added = client.post(
        "/items",
        files={"image": image},
        data={"label": "new", "attributes": '{"a": 1}'},
        headers=auth,
    )
    assert added.status_code == 201 and added.json()["label"] == "new"
    assert added.json()["attributes"] == {"a": 1} and snapshot(index_dir)[0] == 13
    bad = client.post("/items", files={"image": image}, data={"attributes": "[1]"}, headers=auth)
    assert bad.status_code == 422 and snapshot(index_dir)[0] == 13
    assert client.delete(f"/items/{added.json()['id']}", headers=auth).json() == {
        "removed": added.json()["id"]
    }
    assert client.delete("/items/999", headers=auth).status_code == 404
    assert snapshot(index_dir) == before


def test_writes_disabled_are_forbidden_even_with_the_token(
    index_dir: Path, image_dir: Path
) -> None:
    client = TestClient(create_app(index_dir))
    before = snapshot(index_dir)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    reply = client.post(
        "/items", files={"image": files_of(image_dir)[0].read_bytes()}, headers=auth
    )
    assert reply.status_code == 403 and "writes are disabled" in reply.text
    assert client.delete("/items/1", headers=auth).status_code == 403
    assert snapshot(index_dir) == before


def test_a_reader_sees_another_servers_writes(index_dir: Path, image_dir: Path) -> None:
    writer = TestClient(create_app(index_dir, writes=True, token=TOKEN))
    reader = TestClient(create_app(index_dir))
    image = files_of(image_dir)[5].read_bytes()
    auth = {"Authorization": f"Bearer {TOKEN}"}
    new = writer.post("/items", files={"image": image}, data={"label": "twin"}, headers=auth).json()
    results = reader.post("/search", files={"image": image}, data={"k": "2"}).json()["results"]
    assert new["id"] in [r["id"] for r in results] and reader.get("/health").json()["items"] == 13


def test_the_app_refuses_bad_settings(index_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="writes need a token"):
        create_app(index_dir, writes=True)
    with pytest.raises(ModelMismatchError, match="is not the one that built the index"):
        create_app(index_dir, model_path=make_model(tmp_path / "other", seed=3))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        create_app(tmp_path / "missing")


def test_a_chunked_oversize_body_is_refused_as_it_arrives(client: TestClient) -> None:
    import asyncio

    pulled, sent = [], []

    head = b'--x\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n\r\n'

    async def receive() -> dict:  # an endless chunked upload with no Content-Length
        pulled.append(10_000)
        body = head + b"0" * 10_000 if len(pulled) == 1 else b"0" * 10_000
        return {"type": "http.request", "body": body, "more_body": True}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": "/search", "raw_path": b"/search", "query_string": b"",
        "root_path": "", "client": ("test", 1), "server": ("test", 80),
        "headers": [(b"content-type", b"multipart/form-data; boundary=x"),
                    (b"transfer-encoding", b"chunked")],
    }  # fmt: skip
    asyncio.run(asyncio.wait_for(client.app(scope, receive, send), 30))  # type: ignore[arg-type]
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 413
    assert sum(pulled) < 200_000  # it stopped reading at the limit (20 kB + 64 kB)


@pytest.mark.parametrize("method", ["get", "thumbnail", "delete", "search"])
def test_ids_past_int64_get_a_4xx_not_a_traceback(client: TestClient, method: str) -> None:
    big = "99999999999999999999999"
    auth = {"Authorization": f"Bearer {TOKEN}"}
    reply = {
        "get": lambda: client.get(f"/items/{big}"),
        "thumbnail": lambda: client.get(f"/items/{big}/thumbnail"),
        "delete": lambda: client.delete(f"/items/{big}", headers=auth),
        "search": lambda: client.post("/search", data={"item_id": big}),
    }[method]()
    assert reply.status_code == 422, reply.text


def test_deeply_nested_json_gets_a_4xx(client: TestClient, image_dir: Path) -> None:
    deep = "[" * 20_000  # under the size limit, past json's recursion limit
    assert client.post("/search", data={"vector": deep}).status_code == 422
    auth = {"Authorization": f"Bearer {TOKEN}"}
    image = files_of(image_dir)[0].read_bytes()
    reply = client.post("/items", files={"image": image}, data={"attributes": deep}, headers=auth)
    assert reply.status_code == 422 and "JSON object" in reply.text
    reply = client.post("/search", content=deep, headers={"content-type": "application/json"})
    assert reply.status_code == 422


def test_a_source_given_over_http_is_a_label_never_opened(
    client: TestClient, image_dir: Path, tmp_path: Path
) -> None:
    secret = tmp_path / "outside" / "secret.png"
    secret.parent.mkdir()
    secret.write_bytes(files_of(image_dir)[0].read_bytes())
    auth = {"Authorization": f"Bearer {TOKEN}"}
    added = client.post(
        "/items", files={"image": secret.read_bytes()}, data={"source": str(secret)}, headers=auth
    ).json()
    assert added["source"] is None and added["attributes"] == {"source": str(secret)}
    assert client.get(f"/items/{added['id']}/thumbnail").status_code == 404
    assert client.post("/search", data={"item_id": str(added["id"])}).status_code == 404


def test_files_outside_the_recorded_roots_are_not_served(index_dir: Path, tmp_path: Path) -> None:
    index = Index.load(index_dir, writable=True)
    outside = tmp_path / "elsewhere.png"
    Image.new("L", (8, 8)).save(outside)
    (new,) = index.add(np.ones((1, 8)), sources=[str(outside)], fingerprint=index.fingerprint)
    client = TestClient(create_app(index_dir))
    assert client.get(f"/items/{int(new)}/thumbnail").status_code == 404
    assert client.get("/items/3/thumbnail").status_code == 200  # indexed under its root


def test_a_decompression_bomb_source_gets_a_4xx(index_dir: Path, image_dir: Path) -> None:
    bomb = image_dir / "cat" / "bomb.png"
    bomb.parent.mkdir(exist_ok=True)
    Image.new("1", (20_000, 20_000)).save(bomb)  # tens of kB on disk, 400 megapixels
    index = Index.load(index_dir, writable=True)
    (new,) = index.add(np.ones((1, 8)), sources=[str(bomb)], fingerprint=index.fingerprint)
    client = TestClient(create_app(index_dir))
    reply = client.get(f"/items/{int(new)}/thumbnail")
    assert reply.status_code == 422 and "cannot be read" in reply.text
    assert client.post("/search", data={"item_id": str(int(new))}).status_code == 422


def test_json_vector_search_equals_the_form(client: TestClient) -> None:
    vector = [0.0] * 7 + [1.0]
    form = client.post("/search", data={"vector": json.dumps(vector), "k": "3"}).json()
    body = client.post("/search", json={"vector": vector, "k": 3}).json()
    assert body == form
    bad = client.post("/search", json={"vectr": vector})
    assert bad.status_code == 422 and '{"vector": [...]' in bad.json()["detail"]


def test_images_are_decoded_off_the_event_loop_and_a_full_queue_gets_503(
    client: TestClient, image_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    from deepmetric.serve import service as service_module

    service = client.app.state.service  # type: ignore[attr-defined]
    threads: list[str] = []
    decode = service.encoder.decode
    monkeypatch.setattr(
        service.encoder, "decode",
        lambda *a, **k: threads.append(threading.current_thread().name) or decode(*a, **k),
    )  # fmt: skip
    image = files_of(image_dir)[0].read_bytes()
    assert client.post("/search", files={"image": image}).status_code == 200
    assert threads and threads[0].startswith("deepmetric-embed")
    service.waiting = service_module.QUEUE
    reply = client.post("/search", files={"image": image})
    assert reply.status_code == 503 and "busy" in reply.text
    service.waiting = 0


def test_uploads_over_the_pixel_limit_are_refused_before_decoding(client: TestClient) -> None:
    out = io.BytesIO()
    Image.new("1", (5000, 5000)).save(out, format="PNG")  # 25 MP in 3 kB
    reply = client.post("/search", files={"image": out.getvalue()})
    assert reply.status_code == 400 and "at most 16000000" in reply.text
