"""Serve an index over HTTP: ``create_app(index_path, ...)`` (FastAPI) and ``serve(...)``
(uvicorn, one or several worker processes). Needs the ``serve`` extra (fastapi, uvicorn,
python-multipart)."""

from .app import create_app
from .run import serve

__all__ = ["create_app", "serve"]
