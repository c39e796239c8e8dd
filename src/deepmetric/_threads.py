"""How many CPU threads torch should use: as asked, or the cores that are free right now.

A leaf module. Two heavy processes on a 2-core machine, each with torch's default of one thread
per core, run several times slower than one alone (the demo's training: 110 s alone with 2
threads; two at once with 2 threads each, 440-460 s each; see README), so the command line
picks the thread count from what the machine is doing when a command starts.
"""

from __future__ import annotations

import os
import time


def _busy_cores(window: float = 0.25) -> float:
    """Cores kept busy by all processes over ``window`` seconds (Linux ``/proc/stat``), or 0."""

    def sample() -> tuple[int, int]:
        with open("/proc/stat", encoding="ascii") as stat:
            values = [int(v) for v in stat.readline().split()[1:]]
        idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
        return sum(values) - idle, sum(values)

    try:
        busy0, total0 = sample()
        time.sleep(window)
        busy1, total1 = sample()
    except (OSError, ValueError, IndexError):
        return 0.0
    if total1 <= total0:
        return 0.0
    return (busy1 - busy0) / (total1 - total0) * _cores()


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def auto_threads() -> int:
    """The cores not kept busy by other processes right now (rounded), at least 1.

    Example:
        >>> 1 <= auto_threads() <= os.cpu_count()
        True
    """
    return max(1, min(_cores(), round(_cores() - _busy_cores())))


def set_threads(threads: int | None) -> int:
    """``torch.set_num_threads`` with ``threads``, or :func:`auto_threads` for None; the count."""
    import torch

    count = auto_threads() if threads is None else threads
    torch.set_num_threads(count)
    return count
