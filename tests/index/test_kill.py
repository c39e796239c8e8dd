"""A writer killed with SIGKILL in the middle of adds leaves a loadable, consistent index."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np

from deepmetric.index import Index

SCRIPT = Path(__file__).with_name("writer_script.py")


def test_sigkilled_writer_leaves_a_consistent_index(tmp_path: Path) -> None:
    folder = tmp_path / "items.index"
    Index(8, metric="euclidean").save(folder)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    writer = subprocess.Popen(
        [sys.executable, str(SCRIPT), str(folder)], stdout=subprocess.PIPE, text=True, env=env
    )
    assert writer.stdout is not None
    target = random.Random().randint(3, 12)  # a different moment on every run
    committed = 0
    for line in writer.stdout:
        committed = int(line)
        if committed >= 7 * target:
            break
    os.kill(writer.pid, signal.SIGKILL)  # mid-add, most likely
    writer.wait()
    index = Index.load(folder)
    n = len(index)
    assert n >= committed and n % 7 == 0  # every printed add survived; adds are all-or-nothing
    with sqlite3.connect(folder / "items.sqlite") as db:
        rows = sorted(r[0] for r in db.execute("SELECT id FROM items"))
    _, found = index.search(np.zeros((1, 8), np.float32), n)
    assert sorted(found[0].tolist()) == rows  # every vector has its row and every row a vector
    assert all(item is not None for item in index.items(rows))
    Index.load(folder, writable=True).add(np.ones((1, 8), np.float32))  # writable again
