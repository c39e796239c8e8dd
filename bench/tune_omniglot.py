"""Does tuning beat the hand-made Omniglot recipe on alphabets the search never saw?

    python bench/tune_omniglot.py [--fold 0] [--trials 12] [--epochs 4] [--seeds 0,1,2]
        [--threads 2] [--results FILE] [--table]

One fold of ``bench/unseen_alphabets.py`` (6 of the 30 background alphabets) is held out. The
search (``deepmetric tune`` with ``configs/spaces/omniglot.yaml``) runs on the other 24, trains
each trial on 80 % of them and scores it on the other 20 % (validation MAP@R, group-disjoint),
so the held-out alphabets are never loaded. Then the default recipe and the study's best config
each train on all 24 alphabets under every seed in ``--seeds`` and are scored once on the 6
held-out ones. Every run, trial or final, trains ``--epochs`` epochs, a fixed budget that keeps
the benchmark to about an hour on 2 cores; the full recipe trains 20. The study (``runs/
tune_omniglot/study.db``) and the result lines (``--results``) continue where a killed run left.
"""

# bench: by hand (needs a data path, or runs for hours)

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from unseen_alphabets import COLUMNS, fold_alphabets, run_fold  # type: ignore[import-not-found]

from deepmetric.tune import load_space, run_study, write_best

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "omniglot.yaml"
SPACE = ROOT / "configs" / "spaces" / "omniglot.yaml"
STUDY = Path("runs/tune_omniglot")


def tune(fold: int, trials: int, epochs: int, threads: int) -> Path:
    """The study on the fold's training alphabets; returns the best config's path."""
    held = ", ".join(fold_alphabets(fold))
    sets = ["data.test=null", f"data.test_groups=[{held}]", f"epochs={epochs}",
            f"runtime.threads={threads}"]  # fmt: skip
    space = load_space(SPACE, CONFIG)

    def line(trial: object) -> None:
        print(f"trial {trial.number}: {trial.state.name} {trial.value}", flush=True)  # type: ignore[attr-defined]

    study = run_study(CONFIG, space, STUDY, trials=trials, overrides=sets, on_trial=line)
    print(f"best: trial {study.best_trial.number}, val MAP@R {study.best_value:.4f}, "
          f"{study.best_trial.user_attrs['params']}", flush=True)  # fmt: skip
    return write_best(study, CONFIG, space, STUDY / "best.yaml", [f"epochs={epochs}"])


def table(results: Path) -> None:
    records = [json.loads(line) for line in results.read_text().splitlines()]
    print("| config | seeds | 20-way 1-shot | MAP@R | R@1 | train min |")
    print("|---|---:|---:|---:|---:|---:|")
    means = {}
    for label in dict.fromkeys(r["label"] for r in records):
        rows = [r for r in records if r["label"] == label]
        cells = []
        for c in COLUMNS:
            values = np.array([r[f"trained_{c}"] for r in rows])
            means[label, c] = values
            cells.append(f"{values.mean():.3f} ± {values.std():.3f}")
        minutes = np.mean([r["seconds"] for r in rows]) / 60
        print(f"| {label} | {len(rows)} | {' | '.join(cells)} | {minutes:.1f} |")
    if ("default", COLUMNS[0]) in means and ("tuned", COLUMNS[0]) in means:
        for c in COLUMNS:
            gap = means["tuned", c] - means["default", c]
            print(f"tuned - default, {c}: {gap.mean():+.3f} (per seed {np.round(gap, 3).tolist()})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--fold", type=int, default=0)
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--results", type=Path, default=Path("runs/tune_omniglot.jsonl"))
    parser.add_argument("--table", action="store_true", help="only print the table")
    args = parser.parse_args()
    if not args.table:
        best = tune(args.fold, args.trials, args.epochs, args.threads)
        done = set()
        if args.results.exists():
            done = {(r["label"], r["seed"]) for r in map(json.loads, args.results.open())}
        for seed in (int(s) for s in args.seeds.split(",")):
            for label, config in (("default", CONFIG), ("tuned", best)):
                if (label, seed) in done:
                    continue
                sets = [f"epochs={args.epochs}", f"runtime.seed={seed}",
                        f"output.dir=runs/tune_omniglot/{label}_seed{seed}"]  # fmt: skip
                record = {"label": label, "seed": seed,
                          **run_fold(config, args.fold, args.threads, sets)}  # fmt: skip
                with args.results.open("a", encoding="utf-8") as out:
                    out.write(json.dumps(record) + "\n")
                print(json.dumps(record), flush=True)
    table(args.results)


if __name__ == "__main__":
    main()
