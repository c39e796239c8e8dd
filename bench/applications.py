"""The applications on real data, through the commands a user runs, against raw pixels.

    python bench/applications.py [--faces ../shared/data/faces/olivetti_faces.npz]
        [--faces-model runs/faces/model] [--omniglot-model runs/demo/model] [--work DIR]

- **Verification** (``deepmetric verify``): the ORL faces of the 10 people that
  ``configs/faces.yaml`` never trains on (30-39). Every pair of images of people 30-34
  calibrates the threshold at FAR 1 %; every pair of people 35-39 is decided (225 same-person
  pairs, 1,000 different-person pairs).
- **Few-shot recognition** (``deepmetric classify``): the 10 alphabets the demo never trains
  on, one at a time: one drawing per character (drawer 1) is the support set, the other 19
  drawings of each character are the queries (all characters of the alphabet: 14- to 40-way).
- **Anomaly detection** (``deepmetric anomaly``): drawings 1-10 of five training alphabets are
  normal; drawings 11-20 of the same characters and every drawing of an unseen alphabet
  (Korean) are scored; the unseen alphabet is the anomaly.
- **Clustering** (``deepmetric cluster``): every drawing of the 10 unseen alphabets, k = the
  number of characters.

The models are trained first when missing (``configs/faces.yaml``; the demo's recipe). The
pixel rows run the same library functions on raw pixels.
"""

# bench: by hand (needs the faces data path; trains two models when they are missing)

from __future__ import annotations

import argparse
import csv
import itertools
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from deepmetric.apps import AnomalyDetector, FewShotClassifier, cluster_embeddings, pair_scores
from deepmetric.apps.verify import calibrate_threshold, decide, verification_report
from deepmetric.data.omniglot import BUNDLED
from deepmetric.evaluation import detection_metrics, partition_scores

ROOT = Path(__file__).resolve().parents[1]
DEMO_TEST = [
    "Korean",
    "Latin",
    "Alphabet_of_the_Magi",
    "Mkhedruli_(Georgian)",
    "Burmese_(Myanmar)",
    "N_Ko",
    "Ojibwe_(Canadian_Aboriginal_Syllabics)",
    "Sanskrit",
    "Tagalog",
    "Tifinagh",
]
NORMAL = ["Greek", "Futurama", "Braille", "Hebrew", "Japanese_(hiragana)"]  # demo: trained on


def deepmetric(*args: str) -> str:
    """Run a command, print and return its output; stop on failure."""
    command = Path(sys.executable).parent / "deepmetric"
    done = subprocess.run([str(command), *args], capture_output=True, text=True)
    print(f"$ deepmetric {' '.join(args)}\n{done.stdout}{done.stderr}", flush=True)
    if done.returncode:
        raise SystemExit(f"deepmetric {args[0]} failed ({done.returncode})")
    return done.stdout


def save(images: np.ndarray, paths: list[Path]) -> None:
    for image, path in zip(images, paths, strict=True):
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(path)


def save_rows(images: np.ndarray, rows: np.ndarray, labels: np.ndarray, folder: Path) -> None:
    """``folder/c<label>/<row>.png``: a folder per class."""
    save(images[rows], [folder / f"c{labels[i]}" / f"{i}.png" for i in rows])


def verification(faces: Path, model: Path, work: Path) -> dict[str, dict[str, float]]:
    with np.load(faces) as npz:
        images, people = npz["images"], npz["labels"]
    rows = {}
    for name, chosen in (("calibration", range(30, 35)), ("test", range(35, 40))):
        items = np.flatnonzero(np.isin(people, list(chosen)))
        paths = [work / "faces" / f"p{people[i]}" / f"{i}.png" for i in items]
        save(images[items], paths)
        lines = ["a,b,same"] + [
            f"{paths[a].relative_to(work)},{paths[b].relative_to(work)},"
            f"{int(people[items[a]] == people[items[b]])}"
            for a, b in itertools.combinations(range(len(items)), 2)
        ]
        (work / f"{name}.csv").write_text("\n".join(lines) + "\n")
        rows[name] = (items, np.array([int(line[-1]) for line in lines[1:]], dtype=bool))
    out = work / "verdicts.csv"
    deepmetric(
        "verify",
        str(model),
        str(work / "test.csv"),
        "--calibrate",
        str(work / "calibration.csv"),
        "--far",
        "0.01",
        "--out",
        str(out),
        "--overwrite",
    )
    with open(out, newline="") as file:
        verdicts = list(csv.DictReader(file))
    said = np.array([v["same"] == "1" for v in verdicts])
    same = np.array([v["label"] == "1" for v in verdicts])
    scores = np.array([float(v["score"]) for v in verdicts])
    model_row = verification_report(scores, same, threshold=None)
    model_row.update(
        accuracy=float((said == same).mean()),
        far=float(said[~same].mean()),
        tar=float(said[same].mean()),
    )
    pixels = images.reshape(len(images), -1).astype(np.float64) / 255

    def pixel_scores(items: np.ndarray) -> np.ndarray:
        pairs = np.array(list(itertools.combinations(range(len(items)), 2)))
        return pair_scores(pixels[items[pairs[:, 0]]], pixels[items[pairs[:, 1]]])

    cal_items, cal_same = rows["calibration"]
    threshold = calibrate_threshold(pixel_scores(cal_items), cal_same, far=0.01)
    test_items, test_same = rows["test"]
    test_scores = pixel_scores(test_items)
    decided = decide(test_scores, threshold)
    pixel_row = verification_report(test_scores, test_same)
    pixel_row.update(
        accuracy=float((decided == test_same).mean()),
        far=float(decided[~test_same].mean()),
        tar=float(decided[test_same].mean()),
    )
    return {"pixels": pixel_row, "model": model_row}


def omniglot_images(work: Path) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    with np.load(BUNDLED) as npz:
        names = [str(n) for n in npz["alphabet_names"]]
        fields = {k: npz[k] for k in ("images", "labels", "alphabet", "drawing")}
    fields["alphabet_name"] = np.asarray(names, dtype=object)[fields["alphabet"]]
    return fields["images"], fields


def fewshot(model: Path, work: Path) -> dict[str, float]:
    images, f = omniglot_images(work)
    model_acc, pixel_acc = [], []
    for alphabet in DEMO_TEST:
        rows = np.flatnonzero(f["alphabet_name"] == alphabet)
        support = rows[f["drawing"][rows] == 1]
        query = rows[f["drawing"][rows] != 1]
        base = work / "fewshot" / alphabet
        save_rows(images, support, f["labels"], base / "support")
        save_rows(images, query, f["labels"], base / "query")
        out = base / "predictions.csv"
        deepmetric(
            "classify",
            str(model),
            "--support",
            str(base / "support"),
            "--query",
            str(base / "query"),
            "--far",
            "0",
            "--out",
            str(out),
            "--overwrite",
        )
        with open(out, newline="") as file:
            found = list(csv.DictReader(file))
        model_acc.append(np.mean([r["prediction"] == r["label"] for r in found]))
        pixels = images.reshape(len(images), -1).astype(np.float64) / 255
        clf = FewShotClassifier("euclidean").fit(pixels[support], f["labels"][support])
        said, _ = clf.predict(pixels[query])
        pixel_acc.append(np.mean(said.astype(str) == f["labels"][query].astype(str)))
    return {
        "pixels": float(np.mean(pixel_acc)),
        "model": float(np.mean(model_acc)),
        "pixels_std": float(np.std(pixel_acc)),
        "model_std": float(np.std(model_acc)),
    }


def anomaly(model: Path, work: Path) -> dict[str, dict[str, float]]:
    images, f = omniglot_images(work)
    normal_rows = np.flatnonzero(np.isin(f["alphabet_name"], NORMAL) & (f["drawing"] <= 10))
    later = np.flatnonzero(np.isin(f["alphabet_name"], NORMAL) & (f["drawing"] > 10))
    odd = np.flatnonzero(f["alphabet_name"] == "Korean")
    scored = np.concatenate([later, odd])
    save_rows(images, normal_rows, f["labels"], work / "anomaly" / "normal")
    save_rows(images, scored, f["labels"], work / "anomaly" / "score")
    out = deepmetric(
        "anomaly",
        str(model),
        "--normal",
        str(work / "anomaly" / "normal"),
        "--score",
        str(work / "anomaly" / "score"),
        "--out",
        str(work / "anomaly.csv"),
        "--overwrite",
    )
    model_row = {
        line.split()[0]: float(line.split()[-1])
        for line in out.splitlines()
        if line.strip().split(" ")[0] in ("auroc", "aupr")
    }
    pixels = images.reshape(len(images), -1).astype(np.float64) / 255
    detector = AnomalyDetector(5).fit(pixels[normal_rows])
    truth = np.concatenate([np.zeros(len(later), bool), np.ones(len(odd), bool)])
    return {"pixels": detection_metrics(detector.score(pixels[scored]), truth), "model": model_row}


def clustering(model: Path, work: Path) -> dict[str, dict[str, float]]:
    images, f = omniglot_images(work)
    rows = np.flatnonzero(np.isin(f["alphabet_name"], DEMO_TEST))
    k = len(np.unique(f["labels"][rows]))
    save_rows(images, rows, f["labels"], work / "cluster")
    out = deepmetric(
        "cluster",
        str(model),
        "--data",
        str(work / "cluster"),
        "--k",
        str(k),
        "--out",
        str(work / "clusters.csv"),
        "--overwrite",
    )
    model_row = {
        line.split()[0]: float(line.split()[-1])
        for line in out.splitlines()
        if line.strip().split(" ")[0] in ("nmi", "ami", "ari")
    }
    pixels = images[rows].reshape(len(rows), -1).astype(np.float64) / 255
    found = cluster_embeddings(pixels, k=k, metric="euclidean")
    return {"pixels": partition_scores(f["labels"][rows], found), "model": model_row, "k": k}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--faces", type=Path, default=ROOT.parent / "shared/data/faces/olivetti_faces.npz"
    )
    parser.add_argument("--faces-model", type=Path, default=ROOT / "runs/faces/model")
    parser.add_argument("--omniglot-model", type=Path, default=ROOT / "runs/demo/model")
    parser.add_argument("--work", type=Path, default=ROOT / "runs/applications")
    args = parser.parse_args()
    if not args.faces_model.is_dir():
        deepmetric(
            "train",
            str(ROOT / "configs/faces.yaml"),
            "--set",
            f"data.train.path={args.faces}",
            "--set",
            f"data.test.path={args.faces}",
            "--set",
            f"output.dir={args.faces_model.parent}",
        )
    if not args.omniglot_model.is_dir():
        deepmetric("demo", "--out", str(args.omniglot_model.parent), "--no-report")
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    v = verification(args.faces, args.faces_model, work)
    few = fewshot(args.omniglot_model, work)
    odd = anomaly(args.omniglot_model, work)
    groups = clustering(args.omniglot_model, work)
    rows = [
        (f"verify: ORL people 35-39, {name}", v["pixels"][key], v["model"][key])
        for key, name in (
            ("accuracy", "accuracy at the calibrated threshold"),
            ("tar", "TAR at it"),
            ("far", "FAR at it (target 1 %)"),
            ("roc_auc", "ROC AUC"),
            ("eer", "EER"),
        )
    ]
    rows += [
        ("classify: 10 unseen alphabets, 1-shot, accuracy", few["pixels"], few["model"]),
        (
            "anomaly: an unseen alphabet among 5 known, AUROC",
            odd["pixels"]["auroc"],
            odd["model"]["auroc"],
        ),
        (
            f"cluster: 10 unseen alphabets, k = {groups['k']}, NMI",
            groups["pixels"]["nmi"],
            groups["model"]["nmi"],
        ),
    ]
    print("| application, classes never seen in training | raw pixels | model |\n|---|---:|---:|")
    for name, pixels, model in rows:
        print(f"| {name} | {pixels:.3f} | {model:.3f} |")
    print(
        f"classify spread over the alphabets: pixels ± {few['pixels_std']:.3f}, "
        f"model ± {few['model_std']:.3f}"
    )


if __name__ == "__main__":
    main()
