"""The routes of the HTTP API and the search page; ``create_app`` mounts them."""

from __future__ import annotations

import io
import json
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Depends, File, Form, Header, HTTPException, Request, UploadFile
from fastapi.responses import HTMLResponse, Response
from PIL import Image

from .service import THUMBNAIL_PIXELS, Service, parse_vector


def _service(request: Request) -> Service:
    service: Service = request.app.state.service
    return service


Served = Annotated[Service, Depends(_service)]
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
    }


@router.post("/search")
async def search(
    service: Served,
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
        query = parse_vector(vector, service.index.dim)
    else:
        query = _item_vector(service, int(item_id or 0))
    return service.results(query, k, label)


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


def _item_vector(service: Service, item_id: int) -> np.ndarray:
    item = service.index.items([item_id])[0]
    if item is None:
        raise HTTPException(404, f"no item {item_id}")
    if item.source is None or not Path(item.source).is_file():
        raise HTTPException(422, f"item {item_id} has no local source image to search from")
    with service.encode_lock:
        return service.encoder.encode_files([item.source])


@router.get("/items/{item_id}")
def get_item(service: Served, item_id: int) -> dict[str, Any]:
    """An item's metadata and the address of its thumbnail."""
    item = service.index.items([item_id])[0]
    if item is None:
        raise HTTPException(404, f"no item {item_id}")
    return {**item.to_dict(), "thumbnail": f"/items/{item_id}/thumbnail"}


@router.get("/items/{item_id}/thumbnail", responses={200: {"content": {"image/png": {}}}})
def thumbnail(service: Served, item_id: int) -> Response:
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


@router.post("/items", status_code=201)
async def add_item(
    service: Served,
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


@router.delete("/items/{item_id}")
def delete_item(
    service: Served, item_id: int, authorization: Annotated[str | None, Header()] = None
) -> dict[str, Any]:
    """Remove an item (writes enabled, bearer token)."""
    service.authorise(authorization)
    try:
        service.index.remove([item_id])
    except KeyError:
        raise HTTPException(404, f"no item {item_id}") from None
    return {"removed": item_id}
