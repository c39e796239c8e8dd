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

Then the hostile cases, as an attacker would send them: a chunked upload with no
Content-Length that never ends (the reply must be 413 after little more than the limit), and
8 concurrent uploads of large images (8000x8000 greyscale PNGs of 62 kB, refused from the
header, then 4000x4000 ones at the 16-megapixel limit, which are decoded) while ``/health`` is
polled every 20 ms: its p99 must stay under 100 ms. The server's memory (all its processes'
resident set) is sampled throughout.
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


def server_rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` and its descendants, from /proc (Linux), in MB."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        todo += children.get(current, [])
        try:
            status = Path(f"/proc/{current}/status").read_text()
        except OSError:
            continue
        total += sum(
            int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS")
        )
    return total / 1024


def big_png(side: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (side, side), 128).save(buffer, format="PNG")
    return buffer.getvalue()


def chunked_oversize(port: int) -> tuple[str, float]:
    """Send an endless chunked upload on a raw socket; the server's status line and the MB
    sent when it arrived (a client library would first send the whole body)."""
    import select

    head = (
        b"POST /search HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n"
        b"Content-Type: multipart/form-data; boundary=x\r\n\r\n"
    )
    part = b'--x\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n\r\n'
    chunk = b"0" * 2**16
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(head + f"{len(part):x}\r\n".encode() + part + b"\r\n")
        while sent < 200 * 2**20:
            if select.select([sock], [], [], 0)[0]:
                return sock.recv(200).split(b"\r\n")[0].decode(), sent / 2**20
            try:
                sock.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            except OSError:  # the server closed the connection after answering
                break
            sent += len(chunk)
        reply = sock.recv(200).split(b"\r\n")[0].decode() if sent else ""
    return reply or "no reply", sent / 2**20


async def uploads_while_polled(url: str, image: bytes, pid: int) -> dict:
    """8 clients uploading ``image`` back to back for 5 s while /health is polled every 20 ms."""
    health: list[float] = []
    statuses: list[int] = []
    memory: list[float] = []
    done = asyncio.Event()

    async def poll() -> None:
        async with httpx.AsyncClient(timeout=30) as client:
            await client.get(url + "/health")  # connect first: the timings are the server's
            while not done.is_set():
                start = time.perf_counter()
                await client.get(url + "/health")
                health.append(time.perf_counter() - start)
                memory.append(server_rss_mb(pid))
                await asyncio.sleep(0.02)

    async def upload() -> None:
        async with httpx.AsyncClient(timeout=120) as client:
            stop = time.monotonic() + 5
            while time.monotonic() < stop:  # for 5 s at least
                reply = await client.post(url + "/search", files={"image": image})
                statuses.append(reply.status_code)

    poller = asyncio.create_task(poll())
    await asyncio.gather(*(upload() for _ in range(8)))
    done.set()
    await poller
    ms = np.array(health) * 1000
    return {
        "statuses": {s: statuses.count(s) for s in sorted(set(statuses))},
        "health_p50": float(np.percentile(ms, 50)), "health_p99": float(np.percentile(ms, 99)),
        "health_max": float(ms.max()), "polls": len(ms), "rss_max": max(memory),
    }  # fmt: skip


def report_hostile(url: str, pid: int, port: int) -> None:
    status, mb = chunked_oversize(port)
    print(f"chunked      endless upload, no Content-Length: {status} after {mb:.1f} MB sent")
    for side in (8000, 4000):
        image = big_png(side)
        found = asyncio.run(uploads_while_polled(url, image, pid))
        print(
            f"8 clients uploading {side}x{side} PNGs ({len(image) / 1024:.0f} kB) for 5 s: "
            f"replies {found['statuses']}; /health p50 {found['health_p50']:.1f} ms, "
            f"p99 {found['health_p99']:.1f} ms, max {found['health_max']:.1f} ms over "
            f"{found['polls']} polls; server RSS max {found['rss_max']:.0f} MB"
        )


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
        idle_mb = server_rss_mb(server.pid)
        result = asyncio.run(load(url, images, args))
        after = asyncio.run(wait_ready(url))
        print(f"server RSS   {idle_mb:.0f} MB idle, {server_rss_mb(server.pid):.0f} MB after load")
        report_hostile(url, server.pid, port)
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
