"""The few-shot recipe on alphabets never seen in training: folds of the bundled background set.

    python bench/unseen_alphabets.py [--config configs/omniglot.yaml] [--folds 0,1,2,3,4]
        [--threads 2] [--label NAME] [--set key=value ...] [--results FILE] [--table]

The 30 background alphabets, in the bundled file's order, make 5 folds of 6: each run trains the
recipe on the other 24 and scores the 6 held out (within-alphabet 20-way one-shot episodes with
support and query by different drawers, MAP@R, Recall@1), next to raw pixels and the untrained
network (``output.baselines``). The recipe's own test set (Omniglot's evaluation alphabets, not
bundled) is replaced by the fold. Each run appends one JSON line to ``--results`` (default
``runs/unseen_alphabets.jsonl``) under ``--label``; ``--table`` prints the mean and spread over the
folds of every label found there, so an ablation is one call per variant::

    python bench/unseen_alphabets.py --label "no rotations" --set data.rotate_classes=false
    python bench/unseen_alphabets.py --table
"""

# bench: by hand (needs a data path, or runs for hours)

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from deepmetric.config import load_config
from deepmetric.data.omniglot import BUNDLED
from deepmetric.runs import run_training

ROOT = Path(__file__).resolve().parents[1]
COLUMNS = ("fewshot_accuracy", "map_at_r", "recall_at_1")


def fold_alphabets(fold: int, folds: int = 5) -> list[str]:
    """The alphabets held out by ``fold`` (file order, ``30 / folds`` each)."""
    with np.load(BUNDLED) as npz:
        names = [str(n) for n in npz["alphabet_names"].tolist()]
    size = len(names) // folds
    return names[fold * size : (fold + 1) * size]


def run_fold(config: Path, fold: int, threads: int, overrides: list[str]) -> dict[str, object]:
    held = fold_alphabets(fold)
    sets = [
        "data.test=null",
        f"data.test_groups=[{', '.join(held)}]",
        f"output.dir=runs/unseen_alphabets/fold{fold}",
        "output.report=false",
        "output.baselines=true",
        "runtime.progress=false",
        f"runtime.threads={threads}",
        *overrides,
    ]
    start, cpu = time.perf_counter(), time.process_time()
    outcome = run_training(load_config(config, sets))
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu
    rows = {"pixels": outcome.baselines["raw inputs"], "untrained": outcome.baselines[
        "untrained network"], "trained": outcome.metrics}  # fmt: skip
    return {
        "fold": fold,
        "held_out": held,
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        **{f"{row}_{c}": values[c] for row, values in rows.items() for c in COLUMNS},
    }


def table(results: Path) -> None:
    """Mean ± standard deviation over folds, one line per label and embedding."""
    by_label: dict[str, list[dict[str, float]]] = {}
    for line in results.read_text().splitlines():
        record = json.loads(line)
        by_label.setdefault(record["label"], []).append(record)
    print("| recipe | embedding | folds | 20-way 1-shot | MAP@R | R@1 | train min |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for label, records in by_label.items():
        for row in ("pixels", "untrained", "trained"):
            cells = []
            for c in COLUMNS:
                values = np.array([r[f"{row}_{c}"] for r in records])
                cells.append(f"{values.mean():.3f} ± {values.std():.3f}")
            minutes = np.mean([r["seconds"] for r in records]) / 60 if row == "trained" else 0
            time_cell = f"{minutes:.1f}" if row == "trained" else ""
            print(f"| {label} | {row} | {len(records)} | {' | '.join(cells)} | {time_cell} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "omniglot.yaml")
    parser.add_argument("--folds", default="0,1,2,3,4")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--label", default="recipe")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--results", type=Path, default=Path("runs/unseen_alphabets.jsonl"))
    parser.add_argument("--table", action="store_true", help="only print the table")
    args = parser.parse_args()
    if not args.table:
        for fold in (int(f) for f in args.folds.split(",")):
            record = {"label": args.label, "overrides": args.overrides,
                      **run_fold(args.config, fold, args.threads, args.overrides)}  # fmt: skip
            args.results.parent.mkdir(parents=True, exist_ok=True)
            with args.results.open("a", encoding="utf-8") as out:
                out.write(json.dumps(record) + "\n")
            print(json.dumps(record), flush=True)
    table(args.results)


if __name__ == "__main__":
    main()
