"""The routes of the HTTP API and the search page; ``create_app`` mounts them."""

from __future__ import annotations

import base64
import io
import json
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import torch
from fastapi import APIRouter, Depends, File, Form, Header, HTTPException, Request, UploadFile
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, Response
from PIL import Image
from torch import Tensor

from ..explain import describe, draw_pair, explain_pair
from .service import (
    MAX_TEXT,
    THUMBNAIL_PIXELS,
    UPLOAD_PIXELS,
    Service,
    parse_attributes,
    parse_vector,
)


def _service(request: Request) -> Service:
    service: Service = request.app.state.service
    return service


Served = Annotated[Service, Depends(_service)]
ItemId = Annotated[int, PathParam(ge=0, le=2**63 - 1, description="an item id")]
FormId = Annotated[int | None, Form(ge=0, le=2**63 - 1, description="or a stored item's id")]
router = APIRouter()


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
def page(service: Served) -> str:
    return resources.files(__package__).joinpath("static/index.html").read_text("utf-8")


@router.get("/health")
def health(service: Served) -> dict[str, Any]:
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
        "text": service.has_text,
    }


@router.post("/search")
async def search(
    service: Served,
    request: Request,
    image: Annotated[UploadFile | None, File(description="an image to search with")] = None,
    vector: Annotated[str | None, Form(description="or a JSON list of dim numbers")] = None,
    item_id: FormId = None,
    text: Annotated[
        str | None, Form(max_length=MAX_TEXT, description="or words (a dual encoder's index)")
    ] = None,
    k: Annotated[int, Form(ge=1, le=1000)] = 10,
    label: Annotated[str | None, Form(description="only items with this label")] = None,
) -> dict[str, Any]:
    """The k nearest items of one query, with scores, labels and match decisions.

    A multipart form (``image``, ``vector``, ``item_id`` or ``text``, with ``k`` and
    ``label``), or a JSON body ``{"vector": [...], "k": 10, "label": null}``.
    """
    if request.headers.get("content-type", "").startswith("application/json"):
        return _json_search(service, await request.body())
    if sum(x is not None for x in (image, vector, item_id, text)) != 1:
        raise HTTPException(422, "give exactly one of image, vector, item_id or text")
    if text is not None:
        query = await service.read_text(text)
    elif image is not None:
        query = await service.read_image(image, "image")
    elif vector is not None:
        query = parse_vector(vector, service.index.dim)
    else:
        query = await _item_vector(service, int(item_id or 0))
    return service.results(query, k, label)


def _json_search(service: Service, body: bytes) -> dict[str, Any]:
    try:
        query = json.loads(body)
    except (ValueError, RecursionError):
        query = None
    if (
        not isinstance(query, dict)
        or "vector" not in query
        or set(query) - {"vector", "k", "label"}
    ):
        raise HTTPException(422, 'a JSON search is {"vector": [...], "k": 10, "label": null}')
    k, label = query.get("k", 10), query.get("label")
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= 1000:
        raise HTTPException(422, f"k must be an integer in [1, 1000]; got {k!r}")
    if label is not None and not isinstance(label, str):
        raise HTTPException(422, f"label must be a string or null; got {label!r}")
    return service.results(parse_vector(query["vector"], service.index.dim), k, label)


@router.post("/verify")
async def verify(
    service: Served, image_a: Annotated[UploadFile, File()], image_b: Annotated[UploadFile, File()]
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


async def _item_vector(service: Service, item_id: int) -> np.ndarray:
    path = service.local_file(item_id)

    def embed() -> np.ndarray:
        image = _item_image(service, item_id, path)
        with service.encode_lock:
            return service.encoder.encode(image[None])

    return await service.off_loop(embed)


def _item_image(service: Service, item_id: int, path: Path) -> Tensor:
    """A stored item's image at the model's size (on the worker pool); 422 if unreadable."""
    try:
        return service.encoder.decode(path.read_bytes(), max_pixels=UPLOAD_PIXELS)
    except (OSError, ValueError):
        raise HTTPException(422, f"the image of item {item_id} cannot be read") from None


@router.post("/explain")
async def explain(
    service: Served,
    target: Annotated[int, Form(ge=0, le=2**63 - 1, description="the result item to explain")],
    image: Annotated[UploadFile | None, File(description="the query image")] = None,
    item_id: FormId = None,
    method: Annotated[Literal["auto", "exact", "gradient"], Form()] = "auto",
) -> dict[str, Any]:
    """Why the query (an uploaded ``image`` or a stored ``item_id``) and item ``target`` are
    similar: the numbers of :func:`deepmetric.explain.explain_pair` and ``picture``, a PNG
    ``data:`` URI of both images with their maps (integrated gradients use 32 steps)."""
    if (image is None) == (item_id is None):
        raise HTTPException(422, "give exactly one of image or item_id")
    target_path = service.local_file(target)
    query_path = None if item_id is None else service.local_file(item_id)
    data = None if image is None else await service.upload_bytes(image, "image")

    def work() -> dict[str, Any]:
        if data is not None:
            query = service.decode(data, "image")
        else:
            query = _item_image(service, int(item_id or 0), query_path)  # type: ignore[arg-type]
        pictures = torch.stack([query, _item_image(service, target, target_path)])
        with service.encode_lock:
            x = service.encoder.prepare(pictures)
            found = explain_pair(
                service.encoder.model, x[0], x[1], metric=service.index.metric, method=method
            )
        drawn = draw_pair(found, pictures[0], pictures[1], height=192)
        buffer = io.BytesIO()
        drawn.save(buffer, format="PNG")
        uri = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
        return {**found.summary(), "text": describe(found), "picture": uri}

    return await service.off_loop(work)


@router.get("/items/{item_id}")
def get_item(service: Served, item_id: ItemId) -> dict[str, Any]:
    """An item's metadata and the address of its thumbnail."""
    item = service.index.items([item_id])[0]
    if item is None:
        raise HTTPException(404, f"no item {item_id}")
    return {**item.to_dict(), "thumbnail": f"/items/{item_id}/thumbnail"}


@router.get("/items/{item_id}/thumbnail", responses={200: {"content": {"image/png": {}}}})
async def thumbnail(service: Served, item_id: ItemId) -> Response:
    """A PNG thumbnail of the item's source image (404 when the server serves no file for it,
    422 when the file is not an image it will decode)."""
    path = service.local_file(item_id)

    def draw() -> bytes:
        try:
            with Image.open(path) as img:
                if img.width * img.height > UPLOAD_PIXELS:
                    raise ValueError("too many pixels")
                img.thumbnail((THUMBNAIL_PIXELS, THUMBNAIL_PIXELS))
                out = io.BytesIO()
                img.convert("RGB").save(out, format="PNG")
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
            raise HTTPException(422, f"the image of item {item_id} cannot be read") from None
        return out.getvalue()

    return Response(await service.off_loop(draw), media_type="image/png")


@router.post("/items", status_code=201)
async def add_item(
    service: Served,
    image: Annotated[UploadFile, File()],
    label: Annotated[str | None, Form()] = None,
    source: Annotated[str | None, Form()] = None,
    attributes: Annotated[str, Form(description="a JSON object")] = "{}",
    authorization: Annotated[str | None, Header()] = None,
) -> dict[str, Any]:
    """Embed an image and add it as a new item (writes enabled, bearer token). ``source`` is
    kept as the ``source`` attribute, a label: the server never opens it."""
    service.authorise(authorization)
    extra = parse_attributes(attributes)
    if source is not None:
        extra["source"] = source
    vector = await service.read_image(image, "image")
    ids = service.index.add(
        vector, labels=[label], attributes=[extra], fingerprint=service.encoder.fingerprint
    )
    item = service.index.items(ids)[0]
    return {} if item is None else item.to_dict()


@router.delete("/items/{item_id}")
def delete_item(
    service: Served, item_id: ItemId, authorization: Annotated[str | None, Header()] = None
) -> dict[str, Any]:
    """Remove an item (writes enabled, bearer token)."""
    service.authorise(authorization)
    try:
        service.index.remove([item_id])
    except KeyError:
        raise HTTPException(404, f"no item {item_id}") from None
    return {"removed": item_id}
