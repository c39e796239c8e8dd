"""The HTTP API over an index directory (FastAPI) and the search page at ``/``.

Routes: ``POST /search`` (an image upload, a vector, or a stored item's id), ``POST /verify``
(two images), ``GET /items/{id}`` and ``GET /items/{id}/thumbnail``, ``POST /items`` and
``DELETE /items/{id}`` (only with writes enabled, and a bearer token), ``GET /health``; OpenAPI
docs at ``/docs``. Uploads are limited in size (413) and must decode as images (400); a vector
of the wrong width is refused (422); writes are refused without the token (401) or when writes
are disabled (403), before anything changes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

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

    app.include_router(router)
    return app
