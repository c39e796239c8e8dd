"""Face verification trained from a pair list, without identity labels, on people never seen.

    python bench/pair_lists.py [--faces ../shared/data/faces/olivetti_faces.npz]
        [--seeds 0,1,2] [--work runs/pair_lists] [--threads 2]

The ORL faces of people 0-29 (Olivetti's 64x64 crops) are written out as image files with a
``pairs.csv`` as people collect them: every same-person pair (45 a person, 1,350) and as many
seeded different-person pairs. ``configs/faces.yaml`` then trains from that list alone
(``data.train: {name: pairs}``) with the contrastive loss of siamese networks, and with NT-Xent
(the listed pairs plus in-batch negatives across components), next to the same recipe trained
on the identity labels and to raw pixels. Each is scored by the config's verification protocol
on people 30-39 (10-fold accuracy, TAR at FAR 1e-2, ROC AUC), over ``--seeds``.
"""

# bench: by hand (needs the faces data path)

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

import numpy as np
from PIL import Image

from deepmetric.config import load_config
from deepmetric.runs import run_training

ROOT = Path(__file__).resolve().parents[1]
KEYS = ("accuracy", "tar_at_far_1e-02", "auc")


def write_pairs(faces: Path, work: Path, seed: int = 0) -> Path:
    """The training people's images as files and their pair list; returns the list's path."""
    with np.load(faces) as npz:
        images, people = npz["images"], npz["labels"]
    train = np.flatnonzero(people <= 29)
    (work / "images").mkdir(parents=True, exist_ok=True)
    for i in train:
        Image.fromarray(images[i]).save(work / "images" / f"{i}.png")
    same = [(a, b) for a in train for b in train if a < b and people[a] == people[b]]
    rng = np.random.default_rng(seed)
    different: set[tuple[int, int]] = set()
    while len(different) < len(same):
        a, b = sorted(rng.choice(train, 2, replace=False).tolist())
        if people[a] != people[b]:
            different.add((a, b))
    path = work / "pairs.csv"
    with open(path, "w", newline="") as out:
        rows = csv.writer(out)
        rows.writerow(["a", "b", "same"])
        rows.writerows([f"images/{a}.png", f"images/{b}.png", 1] for a, b in same)
        rows.writerows([f"images/{a}.png", f"images/{b}.png", 0] for a, b in sorted(different))
    return path


def variants(pairs: Path, faces: Path) -> dict[str, list[str]]:
    """The recipes compared: ``--set`` overrides of configs/faces.yaml."""
    listed = [f"data.train={{name: pairs, file: {pairs}, channels: 1}}", "epochs=4"]
    ntxent = "loss={name: ntxent, temperature: 0.1}"
    return {
        "identity labels (supcon, as configs/faces.yaml)": [f"data.train.path={faces}"],
        "pair list, contrastive (siamese)": [*listed, "loss={name: contrastive}"],
        "pair list, NT-Xent + in-batch negatives": [*listed, ntxent],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    faces = ROOT.parent / "shared/data/faces/olivetti_faces.npz"
    parser.add_argument("--faces", type=Path, default=faces)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--work", type=Path, default=Path("runs/pair_lists"))
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    pairs = write_pairs(args.faces, args.work)
    rows: dict[str, list[dict[str, float]]] = {"raw pixels": []}
    for name, sets in variants(pairs.resolve(), args.faces).items():
        for seed in (int(s) for s in args.seeds.split(",")):
            start = time.perf_counter()
            config = load_config(ROOT / "configs/faces.yaml", [
                f"data.test.path={args.faces}", f"runtime.seed={seed}",
                f"runtime.threads={args.threads}", "output.report=false",
                f"output.dir={args.work / 'runs' / f'{len(rows)}_{seed}'}", *sets])  # fmt: skip
            outcome = run_training(config, overwrite=True)
            scores = {k: float(outcome.metrics[k]) for k in KEYS}
            scores["seconds"] = time.perf_counter() - start
            rows.setdefault(name, []).append(scores)
            if len(rows["raw pixels"]) == 0:
                raw = outcome.baselines["raw inputs"]
                rows["raw pixels"].append({k: float(raw[k]) for k in KEYS})
            print(json.dumps({"variant": name, "seed": seed, **scores}), flush=True)
    print("| people 0-29 trained from | accuracy | TAR @ FAR 1e-2 | ROC AUC |")
    print("|---|---:|---:|---:|")
    for name, runs in rows.items():
        cells = [f"{np.mean([r[k] for r in runs]):.3f} ± {np.std([r[k] for r in runs]):.3f}"
                 for k in KEYS]  # fmt: skip
        print(f"| {name} | {' | '.join(cells)} |")


if __name__ == "__main__":
    main()
