"""Forward+backward time and peak memory of every loss (and loss+miner pairing) against
pytorch-metric-learning (PML) on the same tensors, in one run.

    python bench/losses.py [--batch-sizes 256 1024 4096] [--dim 512] [--only NAME ...] [--rounds 1]
    python bench/losses.py --same-process --only NAME ...  (times only, both sides in one process)

Each measurement runs in its own process, so that peak memory (peak RSS above the RSS after the
inputs exist) is that case's alone, and so that a case that runs out of memory (the process has a
16 GiB address-space limit) or past the time limit is reported as such instead of ending the run.
Embeddings are unit-norm float32 rows, 8 samples per class, 2 CPU threads. With ``--rounds N``
the two sides alternate N times per case and each reports its fastest round: the machine's speed
drifts between minutes, and a single round reads that drift as a change of ratio.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _loss_cases import CASES  # noqa: E402

PER_CLASS = 8
LIMIT_BYTES = 16 << 30
CASE_TIMEOUT_S = 300


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _inputs(batch: int, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The seeded unit-norm embeddings (requiring grad) and labels of every measurement, on 2
    threads."""
    torch.set_num_threads(2)
    torch.manual_seed(0)
    labels = torch.arange(batch) // PER_CLASS
    x = torch.nn.functional.normalize(torch.randn(batch, dim), dim=1).requires_grad_(True)
    return x, labels


def measure(case: str, impl: str, batch: int, dim: int, budget_s: float) -> dict[str, float]:
    """Run one case in this process: peak memory of the first call, then (after up to half a
    second of untimed warm-up calls, for cases under 2 s a call) the median time of at least 7
    calls, or of a second's worth up to 200; at least 2 within ``budget_s``."""
    x, labels = _inputs(batch, dim)
    make = CASES[case].ours if impl == "ours" else CASES[case].pml
    if make is None:
        raise ValueError(f"case {case!r} has no {impl} side")
    step: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = make(batch // PER_CLASS, dim)
    base = _rss_bytes()
    first = time.perf_counter()
    step(x, labels).backward()
    first = time.perf_counter() - first
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - base
    # warm-up, untimed, for cases under 2 s a call: the allocator's first rounds of big tensors
    # page-fault, which made a case's median move by 2x between processes
    warm_until = time.perf_counter() + (0.5 if first < 2.0 else 0.0)
    for _ in range(10):
        if time.perf_counter() >= warm_until:
            break
        x.grad = None
        step(x, labels).backward()
    times: list[float] = []
    deadline = time.perf_counter() + budget_s
    # fast cases repeat for a second (at most 200 calls) so that their median is stable
    while len(times) < 2 or (
        time.perf_counter() < deadline
        and (len(times) < 7 or (sum(times) < 1.0 and len(times) < 200))
    ):
        x.grad = None
        start = time.perf_counter()
        step(x, labels).backward()
        times.append(time.perf_counter() - start)
    return {"ms": 1000 * statistics.median(times), "peak_mib": max(peak, 0) / 2**20}


def interleaved(
    case: str, batch: int, dim: int, calls: int = 300, budget_s: float = 10.0
) -> dict[str, float]:
    """Median ms of ours and PML's steps timed in this one process, alternating call by call
    after a warm-up: for cases of a few milliseconds, whose medians move by a third between
    processes (allocator and cache state), this compares them under the same conditions."""
    x, labels = _inputs(batch, dim)
    pml_make = CASES[case].pml
    if pml_make is None:
        raise ValueError(f"case {case!r} has no PML side")
    steps = {
        "ours": CASES[case].ours(batch // PER_CLASS, dim),
        "pml": pml_make(batch // PER_CLASS, dim),
    }
    times: dict[str, list[float]] = {impl: [] for impl in steps}
    start = time.perf_counter()
    for impl, step in steps.items():
        try:
            step(x, labels).backward()
        except (RuntimeError, MemoryError) as err:
            oom = isinstance(err, MemoryError) or "alloc" in str(err)
            raise RuntimeError(f"{impl} {'OOM' if oom else 'error: ' + str(err)[:50]}") from err
    warm = 20 if time.perf_counter() - start < 0.1 else 2  # rounds more, untimed
    deadline = time.perf_counter() + budget_s
    for i in range(calls + warm):  # slow cases stop at the budget, after 7 timed rounds
        if i >= warm + 7 and time.perf_counter() > deadline:
            break
        for impl, step in steps.items():
            x.grad = None
            start = time.perf_counter()
            step(x, labels).backward()
            if i >= warm:
                times[impl].append(time.perf_counter() - start)
    return {impl: 1000 * statistics.median(t) for impl, t in times.items()}


def run_case(case: str, impl: str, batch: int, dim: int) -> dict[str, float] | str:
    """One measurement in a fresh process; a string says why there is no number."""
    cmd = [sys.executable, __file__, "--child", case, impl, str(batch), str(dim)]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=CASE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return f">{CASE_TIMEOUT_S}s"
    if out.returncode != 0:
        err = out.stderr.strip().splitlines()[-1:] or ["?"]
        oom = "memory" in out.stderr.lower() or out.returncode in (-9, 137)
        return "OOM" if oom else f"error: {err[0][:60]}"
    return json.loads(out.stdout.strip().splitlines()[-1])


def fastest(results: list[dict[str, float] | str]) -> dict[str, float] | str:
    """The round with the lowest time, or the first round's failure if any round failed."""
    failed = [r for r in results if isinstance(r, str)]
    return failed[0] if failed else min(results, key=lambda r: r["ms"])  # type: ignore[index]


def _fmt(result: dict[str, float] | str | None, key: str) -> str:
    if result is None:
        return "—"
    if isinstance(result, str):
        return result
    return f"{result[key]:.1f}" if key == "ms" else f"{result[key]:.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[256, 1024, 4096])
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--only", nargs="+", default=list(CASES))
    parser.add_argument("--rounds", type=int, default=1, help="alternating rounds per case")
    parser.add_argument(
        "--same-process", action="store_true", help="time ours and PML's alternating in one process"
    )
    parser.add_argument("--json", type=Path, help="also write all results here")
    args = parser.parse_args()
    unknown = sorted(set(args.only) - set(CASES))
    if unknown:
        parser.error(f"unknown case(s) {unknown}; known: {', '.join(CASES)}")
    if args.same_process:
        print("| case | batch | ours ms | PML ms | ratio |\n|---|---:|---:|---:|---:|")
        for case in [c for c in args.only if CASES[c].pml]:
            for batch in args.batch_sizes:
                try:
                    t = interleaved(case, batch, args.dim)
                except RuntimeError as err:  # the side that blew up, e.g. "pml OOM"
                    print(f"| {case} | {batch} | | | {err} |", flush=True)
                    continue
                print(f"| {case} | {batch} | {t['ours']:.2f} | {t['pml']:.2f} "
                      f"| {t['ours'] / t['pml']:.3f} |", flush=True)  # fmt: skip
        return
    rows, ratios = [], {b: [] for b in args.batch_sizes}
    print("| case | batch | ours ms | PML ms | ratio | ours peak MiB | PML peak MiB |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for case in args.only:
        for batch in args.batch_sizes:
            impls = ("ours", "pml") if CASES[case].pml else ("ours",)
            rounds = [[run_case(case, impl, batch, args.dim) for impl in impls]
                      for _ in range(args.rounds)]  # fmt: skip
            ours = fastest([r[0] for r in rounds])
            theirs = fastest([r[1] for r in rounds]) if CASES[case].pml else None
            ratio = "—"
            if isinstance(ours, dict) and isinstance(theirs, dict):
                ratio = f"{ours['ms'] / theirs['ms']:.3f}"
                if CASES[case].same_math:
                    ratios[batch].append(ours["ms"] / theirs["ms"])
                else:
                    ratio += " (different loss)"
            elif isinstance(ours, dict) and isinstance(theirs, str):
                ratio = f"PML {theirs}"
            line = (
                f"| {case} | {batch} | {_fmt(ours, 'ms')} | {_fmt(theirs, 'ms')} | {ratio} "
                f"| {_fmt(ours, 'peak_mib')} | {_fmt(theirs, 'peak_mib')} |"
            )
            print(line, flush=True)
            rows.append({"case": case, "batch": batch, "ours": ours, "pml": theirs})
    print()
    for batch, values in ratios.items():
        if values:
            gmean = math.exp(sum(math.log(v) for v in values) / len(values))
            print(
                f"batch {batch}: geometric-mean time ratio (ours/PML) {gmean:.3f} over "
                f"{len(values)} cases, worst {max(values):.3f}"
            )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        case, impl, batch, dim = sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
        resource.setrlimit(resource.RLIMIT_AS, (LIMIT_BYTES, LIMIT_BYTES))
        print(json.dumps(measure(case, impl, batch, dim, budget_s=10.0)))
    else:
        main()
