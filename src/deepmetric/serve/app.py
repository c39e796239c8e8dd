"""The HTTP API over an index directory (FastAPI) and the search page at ``/``.

Routes: ``POST /search`` (an image upload, a vector, or a stored item's id), ``POST /verify``
(two images), ``GET /items/{id}`` and ``GET /items/{id}/thumbnail``, ``POST /items`` and
``DELETE /items/{id}`` (only with writes enabled, and a bearer token), ``GET /health``; OpenAPI
docs at ``/docs``. Uploads are limited in size (413) and must decode as images (400); a vector
of the wrong width is refused (422); writes are refused without the token (401) or when writes
are disabled (403), before anything changes.
"""

from __future__ import annotations

import hmac
import io
import json
import threading
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from fastapi import FastAPI, File, Form, Header, HTTPException, Request, UploadFile
from fastapi.responses import HTMLResponse, JSONResponse, Response
from PIL import Image

from ..index import Encoder, Index, ModelMismatchError

MAX_UPLOAD_BYTES = 10 * 2**20
THUMBNAIL_PIXELS = 160


class Service:
    """The index, the model that embeds queries, and the request checks the routes share."""

    def __init__(
        self,
        index_path: str | Path,
        *,
        model_path: str | Path | None,
        writes: bool,
        token: str | None,
        max_upload_bytes: int,
    ) -> None:
        if writes and not token:
            raise ValueError("writes need a token: pass token= (or set DEEPMETRIC_TOKEN)")
        if max_upload_bytes < 1:
            raise ValueError(f"max_upload_bytes must be >= 1; got {max_upload_bytes}")
        self.index = Index.load(index_path, writable=writes)
        model = model_path or self.index.model_path
        if model is None:
            raise ValueError(f"the index at {index_path} names no model; pass model_path=")
        self.encoder = Encoder(model)
        if self.index.fingerprint not in (None, self.encoder.fingerprint):
            raise ModelMismatchError(
                f"the model at {model} is not the one that built the index at {index_path}"
            )
        self.writes, self.token, self.max_upload_bytes = writes, token, max_upload_bytes
        self.encode_lock = threading.Lock()

    async def read_image(self, upload: UploadFile, name: str) -> np.ndarray:
        """Read, size-check and embed one upload: ``(1, dim)`` vector, or 413 / 400."""
        data = await upload.read(self.max_upload_bytes + 1)
        if len(data) > self.max_upload_bytes:
            raise HTTPException(413, f"{name} is over the {self.max_upload_bytes}-byte limit")
        try:
            image = self.encoder.decode(data)
        except ValueError as err:
            raise HTTPException(400, f"{name}: {err}") from None
        with self.encode_lock:
            return self.encoder.encode(image[None])

    def authorise(self, authorization: str | None) -> None:
        """403 when writes are disabled, 401 without the right bearer token."""
        if not self.writes:
            raise HTTPException(403, "writes are disabled on this server (start it with writes)")
        given = (authorization or "").removeprefix("Bearer ").strip()
        if not given or not hmac.compare_digest(given.encode(), str(self.token).encode()):
            raise HTTPException(401, "a valid 'Authorization: Bearer <token>' header is needed")

    def results(self, vector: np.ndarray, k: int, label: str | None) -> dict[str, Any]:
        """The JSON body of a search: ranked items with score, metadata and match flag."""
        try:
            scores, ids = self.index.search(
                vector, k, label=label, fingerprint=self.encoder.fingerprint
            )
        except ValueError as err:
            raise HTTPException(422, str(err)) from None
        found = ids[0] >= 0
        items = self.index.items(ids[0][found])
        matches = self.matches(scores[0][found])
        rows = [
            {"rank": rank + 1, "score": float(score), "match": match, **item.to_dict()}
            for rank, (score, item, match) in enumerate(
                zip(scores[0][found], items, matches, strict=True)
            )
            if item is not None
        ]
        return {"metric": self.index.metric, "threshold": self.index.threshold, "results": rows}

    def matches(self, scores: np.ndarray) -> list[bool | None]:
        """Per score: at the calibrated threshold or better, or None without a threshold."""
        if self.index.threshold is None:
            return [None] * len(scores)
        return [bool(m) for m in self.index.is_match(scores)]


def _parse_vector(text: str, dim: int) -> np.ndarray:
    try:
        values = json.loads(text)
        vector = np.asarray(values, dtype=np.float32).reshape(1, -1)
    except (ValueError, TypeError):
        raise HTTPException(422, "vector must be a JSON list of numbers") from None
    if vector.shape[1] != dim:
        raise HTTPException(422, f"index dim is {dim}, query dim is {vector.shape[1]}")
    return vector


def create_app(
    index_path: str | Path,
    *,
    model_path: str | Path | None = None,
    writes: bool = False,
    token: str | None = None,
    max_upload_bytes: int = MAX_UPLOAD_BYTES,
) -> FastAPI:
    """The FastAPI app serving the index directory at ``index_path``.

    Args:
        index_path: an index directory (``deepmetric index build --out``).
        model_path: the model directory that embeds queries; default: the one the index
            names. A model with another fingerprint is refused.
        writes: enable ``POST /items`` and ``DELETE /items/{id}``.
        token: the bearer token writes need (required with ``writes``).
        max_upload_bytes: the largest accepted upload (larger requests get 413).
    """
    service = Service(
        index_path,
        model_path=model_path,
        writes=writes,
        token=token,
        max_upload_bytes=max_upload_bytes,
    )
    app = FastAPI(title="deepmetric search", version="1", description=__doc__)
    app.state.service = service

    @app.middleware("http")
    async def limit_size(request: Request, call_next: Any) -> Any:
        length = request.headers.get("content-length", "")
        if length.isdigit() and int(length) > service.max_upload_bytes + 64 * 1024:
            return JSONResponse({"detail": "the request body is over the size limit"}, 413)
        return await call_next(request)

    _search_routes(app, service)
    _item_routes(app, service)
    return app


def _search_routes(app: FastAPI, service: Service) -> None:
    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> str:
        return resources.files(__package__).joinpath("static/index.html").read_text("utf-8")

    @app.get("/health")
    def health() -> dict[str, Any]:
        """Liveness and the index summary."""
        index = service.index
        index.refresh()
        return {
            "status": "ok",
            "items": len(index),
            "dim": index.dim,
            "metric": index.metric,
            "factory": index.factory,
            "threshold": index.threshold,
            "writes": service.writes,
        }

    @app.post("/search")
    async def search(
        image: Annotated[UploadFile | None, File(description="an image to search with")] = None,
        vector: Annotated[str | None, Form(description="or a JSON list of dim numbers")] = None,
        item_id: Annotated[int | None, Form(description="or a stored item's id")] = None,
        k: Annotated[int, Form(ge=1, le=1000)] = 10,
        label: Annotated[str | None, Form(description="only items with this label")] = None,
    ) -> dict[str, Any]:
        """The k nearest items of one query, with scores, labels and match decisions."""
        if sum(x is not None for x in (image, vector, item_id)) != 1:
            raise HTTPException(422, "give exactly one of image, vector or item_id")
        if image is not None:
            query = await service.read_image(image, "image")
        elif vector is not None:
            query = _parse_vector(vector, service.index.dim)
        else:
            query = _item_vector(service, int(item_id or 0))
        return service.results(query, k, label)

    @app.post("/verify")
    async def verify(
        image_a: Annotated[UploadFile, File()], image_b: Annotated[UploadFile, File()]
    ) -> dict[str, Any]:
        """Whether two images show the same thing: their score and the decision at the
        calibrated threshold (null without one)."""
        a = await service.read_image(image_a, "image_a")
        b = await service.read_image(image_b, "image_b")
        if service.index.metric == "cosine":
            score = float((a @ b.T)[0, 0] / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-12))
        else:
            score = float(np.linalg.norm(a - b))
        same = service.matches(np.array([score]))[0]
        return {
            "score": score,
            "metric": service.index.metric,
            "same": same,
            "threshold": service.index.threshold,
        }


def _item_vector(service: Service, item_id: int) -> np.ndarray:
    item = service.index.items([item_id])[0]
    if item is None:
        raise HTTPException(404, f"no item {item_id}")
    if item.source is None or not Path(item.source).is_file():
        raise HTTPException(422, f"item {item_id} has no local source image to search from")
    with service.encode_lock:
        return service.encoder.encode_files([item.source])


def _item_routes(app: FastAPI, service: Service) -> None:
    @app.get("/items/{item_id}")
    def get_item(item_id: int) -> dict[str, Any]:
        """An item's metadata and the address of its thumbnail."""
        item = service.index.items([item_id])[0]
        if item is None:
            raise HTTPException(404, f"no item {item_id}")
        return {**item.to_dict(), "thumbnail": f"/items/{item_id}/thumbnail"}

    @app.get("/items/{item_id}/thumbnail", responses={200: {"content": {"image/png": {}}}})
    def thumbnail(item_id: int) -> Response:
        """A PNG thumbnail of the item's source image (404 when it has no local file)."""
        item = service.index.items([item_id])[0]
        if item is None or item.source is None or not Path(item.source).is_file():
            raise HTTPException(404, f"item {item_id} has no local image")
        try:
            with Image.open(item.source) as img:
                img.thumbnail((THUMBNAIL_PIXELS, THUMBNAIL_PIXELS))
                out = io.BytesIO()
                img.convert("RGB").save(out, format="PNG")
        except OSError:
            raise HTTPException(404, f"the image of item {item_id} cannot be read") from None
        return Response(out.getvalue(), media_type="image/png")

    @app.post("/items", status_code=201)
    async def add_item(
        image: Annotated[UploadFile, File()],
        label: Annotated[str | None, Form()] = None,
        source: Annotated[str | None, Form()] = None,
        attributes: Annotated[str, Form(description="a JSON object")] = "{}",
        authorization: Annotated[str | None, Header()] = None,
    ) -> dict[str, Any]:
        """Embed an image and add it as a new item (writes enabled, bearer token)."""
        service.authorise(authorization)
        try:
            extra = json.loads(attributes)
        except ValueError:
            raise HTTPException(422, "attributes must be a JSON object") from None
        if not isinstance(extra, dict):
            raise HTTPException(422, "attributes must be a JSON object")
        vector = await service.read_image(image, "image")
        ids = service.index.add(
            vector,
            labels=[label],
            sources=[source],
            attributes=[extra],
            fingerprint=service.encoder.fingerprint,
        )
        item = service.index.items(ids)[0]
        return {} if item is None else item.to_dict()

    @app.delete("/items/{item_id}")
    def delete_item(
        item_id: int, authorization: Annotated[str | None, Header()] = None
    ) -> dict[str, Any]:
        """Remove an item (writes enabled, bearer token)."""
        service.authorise(authorization)
        try:
            service.index.remove([item_id])
        except KeyError:
            raise HTTPException(404, f"no item {item_id}") from None
        return {"removed": item_id}
