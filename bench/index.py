"""Build time, memory, throughput, latency and recall@10 of deepmetric's Index per faiss factory.

    python bench/index.py [--sizes 100000 1000000] [--dim 128] [--queries 1000]

Vectors are a seeded mixture of 1,000 Gaussian clusters in ``dim`` dimensions, searched under
cosine; queries are fresh draws from the same mixture. Each (size, factory) case runs in its own
process, so memory (RSS after building minus RSS with the data alone) and peak RSS are that
case's. Every index takes its default search tuning (``recall=0.95``: the cheapest setting whose
recall@10 on a sample of its own items reaches 0.95, measured at build time and shown in
brackets); ``auto`` is the factory that ``Index`` picks for the size. Recall@10 is the share
of the exact 10 nearest neighbours (a faiss flat search, computed once per size) that the index
returns. Throughput searches all queries in one batch; latency times single-query searches one
after another on one faiss thread, as a server worker runs them (p50/p95/p99). Build and batch
search use every CPU thread.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

K = 10
LATENCY_QUERIES = 300


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def synthetic(n: int, dim: int, seed: int) -> np.ndarray:
    """``n`` unit rows from a seeded mixture of 1,000 clusters (in 100k-row chunks)."""
    centres = np.random.default_rng(12345).standard_normal((1000, dim)).astype(np.float32)
    rng = np.random.default_rng(seed)
    out = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, 100_000):
        stop = min(n, start + 100_000)
        which = rng.integers(0, 1000, stop - start)
        noise = rng.standard_normal((stop - start, dim), dtype=np.float32)
        out[start:stop] = centres[which] + 0.7 * noise
    out /= np.linalg.norm(out, axis=1, keepdims=True)
    return out


def truth(n: int, dim: int, queries: int, cache: Path) -> np.ndarray:
    """The exact top-10 ids of the queries (faiss flat inner product), cached per size."""
    file = cache / f"truth-{n}-{dim}-{queries}.npy"
    if not file.exists():
        import faiss

        flat = faiss.IndexFlatIP(dim)
        flat.add(synthetic(n, dim, seed=0))
        ids = flat.search(synthetic(queries, dim, seed=1), K)[1]
        np.save(file, ids)
    return np.load(file)


def run_case(n: int, dim: int, factory: str, queries: int, cache: Path) -> dict[str, float]:
    """Build and measure one index in this process."""
    import faiss

    from deepmetric.index import Index

    x, q = synthetic(n, dim, seed=0), synthetic(queries, dim, seed=1)
    exact = truth(n, dim, queries, cache)
    base = _rss_mb()
    start = time.perf_counter()
    index = Index(dim, factory=factory)
    index.add(x)
    build_s = time.perf_counter() - start
    del x
    memory = _rss_mb() - base + n * dim * 4 / 2**20  # the input array was freed after adding
    index.search(q[:10], K)  # warm-up
    start = time.perf_counter()
    _, ids = index.search(q, K)
    qps = queries / (time.perf_counter() - start)
    found = (ids[:, :, None] == exact[:, None, :]).any(1).sum()
    faiss.omp_set_num_threads(1)  # one query per call: threads only add hand-off costs
    latencies = []
    for row in q[:LATENCY_QUERIES]:
        start = time.perf_counter()
        index.search(row[None], K)
        latencies.append((time.perf_counter() - start) * 1000)
    p50, p95, p99 = np.percentile(latencies, [50, 95, 99])
    return {
        "factory": index.factory,
        "search": index.search_params or "-",
        "tuned": index.measured_recall,
        "build_s": build_s,
        "index_mb": memory,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "recall_at_10": float(found) / exact.size,
        "qps": qps,
        "p50_ms": float(p50),
        "p95_ms": float(p95),
        "p99_ms": float(p99),
    }


def factories(n: int, dim: int) -> list[str]:
    nlist = int(4 * math.sqrt(n))
    return ["auto", "Flat", f"IVF{nlist},Flat", f"IVF{nlist},PQ{dim // 2}x4fs", "HNSW32"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--only", nargs="*", help="factory strings to run (default: all)")
    parser.add_argument("--case", nargs=2, metavar=("SIZE", "FACTORY"), help=argparse.SUPPRESS)
    parser.add_argument("--cache", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        result = run_case(int(args.case[0]), args.dim, args.case[1], args.queries, args.cache)
        print(json.dumps(result))
        return
    cache = Path(tempfile.mkdtemp(prefix="deepmetric-bench-"))
    header = (
        f"{'size':>9} {'factory':<24} {'search (tuned R@10)':<28} {'build s':>8} {'index MB':>9} "
        f"{'peak MB':>8} {'R@10':>6} {'QPS':>9} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7}"
    )
    print(f"dim={args.dim}, cosine, {args.queries} queries, k={K}, {os.cpu_count()} CPUs")
    print(header)
    for n in args.sizes:
        truth(n, args.dim, args.queries, cache)
        for factory in args.only or factories(n, args.dim):
            command = [
                sys.executable,
                "-P",
                __file__,
                "--case",
                str(n),
                factory,
                "--cache",
                str(cache),
            ]
            command += ["--dim", str(args.dim), "--queries", str(args.queries)]
            done = subprocess.run(command, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                print(f"{n:>9} {factory:<24} failed: {done.stderr.strip().splitlines()[-1:]}")
                continue
            r = json.loads(done.stdout.strip().splitlines()[-1])
            tuned = r["search"] + ("" if r["tuned"] is None else f" ({r['tuned']:.3f})")
            print(
                f"{n:>9} {r['factory']:<24} {tuned:<28} {r['build_s']:>8.1f} {r['index_mb']:>9.0f} "
                f"{r['peak_rss_mb']:>8.0f} {r['recall_at_10']:>6.3f} {r['qps']:>9.0f} "
                f"{r['p50_ms']:>7.2f} {r['p95_ms']:>7.2f} {r['p99_ms']:>7.2f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
