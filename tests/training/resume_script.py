"""The resume test's run in a process of its own, so that the test can SIGKILL it.

python resume_script.py OUT_DIR THREADS DELAY_S
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import torch  # noqa: E402

from deepmetric.training import State, train  # noqa: E402
from tests.training.common import resume_setup  # noqa: E402


def main() -> None:
    out_dir, threads, delay = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    torch.set_num_threads(threads)

    def slow_down(state: State) -> None:  # leaves the test time to kill between checkpoints
        time.sleep(delay)

    train(**resume_setup(), out_dir=out_dir, callbacks=[slow_down])


if __name__ == "__main__":
    main()
