"""Adds items to an index directory in a loop until killed; prints each committed total."""

from __future__ import annotations

import sys

import numpy as np

from deepmetric.index import Index


def main(folder: str) -> None:
    index = Index.load(folder, writable=True)
    rng = np.random.default_rng(0)
    total = len(index)
    while True:
        batch = rng.normal(size=(7, 8)).astype(np.float32)
        index.add(batch, labels=[str(total + i) for i in range(7)])
        total += 7
        print(total, flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
