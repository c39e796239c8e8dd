"""The state every request shares: the index, the query encoder, and the request checks.

Decoding and embedding run on a small pool of worker threads, never on the event loop, so a
large upload cannot stall ``/health`` or other requests; at most ``QUEUE`` of them wait at
once, and past that a request gets 503 at once. The server opens a file only for an item
that the command line indexed under one of the index's recorded ``roots``.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from fastapi import HTTPException, UploadFile
from torch import Tensor

from ..index import Encoder, Index, ModelMismatchError
from ..models.io import TEXT_DIR

MAX_UPLOAD_BYTES = 10 * 2**20
MAX_TEXT = 500  # characters of a text query
UPLOAD_PIXELS = 16_000_000  # 4000 x 4000: a decoded RGB upload stays under 50 MB
THUMBNAIL_PIXELS = 160
WORKERS = 1
QUEUE = 8
T = TypeVar("T")


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
        device: str = "cpu",
    ) -> None:
        if writes and not token:
            raise ValueError("writes need a token: pass token= (or set DEEPMETRIC_TOKEN)")
        if max_upload_bytes < 1:
            raise ValueError(f"max_upload_bytes must be >= 1; got {max_upload_bytes}")
        self.index = Index.load(index_path, writable=writes)
        model = model_path or self.index.model_path
        if model is None:
            raise ValueError(f"the index at {index_path} names no model; pass model_path=")
        self.encoder = Encoder(model, device)
        if self.index.fingerprint not in (None, self.encoder.fingerprint):
            raise ModelMismatchError(
                f"the model at {model} is not the one that built the index at {index_path}"
            )
        self.writes, self.token, self.max_upload_bytes = writes, token, max_upload_bytes
        self.has_text = (Path(model) / TEXT_DIR / "config.json").is_file()
        self.encode_lock = threading.Lock()
        self.pool = ThreadPoolExecutor(WORKERS, thread_name_prefix="deepmetric-embed")
        self.waiting = 0  # jobs submitted and not finished (touched on the event loop only)

    async def off_loop(self, job: Callable[[], T]) -> T:
        """``job()`` on the worker pool; 503 when ``QUEUE`` jobs are already waiting."""
        if self.waiting >= QUEUE:
            raise HTTPException(503, "the server is busy embedding other images; retry shortly")
        self.waiting += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self.pool, job)
        finally:
            self.waiting -= 1

    async def upload_bytes(self, upload: UploadFile, name: str) -> bytes:
        """The bytes of one upload, or 413 past ``max_upload_bytes``."""
        data = await upload.read(self.max_upload_bytes + 1)
        if len(data) > self.max_upload_bytes:
            raise HTTPException(413, f"{name} is over the {self.max_upload_bytes}-byte limit")
        return data

    def decode(self, data: bytes, name: str) -> Tensor:
        """An image's bytes at the model's size in [0, 1] (run off the event loop); 400 when
        it is not an image or has over ``UPLOAD_PIXELS`` pixels."""
        try:
            return self.encoder.decode(data, max_pixels=UPLOAD_PIXELS)
        except ValueError as err:
            raise HTTPException(400, f"{name}: {err}") from None

    async def read_image(self, upload: UploadFile, name: str) -> np.ndarray:
        """Read, size-check and embed one upload: ``(1, dim)`` vector, or 413 / 400 / 503."""
        data = await self.upload_bytes(upload, name)

        def decode_and_embed() -> np.ndarray:
            image = self.decode(data, name)
            with self.encode_lock:
                return self.encoder.encode(image[None])

        return await self.off_loop(decode_and_embed)

    async def read_text(self, text: str) -> np.ndarray:
        """Embed one text query with the dual encoder's text tower: ``(1, dim)``, or 422 when
        it is blank or the model has no text tower (503 when busy)."""
        if not self.has_text:
            raise HTTPException(422, "this index's model has no text tower; search with images")
        if not text.strip():
            raise HTTPException(422, "text must hold a word")

        def embed() -> np.ndarray:
            with self.encode_lock:
                return self.encoder.encode_texts([text])

        return await self.off_loop(embed)

    def local_file(self, item_id: int) -> Path:
        """The source image of an item that the command line indexed under one of the index's
        ``roots``; 404 for anything else (a source given over HTTP is only a label)."""
        item = self.index.items([item_id])[0]
        if item is None:
            raise HTTPException(404, f"no item {item_id}")
        path = None if item.source is None else Path(item.source).resolve()
        inside = path is not None and any(path.is_relative_to(r) for r in self.index.roots)
        if path is None or not inside or not path.is_file():
            raise HTTPException(404, f"item {item_id} has no image file that this server serves")
        return path

    def authorise(self, authorization: str | None) -> None:
        """403 when writes are disabled, 401 without the right bearer token."""
        if not self.writes:
            raise HTTPException(403, "writes are disabled on this server (start it with writes)")
        scheme, _, given = (authorization or "").strip().partition(" ")
        valid = scheme.lower() == "bearer" and given.strip() != ""
        if not valid or not hmac.compare_digest(given.strip().encode(), str(self.token).encode()):
            raise HTTPException(401, "a valid 'Authorization: Bearer <token>' header is needed")

    def results(self, vector: np.ndarray, k: int, label: str | None) -> dict[str, Any]:
        """The JSON body of a search: ranked items with score, metadata and match flag.

        An item removed by another writer between the search and the metadata lookup is left
        out, so such a reply can hold fewer than ``k`` results.
        """
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


def parse_vector(text: str | list[Any], dim: int) -> np.ndarray:
    """A JSON list of ``dim`` numbers (text, or already parsed) as a ``(1, dim)`` array; 422
    otherwise."""
    try:
        values = json.loads(text) if isinstance(text, str) else text
        vector = np.asarray(values, dtype=np.float32).reshape(1, -1)
    except (ValueError, TypeError, RecursionError):
        raise HTTPException(422, "vector must be a JSON list of numbers") from None
    if vector.shape[1] != dim:
        raise HTTPException(422, f"index dim is {dim}, query dim is {vector.shape[1]}")
    return vector


def parse_attributes(text: str) -> dict[str, Any]:
    """A JSON object of item attributes; 422 otherwise (nesting too deep included)."""
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        value = None
    if not isinstance(value, dict):
        raise HTTPException(422, "attributes must be a JSON object")
    return value
