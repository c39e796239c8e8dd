"""Load test of `deepmetric serve` on loopback: concurrent clients for a fixed time.

    python bench/serve_load.py [--clients 32] [--seconds 30] [--workers 2] [--max-requests 100000]

Builds a throwaway index (a small conv4 embedder on 32x32 images, 600 synthetic images in 6
classes), starts the server with ``--workers`` uvicorn worker processes and writes enabled, and
runs ``--clients`` httpx async clients that post searches back to back (3 in 4 with an image
upload, 1 in 4 with a vector) until ``--seconds`` pass or ``--max-requests`` are sent. One more
client adds an item and deletes it again every half second, through whichever worker answers,
so that writes meet concurrent reads. Reports requests, throughput, latency percentiles and
errors (any non-2xx reply or transport error), and checks the item count afterwards.
A search that races a delete may return 9 results (the deleted item is left out); those
replies are counted apart from errors.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

TOKEN = "load-test-token"


def make_index(root: Path) -> Path:
    """A model directory, a folder of images and the index built from them."""
    import torch

    from deepmetric.index import build_index
    from deepmetric.models import Embedder, save_model

    torch.manual_seed(0)
    spec = {"backbone": {"name": "conv4", "channels": 16, "num_blocks": 3}, "embedding_dim": 32}
    prep = {"image_size": 32, "channels": 3, "mean": [0.5] * 3, "std": [0.25] * 3}
    save_model(Embedder(spec).eval(), root / "model", preprocessing=prep)
    rng = np.random.default_rng(0)
    for c in range(6):
        (root / "images" / f"class{c}").mkdir(parents=True)
        for i in range(100):
            pixels = rng.integers(0, 256, (32, 32, 3)).astype(np.uint8)
            pixels[:, :, c % 3] //= 1 + c // 3
            Image.fromarray(pixels).save(root / "images" / f"class{c}" / f"{i}.png")
    build_index(root / "model", str(root / "images"), far=1e-2).save(root / "index")
    return root / "index"


def start_server(index: Path, port: int, workers: int) -> subprocess.Popen[bytes]:
    code = (
        "from deepmetric.serve import serve; "
        f"serve({str(index)!r}, port={port}, workers={workers}, writes=True)"
    )
    env = {**os.environ, "DEEPMETRIC_TOKEN": TOKEN}
    return subprocess.Popen([sys.executable, "-P", "-c", code], env=env)


async def wait_ready(url: str, seconds: float = 60) -> dict[str, object]:
    deadline = time.monotonic() + seconds
    async with httpx.AsyncClient() as client:
        while time.monotonic() < deadline:
            try:
                reply = await client.get(url + "/health")
                if reply.status_code == 200:
                    return dict(reply.json())
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.2)
    raise RuntimeError(f"the server at {url} did not answer /health within {seconds} s")


async def searcher(
    url: str, images: list[bytes], stop: float, budget: list[int], out: dict
) -> None:
    rng = np.random.default_rng(len(out["latency"]))
    async with httpx.AsyncClient(timeout=30) as client:
        while time.monotonic() < stop and budget[0] > 0:
            budget[0] -= 1
            if rng.random() < 0.75:
                kwargs = {
                    "files": {"image": images[rng.integers(len(images))]},
                    "data": {"k": "10"},
                }
            else:
                vector = json.dumps(rng.standard_normal(32).round(4).tolist())
                kwargs = {"data": {"vector": vector, "k": "10"}}
            start = time.perf_counter()
            try:
                reply = await client.post(url + "/search", **kwargs)
                ok = reply.status_code == 200
                why = f"{reply.status_code}: {reply.text[:200]}"
                out["short"] += ok and len(reply.json()["results"]) < 10
            except httpx.HTTPError as err:
                ok, why = False, repr(err)
            out["latency"].append(time.perf_counter() - start)
            if not ok:
                out["errors"] += 1
                out["why"].append(why)


async def writer(url: str, image: bytes, stop: float, out: dict) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(timeout=30) as client:
        while time.monotonic() < stop:
            added = await client.post(url + "/items", files={"image": image}, headers=auth)
            ok = added.status_code == 201
            if ok:
                gone = await client.delete(f"{url}/items/{added.json()['id']}", headers=auth)
                ok = gone.status_code == 200
            out["writes"] += 1
            out["write_errors"] += 0 if ok else 1
            await asyncio.sleep(0.5)


async def load(url: str, images: list[bytes], args: argparse.Namespace) -> dict:
    out: dict = {"latency": [], "errors": 0, "why": [], "short": 0, "writes": 0, "write_errors": 0}
    stop = time.monotonic() + args.seconds
    budget = [args.max_requests]
    start = time.perf_counter()
    tasks = [searcher(url, images, stop, budget, out) for _ in range(args.clients)]
    await asyncio.gather(*tasks, writer(url, images[0], stop, out))
    out["elapsed"] = time.perf_counter() - start
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--max-requests", type=int, default=100_000)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="deepmetric-load-"))
    index = make_index(root)
    images = []
    for path in sorted((root / "images").rglob("*.png"))[::10]:
        buffer = io.BytesIO()
        Image.open(path).save(buffer, format="PNG")
        images.append(buffer.getvalue())
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    server = start_server(index, port, args.workers)
    try:
        before = asyncio.run(wait_ready(url))
        result = asyncio.run(load(url, images, args))
        after = asyncio.run(wait_ready(url))
    finally:
        server.terminate()
        server.wait(timeout=30)
    ms = np.array(result["latency"]) * 1000
    p50, p95, p99 = np.percentile(ms, [50, 95, 99])
    print(
        f"{args.clients} clients, {args.workers} workers, {os.cpu_count()} CPUs, "
        f"{result['elapsed']:.1f} s, index of {before['items']} items"
    )
    print(f"searches     {len(ms)}  ({len(ms) / result['elapsed']:.0f}/s)")
    print(f"latency ms   p50 {p50:.1f}  p95 {p95:.1f}  p99 {p99:.1f}  max {ms.max():.1f}")
    print(f"errors       {result['errors']}")
    print(
        f"short        {result['short']} replies with < 10 results (an item deleted between the "
        "search and its metadata lookup is left out)"
    )
    for why in sorted(set(result["why"]))[:5]:
        print(f"  {why}")
    print(
        f"writes       {result['writes']} add+delete pairs, {result['write_errors']} errors; "
        f"items before {before['items']}, after {after['items']}"
    )


if __name__ == "__main__":
    main()
