"""Model tests run tiny tensors: one thread avoids OpenMP hand-off costs on busy shared CPUs
(a ResNet-18 forward on two 32x32 images takes ~15 ms on one thread, ~1 s on two contended ones).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
