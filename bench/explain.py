"""Explaining a pair against embedding it: ResNet-50, two 224x224 images, CPU.

    python bench/explain.py [--threads 2] [--repeats 5] [--embedding-dim 512]

Embedding the pair is one eval forward pass over a batch of two (``deepmetric.models.embed``).
The exact explanation (``explain_pair(method="exact")``) runs the backbone once on the same
batch, applies the linear head to each of the 7x7 cells, and forms the 49 x 49 cell pairs; the
goal is at most about 2x the time of embedding. Integrated gradients (32 steps, both images)
is timed for reference. Random weights: the time does not depend on them. Each measurement is
the median of ``--repeats`` runs after one warm-up, and the two are interleaved.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from deepmetric.explain import explain_pair
from deepmetric.models import Embedder, embed


def _time(call, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        out.append(time.perf_counter() - start)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--embedding-dim", type=int, default=512)
    parser.add_argument("--gradient-steps", type=int, default=32)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = Embedder({"backbone": {"name": "resnet50"}, "embedding_dim": args.embedding_dim}).eval()
    pair = torch.rand(2, 3, 224, 224)
    embed_pair = lambda: embed(model, pair, batch_size=2)  # noqa: E731
    explain = lambda: explain_pair(model, pair[0], pair[1], method="exact")  # noqa: E731
    embed_pair(), explain()  # warm-up
    embedding, exact = [], []
    for _ in range(args.repeats):
        embedding += _time(embed_pair, 1)
        exact += _time(explain, 1)
    steps = args.gradient_steps
    gradient = _time(
        lambda: explain_pair(model, pair[0], pair[1], method="gradient", steps=steps), 1
    )
    e = explain()
    rows = [
        ("embed the pair", statistics.median(embedding)),
        ("explain, exact", statistics.median(exact)),
        (f"explain, integrated gradients ({steps} steps)", gradient[0]),
    ]
    print(f"ResNet-50, 2 x 224x224, {args.threads} threads, median of {args.repeats}")
    print("| | seconds | x embedding |\n|---|---:|---:|")
    for name, seconds in rows:
        print(f"| {name} | {seconds:.3f} | {seconds / rows[0][1]:.2f} |")
    print(f"exact map {e.map_a.shape}, sum - cosine = {e.pairs.sum() - e.score:.2e}")


if __name__ == "__main__":
    main()
