"""The HTTP API over an index directory (FastAPI) and the search page at ``/``.

Routes: ``POST /search`` (an image upload, a vector, or a stored item's id), ``POST /verify``
(two images), ``GET /items/{id}`` and ``GET /items/{id}/thumbnail``, ``POST /items`` and
``DELETE /items/{id}`` (only with writes enabled, and a bearer token), ``GET /health``; the
OpenAPI schema at ``/openapi.json`` (no docs page: it would load its assets from a CDN). Every
request body is limited in size as it arrives, chunked or not (413); uploads must decode as
images of at most 16 megapixels (400); a vector of the wrong width is refused (422); writes are
refused without the token (401) or when writes are disabled (403), before anything changes;
when the embedding workers are saturated a request gets 503. Every bad input gets a 4xx.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from .routes import router
from .service import MAX_UPLOAD_BYTES, Service

__all__ = ["MAX_UPLOAD_BYTES", "create_app"]


def create_app(
    index_path: str | Path,
    *,
    model_path: str | Path | None = None,
    writes: bool = False,
    token: str | None = None,
    max_upload_bytes: int = MAX_UPLOAD_BYTES,
    device: str = "cpu",
) -> FastAPI:
    """The FastAPI app serving the index directory at ``index_path``.

    Args:
        index_path: an index directory (``deepmetric index build --out``).
        model_path: the model directory that embeds queries; default: the one the index
            names. A model with another fingerprint is refused.
        writes: enable ``POST /items`` and ``DELETE /items/{id}``.
        token: the bearer token writes need (required with ``writes``).
        max_upload_bytes: the largest accepted upload (larger requests get 413).
        device: where the model embeds queries.
    """
    service = Service(
        index_path,
        model_path=model_path,
        writes=writes,
        token=token,
        max_upload_bytes=max_upload_bytes,
        device=device,
    )
    app = FastAPI(
        title="deepmetric search", version="1", description=__doc__, docs_url=None,
        redoc_url=None, max_body_size=service.max_upload_bytes + 64 * 1024,
    )  # fmt: skip
    app.state.service = service
    app.include_router(router)
    return app
