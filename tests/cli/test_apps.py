"""``deepmetric verify``, ``classify``, ``cluster`` and ``anomaly``: output files, exit codes,
the numbers against the library, and one-line errors."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from deepmetric.apps import pair_scores
from deepmetric.cli import app
from deepmetric.index import Encoder
from tests.cli.test_commands import one_line_error
from tests.index.fixtures import make_images, make_model

runner = CliRunner()


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("apps")
    make_model(base / "model")
    images = make_images(base / "images")  # red, green, blue: 4 images each
    for name in ("red", "green"):
        shutil.copytree(images / name, base / "normal" / name)
    (base / "flat").mkdir()
    for path in sorted(images.rglob("*.png")):
        shutil.copy(path, base / "flat" / f"{path.parent.name}-{path.name}")
    rows = ["a,b,same"]
    for i in range(4):
        for j in range(4):
            rows.append(f"images/red/{i}.png,images/{'red' if j % 2 else 'blue'}/{j}.png,{j % 2}")
    (base / "pairs.csv").write_text("\n".join(rows) + "\n")
    return base


def _read(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as file:
        return list(csv.DictReader(file))


def test_verify_scores_decides_and_reports(root: Path, tmp_path: Path) -> None:
    out, roc = tmp_path / "v.csv", tmp_path / "roc.png"
    args = [
        "verify",
        str(root / "model"),
        str(root / "pairs.csv"),
        "--calibrate",
        str(root / "pairs.csv"),
        "--far",
        "0.125",
        "--out",
        str(out),
        "--roc",
        str(roc),
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "calibrated at FAR 0.125" in result.output and "roc_auc" in result.output
    rows = _read(out)
    assert len(rows) == 16 and set(rows[0]) == {"a", "b", "score", "same", "label"}
    encoder = Encoder(root / "model")
    a = encoder.encode_files([str(root / rows[0]["a"])])
    b = encoder.encode_files([str(root / rows[0]["b"])])
    assert float(rows[0]["score"]) == pytest.approx(pair_scores(a, b)[0], abs=1e-5)
    different = [r for r in rows if r["label"] == "0"]
    assert sum(r["same"] == "1" for r in different) <= 0.125 * len(different)  # the FAR holds
    with Image.open(roc) as picture:
        assert picture.format == "PNG"
    plain = runner.invoke(
        app, ["verify", str(root / "model"), str(root / "pairs.csv"), "--threshold", "0.5"]
    )
    assert plain.exit_code == 0 and "threshold 0.5 on cosine" in plain.output


def test_classify_labels_a_flat_folder(root: Path, tmp_path: Path) -> None:
    out = tmp_path / "p.csv"
    args = [
        "classify",
        str(root / "model"),
        "--support",
        str(root / "images"),
        "--query",
        str(root / "flat"),
        "--far",
        "0",
        "--out",
        str(out),
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    rows = _read(out)
    assert len(rows) == 12 and all(r["prediction"] in ("red", "green", "blue") for r in rows)
    labelled = runner.invoke(app, [*args[:5], str(root / "images"), "--mode", "nearest"])
    assert "accuracy (seen classes)" in labelled.output and "1.0000" in labelled.output


def test_cluster_writes_assignments_a_sheet_and_scores(root: Path, tmp_path: Path) -> None:
    out, sheet = tmp_path / "c.csv", tmp_path / "sheet.png"
    args = [
        "cluster",
        str(root / "model"),
        "--data",
        str(root / "images"),
        "--k",
        "3",
        "--out",
        str(out),
        "--sheet",
        str(sheet),
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "12 items in 3 clusters" in result.output and "nmi" in result.output
    rows = _read(out)
    assert {r["cluster"] for r in rows} == {"0", "1", "2"} and len(rows) == 12
    assert sheet.is_file()
    flat = runner.invoke(
        app, ["cluster", str(root / "model"), "--data", str(root / "flat"), "--threshold", "0.5"]
    )
    assert flat.exit_code == 0 and "nmi" not in flat.output


def test_anomaly_scores_and_measures_absent_classes(root: Path, tmp_path: Path) -> None:
    out = tmp_path / "a.csv"
    args = [
        "anomaly",
        str(root / "model"),
        "--normal",
        str(root / "normal"),
        "--score",
        str(root / "images"),
        "-k",
        "1",
        "--false-alarm",
        "0.5",
        "--out",
        str(out),
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "auroc" in result.output and "raise an alarm" in result.output
    rows = _read(out)
    assert len(rows) == 12 and {r["anomaly"] for r in rows} <= {"0", "1"}
    blue = np.mean([float(r["score"]) for r in rows if r["label"] == "blue"])
    red = np.mean([float(r["score"]) for r in rows if r["label"] == "red"])
    assert blue > red


def test_bad_input_is_one_line(root: Path, tmp_path: Path) -> None:
    model = str(root / "model")
    (tmp_path / "bad.csv").write_text("a,b,same\nx.png,y.png,maybe\n")
    (tmp_path / "missing.csv").write_text("a.png,b.png\n")
    (tmp_path / "exists.csv").write_text("")
    cases = [
        (["verify", model, str(tmp_path / "bad.csv")], "bad.csv, row 1: expected"),
        (["verify", model, str(tmp_path / "missing.csv")], "a.png: no such image file"),
        (["verify", model, str(tmp_path / "nope.csv")], "no such pairs file"),
        (
            ["verify", model, str(root / "pairs.csv"), "--threshold", "1", "--index", "x"],
            "at most one",
        ),
        (
            ["verify", model, str(root / "pairs.csv"), "--out", str(tmp_path / "exists.csv")],
            "--overwrite",
        ),
        (
            ["classify", model, "--support", str(root / "flat"), "--query", str(root / "flat")],
            "must be labelled",
        ),
        (["cluster", model, "--data", str(root / "images"), "--method", "kmeans"], "needs k"),
        (["cluster", model, "--data", str(tmp_path / "none")], "data must be a folder"),
        (
            [
                "anomaly",
                model,
                "--normal",
                str(root / "normal"),
                "--score",
                str(root / "images"),
                "-k",
                "9",
            ],
            "too few",
        ),
        (
            ["cluster", model, "--data", str(root / "images"), "--k", "2", "--metric", "dot"],
            "--metric must be",
        ),
    ]
    for args, match in cases:
        one_line_error(runner.invoke(app, args), match)
