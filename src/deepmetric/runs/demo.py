"""The demo job: one-shot recognition of characters from alphabets never seen in training.

The demo is a config run like any other: ``recipes/demo.yaml`` (bundled with the package, and
written to ``OUT/config.yaml`` by the run) goes through ``deepmetric.runs.run_training``, so
``deepmetric train OUT/config.yaml`` trains the same model. It learns on 20 alphabets of the
bundled handwritten characters and scores the characters of the 10 it never saw: 20-way
one-shot episodes within an alphabet, with support and query drawn by different people (Lake et
al., Science 2015), MAP@R and Recall@1, for the raw pixels, the untrained network and the
trained one. This module adds only what a person watching needs: progress with an ETA and a
summary of the three rows.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from pathlib import Path

from ..config import RunConfig, load_config
from .train import run_training

RECIPE = Path(__file__).parents[1] / "recipes" / "demo.yaml"
ROWS = ("raw pixels", "untrained network", "trained network")


@dataclasses.dataclass(frozen=True)
class DemoResult:
    """The demo's outcome.

    Attributes:
        table: ``{row: metrics}`` for the rows of ``ROWS``, each with ``fewshot_accuracy``,
            ``map_at_r`` and ``recall_at_1`` (and the rest of the run's test metrics).
        config: the run config; ``out_dir/config.yaml`` holds it.
        out_dir, model_dir, report: what was written (``report`` None when skipped).
        seconds: wall time of the whole run (data, baselines, training, evaluation, report).
    """

    table: dict[str, dict[str, float]]
    config: RunConfig
    out_dir: Path
    model_dir: Path
    report: Path | None
    seconds: float


def demo_config(
    *,
    out_dir: str = "runs/demo",
    seed: int = 0,
    threads: int | None = None,
    report: bool = True,
    overrides: Sequence[str] = (),
) -> RunConfig:
    """The bundled demo recipe with the command's options applied (``--set`` last)."""
    options = [f"output.dir={out_dir}", f"runtime.seed={seed}", f"output.report={report}"]
    if threads is not None:
        options.append(f"runtime.threads={threads}")
    return load_config(RECIPE, [*options, *overrides])


def run_demo(config: RunConfig) -> DemoResult:
    """Train and score ``config`` (see :func:`demo_config`); progress shows when
    ``runtime.progress`` is on, as for any training."""
    start = time.perf_counter()
    outcome = run_training(config, overwrite=True)  # the demo's own folder, started anew
    table = {
        ROWS[0]: outcome.baselines["raw inputs"],
        ROWS[1]: outcome.baselines["untrained network"],
        ROWS[2]: outcome.metrics,
    }
    model_dir = outcome.result.model_dir or outcome.out_dir / "model"
    seconds = time.perf_counter() - start
    return DemoResult(table, config, outcome.out_dir, model_dir, outcome.report, seconds)
